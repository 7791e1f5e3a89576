"""Answer a bench with a model and score the answers, in one call: what ``giqa predict`` followed by
``giqa eval --no-judge`` do, for callers that hold a model already (the demo, training's end-of-run
evaluation, the evaluator service). The LLM-judged metrics (LLM-Score, Acc(W)) stay null: score them
later with ``giqa eval`` and a judge.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from giqa.evaluation.io import PredictionSet, read_bench, read_predictions
from giqa.evaluation.report import Evaluation, evaluate
from giqa.ports import GroundedVLM
from giqa.schemas import BenchItem


@dataclass
class Scored:
    bench: list[BenchItem]
    predictions: PredictionSet
    result: Evaluation


def predict_and_score(
    vlm: GroundedVLM,
    bench_file: Path,
    predictions_file: Path,
    *,
    limit: int | None = None,
    max_new_tokens: int = 256,
    grid: tuple[int, int] | None = None,
    progress: bool = False,
) -> Scored:
    """Answer the first ``limit`` items of ``bench_file`` into ``predictions_file`` (replaced) and score
    them without a judge on ``grid`` (default: settings ``grid_n`` × ``grid_m``)."""
    from giqa.metrics.similarity import MiniLMSimilarity
    from giqa.predict.runner import run_predictions

    if grid is None:
        from giqa.settings import get_settings

        settings = get_settings()
        grid = (settings.grid_n, settings.grid_m)
    run_predictions(
        bench_file,
        vlm,
        predictions_file,
        overwrite=True,
        limit=limit,
        max_new_tokens=max_new_tokens,
        progress=progress,
    )
    bench = read_bench(bench_file)
    bench = bench[:limit] if limit else bench
    predictions = read_predictions(predictions_file, [it.id for it in bench])
    return Scored(bench, predictions, evaluate(bench, predictions, similarity=MiniLMSimilarity(), grid=grid))
