"""The learning curve of a training run: every complete checkpoint of ``giqa train`` scored on a bench.

Each ``checkpoint-N/`` (and ``final/``) of RUN answers BENCH through the evaluator's runner (what
``giqa predict`` + ``giqa eval --no-judge`` do: :func:`giqa.training.evaluate.evaluate_checkpoint`), so the
figures are the bench's DES mIoU, Tag-Recall, BLEU@4 and VQA Acc(Y) after N steps; the minutes come from the
run's own ``metrics.jsonl``. ``--untrained`` also scores the run's start (``base-tiny/``, the random init).
Beside the bench metrics, ``box_err`` is a cheaper and earlier signal: with the bench's DES answers fed in
(teacher forcing), how far in grid cells (mean |row| + |column| error) the model's likeliest grid-index
token lies from the true one, also per corner (the top-left cell must come from the image; the bottom-right
can lean on it), over the boxes of the first 48 DES items; it moves long before generated
boxes score. ``box_err_tl_fixed_guess`` is what ignoring the image scores (one fixed top-left cell, the
median row and column of the truth): a top-left error above it means the model does not localise yet.
Writes ``RUN/curve/curve.json`` (one row per checkpoint, with each report) and ``RUN/curve/curve.png``, and
prints a Markdown table. Checkpoints already scored are read back, so a second call only scores new ones.

    python bench/train_curve.py runs/demo-vlm/train --bench runs/demo-vlm/bench/bench.jsonl [--untrained]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "shared")]

METRICS = (("des", "miou"), ("des", "tag_recall"), ("des", "bleu4"), ("vqa", "acc_y"))


def checkpoints(
    run: Path, metrics: list[dict[str, Any]], untrained: bool, every: int = 1
) -> list[tuple[int, Path]]:
    """(step, folder) of every complete checkpoint, in step order; step 0 is the untrained base."""
    from giqa.training.run import TINY_BASE

    found = []
    for folder in run.glob("checkpoint-*"):
        match = re.fullmatch(r"checkpoint-(\d+)", folder.name)
        complete = (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
        if match and complete and int(match.group(1)) % every == 0:
            found.append((int(match.group(1)), folder))
    if untrained and (run / TINY_BASE / "config.json").is_file():
        found.append((0, run / TINY_BASE))
    steps = [r.get("step", 0) for r in metrics]
    last = max(steps, default=0)
    if (run / "final" / "config.json").is_file() and last not in {step for step, _ in found}:
        found.append(
            (last, run / "final")
        )  # a time budget stops between checkpoints: final/ is the last step
    return sorted(found)


def minutes_at(metrics: list[dict[str, Any]], step: int) -> float | None:
    """Training minutes when ``step`` was reached (the last log at or before it)."""
    if step == 0:
        return 0.0
    times = [r["elapsed_s"] for r in metrics if "elapsed_s" in r and r.get("step", 0) <= step]
    return round(max(times) / 60, 1) if times else None


def teacher_forced(processor: Any, bench: Path, item: Any) -> tuple[Any, int]:
    """A bench item's image, question and true answer as one encoded conversation; where the answer starts."""
    from PIL import Image

    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": item.question}]},
        {"role": "assistant", "content": [{"type": "text", "text": item.answer}]},
    ]
    with Image.open(bench.parent / item.image) as img:
        image = img.convert("RGB")
    prompt = processor.apply_chat_template(messages[:1], add_generation_prompt=True)
    start = len(processor(images=[image], text=[prompt], return_tensors="pt")["input_ids"][0])
    enc = processor(images=[image], text=[processor.apply_chat_template(messages)], return_tensors="pt")
    return enc, start


