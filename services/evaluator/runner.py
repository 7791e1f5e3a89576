"""One evaluation run to its end: what ``giqa predict`` + ``giqa eval`` do, with inputs and outputs in the
object store and the report in Postgres.

1. claim the evaluation (pending → running; a task delivered again does nothing);
2. fetch the bench JSONL and the images it names (relative to the bench, under ``images_prefix``, by
   default the bench key's folder) into a temporary folder;
3. the predictions: the uploaded file (``predictions`` kind), or answers from the model: an
   OpenAI-compatible URL (the inference service, vLLM) or a registered checkpoint fetched by name
   (:func:`giqa.infra.checkpoints.local_checkpoint`), through :func:`giqa.backends.factory.make_vlm`;
4. score them (:func:`giqa.evaluation.report.evaluate`, the function ``giqa eval`` calls, with the judge at
   ``judge_url`` or none: then LLM-Score and Acc(W) are null, as with ``giqa eval --no-judge``);
5. write ``reports/<id>/report.json``, ``items.jsonl``, ``chart.png`` (the paper's radar,
   :func:`giqa.evaluation.compare.compare_chart`) and ``predictions.jsonl``, and the report into the row.

Failures of the input (a bench that does not parse, a checkpoint not registered, a model URL that does not
answer) fail the evaluation with the reason; nothing is half-written (the row is updated last).
"""

from __future__ import annotations

import json
import logging
import posixpath
import tempfile
from pathlib import Path
from typing import Any

from giqa.infra.db import jobs_dal

log = logging.getLogger("giqa.evaluator.runner")

FILES = {
    "report": "report.json",
    "items": "items.jsonl",
    "chart": "chart.png",
    "predictions": "predictions.jsonl",
}


def fetch_bench(ctx: Any, view: jobs_dal.EvaluationView, folder: Path) -> Path:
    """The bench JSONL and its images under ``folder`` (image paths kept relative to the bench)."""
    from giqa.evaluation.io import read_bench
    from giqa.infra.storage import NotFound

    bench = folder / "bench.jsonl"
    ctx.store.get_file(view.bench_key, bench)
    prefix = (view.images_prefix or posixpath.dirname(view.bench_key)).rstrip("/")
    root = folder.resolve()
    for image in sorted({item.image for item in read_bench(bench)}):
        target = (folder / image).resolve()
        if not target.is_relative_to(root) or Path(image).is_absolute():
            raise ValueError(f"bench image path {image!r} leaves the bench folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        key = f"{prefix}/{image}" if prefix else image
        try:
            ctx.store.get_file(key, target)
        except NotFound as exc:
            raise ValueError(f"bench image {image!r} is not in the store ({key})") from exc
    return bench


def make_model(ctx: Any, view: jobs_dal.EvaluationView) -> Any:
    from giqa.backends.factory import make_vlm
    from giqa.infra.checkpoints import local_checkpoint

    settings = ctx.settings
    device = settings.pipeline.device
    if device is None:  # as the pipeline's backends: CUDA where there is one
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if view.model_kind == "url":
        return make_vlm(view.model_ref, served_model=view.options.get("served_model"))
    folder = local_checkpoint(settings, view.model_ref, sessions=ctx.session, store=ctx.store)
    return make_vlm(folder, device=device)


def score(ctx: Any, view: jobs_dal.EvaluationView, folder: Path) -> tuple[Any, Path]:
    """The evaluation (report + per-item rows) and the predictions file it scored."""
    from contextlib import nullcontext

    from giqa.evaluation.io import read_bench, read_predictions
    from giqa.evaluation.report import evaluate
    from giqa.metrics.similarity import MiniLMSimilarity

    settings = ctx.settings
    grid = (settings.grid_n, settings.grid_m)
    bench_file = fetch_bench(ctx, view, folder)
    limit = view.options.get("limit")
    predictions = folder / "predictions.jsonl"
    if view.model_kind == "predictions":
        ctx.store.get_file(view.model_ref, predictions)
    else:
        from giqa.predict.runner import run_predictions

        vlm = make_model(ctx, view)
        try:
            run_predictions(
                bench_file,
                vlm,
                predictions,
                overwrite=True,
                limit=limit,
                max_new_tokens=int(view.options.get("max_new_tokens") or 256),
                progress=False,
            )
        finally:
            closer = getattr(vlm, "close", None)
            if callable(closer):
                closer()
    items = read_bench(bench_file)
    items = items[:limit] if limit else items
    preds = read_predictions(predictions, [it.id for it in items])
    judge_cm: Any = nullcontext(None)
    if view.judge_url:
        from giqa.backends.factory import make_bench_judge

        judge_cm = make_bench_judge(settings, url=view.judge_url)
    with judge_cm as judge:
        result = evaluate(items, preds, similarity=MiniLMSimilarity(), judge=judge, grid=grid)
    return result, predictions


def run_evaluation(ctx: Any, eval_id: str) -> str:
    """Run the evaluation to its end (see the module docstring); its final state ('' when not claimed)."""
    from giqa.evaluation.compare import compare_chart
    from giqa.files import atomic_write_json, atomic_write_jsonl
    from giqa.infra.storage import report_key

    with ctx.session() as s:
        if not jobs_dal.claim_evaluation(s, eval_id=eval_id):
            return ""
        view = jobs_dal.get_evaluation(s, eval_id=eval_id)
    assert view is not None
    try:
        with tempfile.TemporaryDirectory(prefix="giqa-eval-") as tmp:
            folder = Path(tmp)
            result, predictions = score(ctx, view, folder)
            out = folder / "out"
            out.mkdir()
            atomic_write_json(out / FILES["report"], result.report)
            atomic_write_jsonl(out / FILES["items"], result.items)
            compare_chart([(view.name, result.report)], out / FILES["chart"], title=view.name)
            keys = {kind: report_key(eval_id, name) for kind, name in FILES.items()}
            kinds = {".json": "application/json", ".png": "image/png", ".jsonl": "application/x-ndjson"}
            for kind, name in FILES.items():
                path = predictions if kind == "predictions" else out / name
                ctx.store.put_file(keys[kind], path, content_type=kinds[Path(name).suffix])
        with ctx.session() as s:
            jobs_dal.finish_evaluation(
                s,
                eval_id=eval_id,
                report=json.loads(json.dumps(result.report)),
                report_key=keys["report"],
                items_key=keys["items"],
                chart_key=keys["chart"],
                predictions_key=keys["predictions"],
            )
    except Exception as exc:
        log.exception("evaluation %s failed", eval_id)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        with ctx.session() as s:
            jobs_dal.fail_evaluation(s, eval_id=eval_id, error=f"{type(exc).__name__}: {reason}"[:2000])
        return "failed"
    return "succeeded"
