"""``giqa eval``: score a prediction file on GIQA-Bench (DESIGN §3.4), and compare reports in a chart."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(
    help="Score predictions on GIQA-Bench: BLEU@4, LLM-Score, Acc(Y/W/Total), mIoU, Tag-Recall.",
    invoke_without_command=True,
    no_args_is_help=True,
)


@contextlib.contextmanager
def _judge(
    judge_url: str | None,
    embedded: bool,
    no_judge: bool,
    cache_dir: Path | None,
    concurrency: int | None,
    overrides: dict[str, Any],
) -> Iterator[Any]:
    """The judge chosen on the command line (composition root): remote URL, embedded server, or none."""
    if no_judge:
        yield None
        return
    from giqa.evaluation.cache import JudgeCache
    from giqa.evaluation.judge import Judge
    from giqa.llm.client import OpenAIChatClient
    from giqa.llm.errors import LLMUnavailableError
    from giqa.settings import get_settings

    settings = get_settings()
    llm_settings = settings.llm.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    cache = JudgeCache(cache_dir or settings.eval.judge_cache_dir or settings.data_dir / "judge_cache")
    workers = concurrency or settings.eval.judge_concurrency
    url = None if embedded else (judge_url or settings.llm.url)
    try:
        if url:
            with OpenAIChatClient.from_settings(llm_settings, url=url) as client:
                health = client.health()
                if not health.ok:
                    raise LLMUnavailableError(f"judge at {url} is not answering: {health.detail}")
                yield Judge(client, cache=cache, concurrency=workers, url=url)
            return
        from giqa.llm.server import EmbeddedLLMServer
        from giqa.llm.signals import exit_on_signals

        with (
            exit_on_signals(),
            EmbeddedLLMServer.from_settings(llm_settings) as server,
            server.client_from_settings(llm_settings) as client,
        ):
            gguf = server.model_path.name if server.model_path else "embedded"
            yield Judge(
                client, cache=cache, concurrency=workers, url=server.url, model_id=f"llama.cpp/{gguf}"
            )
    finally:
        cache.close()


@app.callback()
def evaluate_command(
    ctx: typer.Context,
    bench: Path | None = typer.Option(None, "--bench", help="bench JSONL (DESIGN §3.4)"),
    predictions: Path | None = typer.Option(None, "--predictions", help="predictions JSONL: {id, response}"),
    out: Path | None = typer.Option(None, "--out", help="report JSON to write"),
    items_out: Path | None = typer.Option(
        None, "--items", help="per-item details JSONL (default: <out stem>.items.jsonl beside the report)"
    ),
    name: str | None = typer.Option(
        None, "--name", help="method name in the printed table (default: file stem)"
    ),
    judge_url: str | None = typer.Option(
        None, "--judge-url", help="OpenAI-compatible judge server, ending in /v1"
    ),
    judge_model: str | None = typer.Option(
        None, "--judge-model", help="model name at --judge-url (vLLM's served name)"
    ),
    judge_dialect: str | None = typer.Option(
        None,
        "--judge-dialect",
        help="structured output: json_schema (vLLM, OpenAI) or json_object (llama.cpp)",
    ),
    embedded_judge: bool = typer.Option(False, "--embedded-judge", help="start the embedded SmolLM2 judge"),
    no_judge: bool = typer.Option(False, "--no-judge", help="no judge: LLM-Score and Acc(W) are N/A"),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="judge score cache folder"),
    concurrency: int | None = typer.Option(
        None, "--judge-concurrency", min=1, help="judge requests in flight"
    ),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
) -> None:
    """Score --predictions against --bench and write --out; print a Table-5 row.

    Without a judge option the judge is the configured LLM (GIQA_LLM__URL) or, when none is configured, the
    embedded SmolLM2 server. Subcommand: `giqa eval compare r1.json r2.json --out chart.png`.
    """
    if ctx.invoked_subcommand is not None:
        return
    if bench is None or predictions is None or out is None:
        raise typer.BadParameter("--bench, --predictions and --out are required")
    if sum([bool(judge_url), embedded_judge, no_judge]) > 1:
        raise typer.BadParameter("choose one of --judge-url, --embedded-judge, --no-judge")
    if judge_dialect not in (None, "json_schema", "json_object"):
        raise typer.BadParameter("--judge-dialect is json_schema or json_object")

    from giqa.evaluation.io import (
        BenchError,
        read_bench,
        read_predictions,
        write_json_atomic,
        write_jsonl_atomic,
    )
    from giqa.evaluation.report import evaluate
    from giqa.evaluation.table import format_summary, format_table
    from giqa.llm.errors import LLMUnavailableError
    from giqa.metrics.similarity import MiniLMSimilarity

    try:
        items = read_bench(bench)
        preds = read_predictions(predictions, [it.id for it in items])
    except (BenchError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    overrides = {"model": judge_model, "dialect": judge_dialect}
    try:
        with _judge(judge_url, embedded_judge, no_judge, cache_dir, concurrency, overrides) as judge:
            result = evaluate(items, preds, similarity=MiniLMSimilarity(), judge=judge, progress=not quiet)
    except LLMUnavailableError as exc:  # the embedded server's start errors are of this kind too
        typer.echo(
            f"error: the judge is unavailable: {exc}\n(scores already given are cached; rerun to go on)",
            err=True,
        )
        raise typer.Exit(3) from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, result.report)
    items_path = items_out or out.with_name(f"{out.stem}.items.jsonl")
    write_jsonl_atomic(items_path, result.items)
    typer.echo(format_table([(name or predictions.stem, result.report)]))
    typer.echo(format_summary(result.report))
    typer.echo(f"report: {out}\nper-item details: {items_path}")


@app.command("compare")
def compare_command(
    reports: list[Path] = typer.Argument(..., help="report JSON files written by `giqa eval`"),
    out: Path = typer.Option(..., "--out", help="PNG to write"),
    kind: str = typer.Option("radar", "--kind", help="radar (the paper's Fig. 1) or bars"),
    names: str | None = typer.Option(None, "--names", help="comma-separated labels (default: file stems)"),
    title: str = typer.Option("", "--title"),
) -> None:
    """Draw several reports in one chart and print them as one table."""
    from giqa.evaluation.compare import compare_chart
    from giqa.evaluation.table import format_table

    labels = [n.strip() for n in names.split(",")] if names else [p.stem for p in reports]
    if len(labels) != len(reports):
        raise typer.BadParameter(f"{len(labels)} names for {len(reports)} reports")
    loaded = []
    for label, path in zip(labels, reports, strict=True):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            typer.echo(f"error: cannot read report {path}: {exc}", err=True)
            raise typer.Exit(2) from exc
        if not isinstance(data, dict) or "des" not in data or "vqa" not in data:
            typer.echo(f"error: {path} is not a GIQA-Bench report (no 'des'/'vqa' sections)", err=True)
            raise typer.Exit(2)
        loaded.append((label, data))
    if kind not in ("radar", "bars"):
        raise typer.BadParameter("--kind is radar or bars")
    compare_chart(loaded, out, kind=kind, title=title)  # type: ignore[arg-type]
    typer.echo(format_table(loaded))
    typer.echo(f"chart: {out}")