def box_error(
    folder: Path, bench: Path, items: int = 48, loaded: tuple[Any, Any] | None = None
) -> dict[str, float] | None:
    """Teacher-forced grid-token error on the bench's first DES items (None: the answers hold no grid box).

    ``loaded``: the folder's (model, processor) when the caller has them already.
    """
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from giqa.evaluation.io import read_bench
    from giqa.models.tokenizer import GRID_CELLS

    side = int(GRID_CELLS**0.5)
    if loaded is None:
        model = AutoModelForImageTextToText.from_pretrained(folder).eval()
        loaded = model, AutoProcessor.from_pretrained(folder)
    model, processor = loaded
    tok = processor.tokenizer
    cell_of = {tok.convert_tokens_to_ids(t): k for k in range(GRID_CELLS) for t in (str(k), f" {k}")}
    cell_of.pop(tok.unk_token_id, None)
    opening = tok.convert_tokens_to_ids("<")
    # per corner: the top-left cell follows "<" and must come from the image given the phrase; the
    # bottom-right follows "tl," and can lean on the top-left (the object's size)
    n = {"tl": 0, "br": 0}
    exact = {"tl": 0, "br": 0}
    err = {"tl": 0.0, "br": 0.0}
    true_tl: list[int] = []
    for item in [it for it in read_bench(bench) if it.task == "des"][:items]:
        enc, start = teacher_forced(processor, bench, item)
        with torch.no_grad():
            guess = model(**enc).logits[0].argmax(-1)
        ids = enc["input_ids"][0].tolist()
        for t in range(start, len(ids)):  # the answer's boxes only, not the numbers of the question
            if ids[t] in cell_of:
                corner = "tl" if ids[t - 1] == opening else "br"
                true, got = cell_of[ids[t]], cell_of.get(int(guess[t - 1]))
                n[corner] += 1
                exact[corner] += got == true
                if corner == "tl":
                    true_tl.append(true)
                if got is None:  # a word where a cell belongs: the farthest miss on the grid
                    err[corner] += 2 * (side - 1)
                else:
                    err[corner] += abs(got // side - true // side) + abs(got % side - true % side)
    total = n["tl"] + n["br"]
    if not total:
        return None
    result = {
        "box_exact": round((exact["tl"] + exact["br"]) / total, 4),
        "box_err": round((err["tl"] + err["br"]) / total, 3),
    }
    for corner in ("tl", "br"):
        result[f"box_err_{corner}"] = round(err[corner] / n[corner], 3) if n[corner] else None
    if true_tl:
        # what a model that ignores the image scores: one fixed top-left cell, the median row and column
        rows, cols = sorted(k // side for k in true_tl), sorted(k % side for k in true_tl)
        mid_r, mid_c = rows[len(rows) // 2], cols[len(cols) // 2]
        const = sum(abs(k // side - mid_r) + abs(k % side - mid_c) for k in true_tl) / len(true_tl)
        result["box_err_tl_fixed_guess"] = round(const, 3)
    return result


def score(run: Path, bench: Path, untrained: bool, limit: int | None, every: int = 1) -> list[dict[str, Any]]:
    from giqa.training.callbacks import read_metrics
    from giqa.training.evaluate import evaluate_checkpoint

    metrics = read_metrics(run / "metrics.jsonl")
    rows = []
    for step, folder in checkpoints(run, metrics, untrained, every):
        out = run / "curve" / folder.name
        report_file = out / "report.json"
        if report_file.is_file():
            report = json.loads(report_file.read_text())
        else:
            print(f"scoring {folder.name} ...", file=sys.stderr, flush=True)
            report = evaluate_checkpoint(folder, bench, out, limit=limit)
        row: dict[str, Any] = {"step": step, "minutes": minutes_at(metrics, step), "checkpoint": folder.name}
        for split, name in METRICS:
            row[f"{split}_{name}"] = report.get(split, {}).get(name)
        err_file = out / "box_error.json"
        if not err_file.is_file():
            err_file.write_text(json.dumps(box_error(folder, bench)))
        row.update(
            dict.fromkeys(("box_exact", "box_err", "box_err_tl", "box_err_br", "box_err_tl_fixed_guess"))
            | (json.loads(err_file.read_text()) or {})
        )
        row["report"] = report
        rows.append(row)
    return rows


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    x = [r["minutes"] if r["minutes"] is not None else r["step"] for r in rows]
    for key, label, target in (
        ("des_miou", "DES mIoU", 0.60),
        ("des_tag_recall", "DES Tag-Recall", 0.50),
        ("vqa_acc_y", "VQA Acc(Y)", 0.85),
    ):
        line = ax.plot(
            x, [r[key] if r[key] is not None else float("nan") for r in rows], marker="o", label=label
        )
        ax.axhline(target, color=line[0].get_color(), linestyle=":", alpha=0.6)
    ax.set_xlabel("training minutes" if rows and rows[-1]["minutes"] is not None else "optimizer step")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title + " (dotted: the issue's targets)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def fmt(value: Any) -> str:
    return "–" if value is None else (f"{value:.2f}" if abs(value) > 1 else f"{value:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a `giqa train` output folder")
    parser.add_argument("--bench", type=Path, required=True, help="bench JSONL (giqa synth bench)")
    parser.add_argument("--untrained", action="store_true", help="also score the untrained tiny base")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N bench items")
    parser.add_argument(
        "--every", type=int, default=1, help="score only checkpoints at multiples of N steps (and final/)"
    )
    args = parser.parse_args()
    if not args.bench.is_file():
        parser.error(f"no bench file at {args.bench}")
    rows = score(args.run, args.bench, args.untrained, args.limit, args.every)
    if not rows:
        parser.error(f"{args.run} holds no complete checkpoint")
    from giqa.files import atomic_write_json

    (args.run / "curve").mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.run / "curve" / "curve.json", rows)
    name = args.run.parent.name if args.run.name == "train" else args.run.name  # RUN/train: name the run
    plot(rows, args.run / "curve" / "curve.png", name)
    print(
        "| step | minutes | DES mIoU | DES Tag-Recall | DES BLEU@4 | VQA Acc(Y) | box cell error (exact) "
        "| top-left / bottom-right error | top-left error of a fixed guess |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['step']} | {fmt(r['minutes'])} | {fmt(r['des_miou'])} | {fmt(r['des_tag_recall'])} | "
            f"{fmt(r['des_bleu4'])} | {fmt(r['vqa_acc_y'])} | {fmt(r['box_err'])} ({fmt(r['box_exact'])}) | "
            f"{fmt(r['box_err_tl'])} / {fmt(r['box_err_br'])} | {fmt(r['box_err_tl_fixed_guess'])} |"
        )
    print(f"wrote {args.run / 'curve' / 'curve.json'} and curve.png")


if __name__ == "__main__":
    main()
