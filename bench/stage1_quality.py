"""Stage 1 with the embedded LLM on GIQA-Synth descriptions: tag precision/recall against ground truth.

One before/after table: the model's raw output (free JSON, no checks) against the same output validated
and repaired, the candidate-constrained schema over the whole description and per sentence (raw and
validated) and, as a reference, the rules alone (candidate chunks + lexicon, no LLM).
Matching, one-to-one and greedy:
- phrase: the character spans of predicted and true phrase in the description overlap with IoU >= 0.5
  (a predicted phrase that is not in the description matches nothing);
- quality: the predicted quality words share a word with the true ones ("grainy" ~ "too dark and grainy").

    python bench/stage1_quality.py --n 200 [--seed 11] [--llm-url URL] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from giqa.llm import LLMError, OpenAIChatClient
from giqa.llm.server import EmbeddedLLMServer
from giqa.pipeline import lexicon
from giqa.pipeline.candidates import candidates
from giqa.pipeline.tags import stage1_requests, validate_tags
from giqa.synth import SceneRecord, generate_scene

Pred = list[tuple[str, str]]


def span_iou(a: tuple[int, int] | None, b: tuple[int, int] | None) -> float:
    if a is None or b is None:
        return 0.0
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union else 0.0


def locate(description: str, phrase: str) -> tuple[int, int] | None:
    from giqa.pipeline.tags import find_span

    return find_span(description, phrase) if phrase.strip() else None


def quality_agrees(predicted: str, truth: str) -> bool:
    content = {"and", "too", "a", "bit", "slightly"}
    return bool((set(lexicon.words(predicted)) - content) & (set(lexicon.words(truth)) - content))


def score(record: SceneRecord, predicted: Pred) -> dict[str, int]:
    kept = [t for t in record.tags if t.effect != "no impact"]
    truth = [(locate(record.description, t.phrase), t.quality) for t in kept]
    preds = [(locate(record.description, p), q) for p, q in predicted]
    pairs = sorted(
        ((span_iou(ps, ts), i, j) for i, (ps, _) in enumerate(preds) for j, (ts, _) in enumerate(truth)),
        reverse=True,
    )
    used_p: set[int] = set()
    used_t: set[int] = set()
    matched = quality_ok = 0
    for iou, i, j in pairs:
        if iou < 0.5 or i in used_p or j in used_t:
            continue
        used_p.add(i)
        used_t.add(j)
        matched += 1
        quality_ok += quality_agrees(preds[i][1], truth[j][1])
    return {"pred": len(preds), "true": len(truth), "matched": matched, "quality_ok": quality_ok}


def raw_pairs(answer: Any) -> Pred:
    items = answer.get("tags", []) if isinstance(answer, dict) else []
    return [(str(t.get("phrase", "")), str(t.get("quality", ""))) for t in items if isinstance(t, dict)]


def validated_pairs(description: str, answer: Any) -> Pred:
    tags = answer.get("tags") if isinstance(answer, dict) else None
    return [(t.phrase, t.quality) for t in validate_tags(description, tags).tags]


def rules_only(description: str) -> Pred:
    guesses = [{"phrase": p, "quality": "", "effect": ""} for p in candidates(description).phrases]
    return [(t.phrase, t.quality) for t in validate_tags(description, guesses).tags]


def run_llm(client: OpenAIChatClient, records: list[SceneRecord], mode: str, few_shot: bool) -> list[Any]:
    """One variant over all records, one request at a time (llama.cpp reuses the shared prompt prefix)."""
    answers: list[Any] = []
    for record in tqdm(records, desc=f"{mode} few_shot={few_shot}", file=sys.stderr):
        tags: list[Any] = []
        try:
            for messages, schema in stage1_requests(record.description, mode=mode, few_shot=few_shot):
                answer = client.chat_json(messages, schema, max_tokens=320)
                tags.extend(answer.get("tags", []) if isinstance(answer, dict) else [])
        except LLMError as exc:
            answers.append({"error": str(exc)[:200]})
            continue
        answers.append({"tags": tags})
    return answers


def table_row(name: str, scores: list[dict[str, int]], seconds: float, failures: int) -> dict[str, Any]:
    total = {k: sum(s[k] for s in scores) for k in ("pred", "true", "matched", "quality_ok")}
    precision = total["matched"] / total["pred"] if total["pred"] else 0.0
    recall = total["matched"] / total["true"] if total["true"] else 0.0
    strict = total["quality_ok"]
    return {
        "variant": name,
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "precision_q": strict / total["pred"] if total["pred"] else 0.0,
        "recall_q": strict / total["true"] if total["true"] else 0.0,
        "quality_acc": strict / total["matched"] if total["matched"] else 0.0,
        "tags_per_desc": total["pred"] / len(scores),
        "s_per_desc": seconds / len(scores),
        "failed_calls": failures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--llm-url", default=None, help="OpenAI-compatible server (default: embedded)")
    parser.add_argument("--dialect", default="json_object")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    records = [generate_scene(args.seed, i)[1] for i in range(args.n)]
    truth_tags = sum(len(r.tags) for r in records)
    print(f"{len(records)} GIQA-Synth descriptions (seed {args.seed}), {truth_tags} ground-truth tags")

    server = None if args.llm_url else EmbeddedLLMServer().start()
    try:
        url = args.llm_url or (server.url if server else "")
        client = OpenAIChatClient(url, dialect=args.dialect, model="smollm2", timeout_s=120, max_retries=2)
        rows = []
        variants = [
            ("free few-shot", "free", True),
            ("constrained few-shot", "constrained", True),
            ("constrained per sentence, few-shot (default)", "sentences", True),
        ]
        for label, mode, few_shot in variants:
            started = time.perf_counter()
            answers = run_llm(client, records, mode, few_shot)
            seconds = time.perf_counter() - started
            failures = sum("error" in a for a in answers if isinstance(a, dict))
            raw_scores = [score(r, raw_pairs(a)) for r, a in zip(records, answers, strict=True)]
            fixed_scores = [
                score(r, validated_pairs(r.description, a)) for r, a in zip(records, answers, strict=True)
            ]
            rows.append(table_row(f"{label}: raw model output", raw_scores, seconds, failures))
            rows.append(table_row(f"{label} + validation/repair", fixed_scores, seconds, failures))
        started = time.perf_counter()
        rule_scores = [score(r, rules_only(r.description)) for r in records]
        elapsed = time.perf_counter() - started
        rows.append(table_row("rules only, no LLM (reference)", rule_scores, elapsed, 0))
    finally:
        if server is not None:
            server.stop()

    header = "| variant | P | R | F1 | P (+quality) | R (+quality) | quality acc | tags/desc | s/desc |"
    print(header)
    print("|" + "---|" * 9)
    for row in rows:
        print(
            f"| {row['variant']} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | "
            f"{row['precision_q']:.3f} | {row['recall_q']:.3f} | {row['quality_acc']:.3f} | "
            f"{row['tags_per_desc']:.2f} | {row['s_per_desc']:.2f} |"
        )
    if args.out:
        args.out.write_text(json.dumps({"n": args.n, "seed": args.seed, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
