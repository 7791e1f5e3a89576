"""The optional end-of-training evaluation: the evaluator's own runner and report, without a judge.

It is what ``giqa predict --model <final> --bench B`` then ``giqa eval --no-judge`` do, in one call: the
LLM-judged metrics (LLM-Score, Acc(W)) stay null here; score them later with ``giqa eval`` and a judge.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def evaluate_checkpoint(
    model_dir: Path, bench: Path, out_dir: Path, limit: int | None = None
) -> dict[str, Any]:
    """Answer ``bench`` with ``model_dir`` and write ``predictions.jsonl``, ``report.json`` in ``out_dir``."""
    import torch

    from giqa.backends.factory import make_vlm
    from giqa.evaluation.run import predict_and_score
    from giqa.files import atomic_write_json, atomic_write_jsonl

    out_dir.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    vlm = make_vlm(model_dir, device=device)
    scored = predict_and_score(vlm, bench, out_dir / "predictions.jsonl", limit=limit)
    atomic_write_json(out_dir / "report.json", scored.result.report)
    atomic_write_jsonl(out_dir / "report.items.jsonl", scored.result.items)
    return scored.result.report
