"""``giqa eval``: score a prediction file on GIQA-Bench (DESIGN §3.4), and compare reports in a chart."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from giqa.cli.common import EXIT_UNAVAILABLE, fail, url_option

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
    """The judge chosen on the command line: remote URL, embedded server, or none (built by the
    composition root, :func:`giqa.backends.factory.make_bench_judge`)."""
    if no_judge:
        yield None
        return
    from giqa.backends.factory import make_bench_judge
    from giqa.settings import get_settings

    with make_bench_judge(
        get_settings(),
        url=judge_url,
        embedded=embedded,
        cache_dir=cache_dir,
        concurrency=concurrency,
        overrides=overrides,
    ) as judge:
        yield judge


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
        None, "--judge-url", callback=url_option, help="OpenAI-compatible judge server, ending in /v1"
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
    cache_dir: Path | None = typer.Option(
        None,
        "--cache-dir",
        help="judge score cache (default: settings eval.judge_cache_dir, else ~/.cache/giqa/judge_cache)",
    ),
    concurrency: int | None = typer.Option(
        None, "--judge-concurrency", min=1, help="judge requests in flight"
    ),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
    html_out: Path | None = typer.Option(
        None, "--html", help="also write a page with each item's image, truth vs predicted boxes and texts"
    ),
    html_limit: int = typer.Option(60, "--html-limit", min=1, help="items shown on the --html page"),
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

    from giqa.evaluation.io import read_bench, read_predictions
    from giqa.files import InputFileError, OutputPathError, check_output_file

    items_path = items_out or out.with_name(f"{out.stem}.items.jsonl")
    try:  # inputs read and outputs checked before the heavy imports, the model and the judge
        check_output_file(out, "report --out")
        check_output_file(items_path, "--items")
        if html_out is not None:
            check_output_file(html_out, "--html")
        items = read_bench(bench)
        preds = read_predictions(predictions, [it.id for it in items])
    except (InputFileError, OutputPathError) as exc:
        raise fail(str(exc)) from exc

    from giqa.evaluation.report import evaluate
    from giqa.evaluation.table import format_summary, format_table
    from giqa.files import atomic_write_json, atomic_write_jsonl
    from giqa.llm.errors import LLMUnavailableError
    from giqa.metrics.similarity import MiniLMSimilarity
    from giqa.settings import get_settings

    overrides = {"model": judge_model, "dialect": judge_dialect}
    settings = get_settings()
    grid = (settings.grid_n, settings.grid_m)
    try:
        with _judge(judge_url, embedded_judge, no_judge, cache_dir, concurrency, overrides) as judge:
            result = evaluate(
                items, preds, similarity=MiniLMSimilarity(), judge=judge, progress=not quiet, grid=grid
            )
    except LLMUnavailableError as exc:  # the embedded server's start errors are of this kind too
        raise fail(
            f"the judge is unavailable: {exc} (scores already given are cached; rerun to go on)",
            EXIT_UNAVAILABLE,
        ) from exc
    atomic_write_json(out, result.report)
    atomic_write_jsonl(items_path, result.items)
    if html_out is not None:
        from giqa.evaluation.html_report import write_report_html

        write_report_html(
            html_out,
            bench_file=bench,
            items=items,
            responses=preds.responses,
            rows=result.items,
            reports=[(name or predictions.stem, result.report)],
            limit=html_limit,
            grid=grid,
        )
        typer.echo(f"page: {html_out}")
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
    from giqa.files import InputFileError, OutputPathError, check_output_file, read_json

    labels = [n.strip() for n in names.split(",")] if names else [p.stem for p in reports]
    if len(labels) != len(reports):
        raise typer.BadParameter(f"{len(labels)} names for {len(reports)} reports")
    if kind not in ("radar", "bars"):
        raise typer.BadParameter("--kind is radar or bars")
    loaded = []
    try:
        check_output_file(out, "chart --out")
        for label, path in zip(labels, reports, strict=True):
            data = read_json(path)
            if not _is_report(data):
                raise fail(
                    f"{path} is not a GIQA-Bench report written by `giqa eval` (no 'des'/'vqa' scores)"
                )
            loaded.append((label, data))
    except (InputFileError, OutputPathError) as exc:
        raise fail(str(exc)) from exc
    compare_chart(loaded, out, kind=kind, title=title)  # type: ignore[arg-type]
    typer.echo(format_table(loaded))
    typer.echo(f"chart: {out}")


def _is_report(data: Any) -> bool:
    """A report has the DESIGN §3.4 sections as objects (their values may be null)."""
    return isinstance(data, dict) and all(isinstance(data.get(k), dict) for k in ("des", "vqa"))
