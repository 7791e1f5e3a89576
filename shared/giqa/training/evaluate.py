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
    from giqa.evaluation.io import read_bench, read_predictions
    from giqa.evaluation.report import evaluate
    from giqa.files import atomic_write_json, atomic_write_jsonl
    from giqa.metrics.similarity import MiniLMSimilarity
    from giqa.predict.runner import run_predictions

    out_dir.mkdir(parents=True, exist_ok=True)
    predictions = out_dir / "predictions.jsonl"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    vlm = make_vlm(model_dir, device=device)
    run_predictions(bench, vlm, predictions, overwrite=True, limit=limit, progress=False)
    items = read_bench(bench)
    items = items[:limit] if limit else items
    from giqa.settings import get_settings

    settings = get_settings()
    result = evaluate(
        items,
        read_predictions(predictions, [it.id for it in items]),
        similarity=MiniLMSimilarity(),
        grid=(settings.grid_n, settings.grid_m),
    )
    atomic_write_json(out_dir / "report.json", result.report)
    atomic_write_jsonl(out_dir / "report.items.jsonl", result.items)
    return result.report
