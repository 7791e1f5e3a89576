"""``giqa predict``: answer every bench item with a model and write a predictions JSONL."""

from __future__ import annotations

from pathlib import Path

import typer

from giqa.cli.common import EXIT_UNAVAILABLE, check_url, fail


def predict_command(
    bench: Path = typer.Option(..., "--bench", help="bench JSONL (DESIGN §3.4)"),
    model: str | None = typer.Option(
        None,
        "--model",
        help="local LLaVA-1.5/1.6 checkpoint folder, or an OpenAI-compatible URL ending in /v1 "
        "(default: the shipped demo VLM, shared/giqa/assets/vlm)",
    ),
    out: Path = typer.Option(..., "--out", help="predictions JSONL to write ({id, response} per line)"),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="items per generate call / per append"),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", min=1),
    resume: bool = typer.Option(False, "--resume", help="keep the answers already in --out, answer the rest"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing --out"),
    limit: int | None = typer.Option(None, "--limit", min=1, help="answer only the first N items"),
    served_model: str | None = typer.Option(
        None, "--served-model", help="model name at the URL (default: the first one /models lists)"
    ),
    concurrency: int = typer.Option(4, "--concurrency", min=1, help="requests in flight (URL models)"),
    device: str = typer.Option("cpu", "--device", help="torch device for a local checkpoint"),
    dtype: str | None = typer.Option(
        None, "--dtype", help="torch dtype for a local checkpoint, e.g. bfloat16"
    ),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
) -> None:
    """Run a LLaVA-family model (local checkpoint or vLLM endpoint) over a bench, batched and resumable.

    The bench, its images and --out are checked before the model loads or the endpoint is called.
    """
    from giqa.files import InputFileError, OutputPathError
    from giqa.llm.errors import LLMUnavailableError
    from giqa.ports import GroundedVLM
    from giqa.predict.runner import PredictError, plan_predictions, run_plan

    if resume and overwrite:
        raise typer.BadParameter("--resume and --overwrite exclude each other")
    is_url = model is not None and "://" in model  # a folder never has one; a bad URL is refused
    if model is not None and is_url:
        model = check_url(model, "--model")
    try:
        plan = plan_predictions(bench, out, resume=resume, overwrite=overwrite, limit=limit)
    except (InputFileError, OutputPathError, PredictError) as exc:
        raise fail(str(exc)) from exc
    from giqa.backends.factory import JudgeConfigError, make_vlm
    from giqa.models.llava import CheckpointError

    vlm: GroundedVLM
    try:
        vlm = make_vlm(model, device=device, dtype=dtype, served_model=served_model, concurrency=concurrency)
        if is_url:
            health = vlm.health()
            if not health.ok:
                raise ConnectionError(health.detail)
    except (CheckpointError, JudgeConfigError) as exc:
        raise fail(str(exc)) from exc
    except ConnectionError as exc:
        raise fail(f"the model endpoint does not answer: {exc}", EXIT_UNAVAILABLE) from exc
    try:
        summary = run_plan(
            plan, vlm, batch_size=batch_size, max_new_tokens=max_new_tokens, progress=not quiet
        )
    except (ConnectionError, LLMUnavailableError) as exc:
        kept = "; the answers so far are kept, --resume goes on" if out.is_file() else ""
        raise fail(f"the model endpoint stopped answering: {exc}{kept}", EXIT_UNAVAILABLE) from exc
    except PredictError as exc:
        raise fail(str(exc)) from exc
    typer.echo(
        f"{summary.answered} answered, {summary.already_done} already in {summary.out} "
        f"({summary.total} items); model {vlm.model_name}"
    )
