"""``giqa serve inference``: run the inference service (services/inference) under uvicorn.

With nothing configured it serves the shipped demo VLM on 127.0.0.1:8000; the options override the
``inference`` and ``service`` settings (``GIQA_INFERENCE__*``, ``GIQA_SERVICE__*``) for this run.
``python -m giqa.cli.serve_inference`` runs the same command on its own.
"""

from __future__ import annotations

import typer

from giqa.cli.common import EXIT_BAD_INPUT, fail


def inference(
    host: str | None = typer.Option(None, "--host", help="address to bind (default: service.host)"),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="port to bind"),
    model: str | None = typer.Option(
        None,
        "--model",
        help="LLaVA-1.5/1.6 checkpoint folder, or a vLLM base URL ending in /v1 (with --backend vllm); "
        "default: inference.model, else the shipped demo VLM",
    ),
    backend: str | None = typer.Option(None, "--backend", help="transformers or vllm"),
    served_model_name: str | None = typer.Option(None, "--served-model-name", help="model id in answers"),
    device: str | None = typer.Option(None, "--device", help="torch device (transformers backend)"),
    dtype: str | None = typer.Option(None, "--dtype", help="float32, float16 or bfloat16"),
    max_batch_size: int | None = typer.Option(
        None, "--max-batch-size", min=1, help="requests per model call"
    ),
    batch_wait_ms: float | None = typer.Option(None, "--batch-wait-ms", min=0, help="batch fill window"),
    queue_size: int | None = typer.Option(None, "--queue-size", min=1, help="waiting requests before 503"),
    max_new_tokens: int | None = typer.Option(None, "--max-new-tokens", min=1, help="generation cap"),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level"),
) -> None:
    """Serve grounded-IQA answers over HTTP: /v1/assess, /v1/ask, /v1/score, /v1/chat/completions, and a
    playground page at /."""
    from pydantic import ValidationError

    from giqa.settings import InferenceSettings, SettingsError, get_settings

    overrides = {
        "model": model,
        "backend": backend,
        "served_model_name": served_model_name,
        "device": device,
        "dtype": dtype,
        "max_batch_size": max_batch_size,
        "batch_wait_ms": batch_wait_ms,
        "queue_size": queue_size,
        "max_new_tokens": max_new_tokens,
    }
    try:
        base = get_settings()
        section = base.inference.model_dump() | {k: v for k, v in overrides.items() if v is not None}
        settings = base.model_copy(update={"inference": InferenceSettings.model_validate(section)})
    except (SettingsError, ValidationError) as exc:
        raise fail(f"invalid settings: {exc}", EXIT_BAD_INPUT) from None
    cfg = settings.inference
    if cfg.backend == "transformers" and cfg.model is not None:
        from giqa.models.llava import CheckpointError, detect_arch

        try:
            detect_arch(cfg.model)  # a clear error now, not a service that never gets ready
        except CheckpointError as exc:
            raise fail(str(exc), EXIT_BAD_INPUT) from None
    from giqa.cli.serve import serve

    serve("inference", host, port, log_level, settings)


if __name__ == "__main__":
    typer.run(inference)
