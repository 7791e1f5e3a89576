"""``giqa demo``: the whole loop on embedded defaults, in a few minutes on a CPU, ending in one HTML page.

GIQA-Synth scenes → ``annotate`` (the embedded SmolLM2 server for Stage 1 and VQA, the shipped demo
detector, the classical judge) → a LLaVA dataset → the shipped demo VLM answers a GIQA-Synth-Bench →
``eval`` (no judge) → ``report.html``: the metric table, each bench item's image with ground-truth boxes
beside the predicted ones and the texts, then the annotated scenes with the boxes the pipeline found.

Every step goes through the same builders the other commands and the services use (backends.factory,
pipeline.run, predict.runner, evaluation.report), so the demo exercises the real paths, not a shortcut.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Annotated, Any

import typer


def _step(message: str) -> float:
    typer.echo(f"==> {message}", err=True)
    return time.perf_counter()


def _done(started: float, detail: str = "") -> None:
    typer.echo(
        f"    done in {time.perf_counter() - started:.1f} s{'; ' + detail if detail else ''}", err=True
    )


def _annotated_cards(annotate_dir: Path, limit: int) -> list[Any]:
    """Cards of the DES samples the pipeline produced: the fused answer's boxes over the scene image."""
    from giqa.cards import Box, Card
    from giqa.grounded_text import parse

    train = annotate_dir / "train.json"
    rows = json.loads(train.read_text(encoding="utf-8")) if train.is_file() else []
    cards = []
    for row in rows:
        if row.get("task") != "des":
            continue
        answer = row["conversations"][1]["value"]
        card = Card(image=row["image"], title=f"annotated: {row['id']}")
        for mention in parse(answer):
            for b in mention.boxes:
                card.boxes.append(Box(b.as_list(), f"pipeline: {mention.phrase}", "#ffcc00"))
        card.texts.append(("fused description (training answer)", answer))
        cards.append(card)
        if len(cards) >= limit:
            break
    return cards


def demo(
    out: Annotated[Path, typer.Option("--out", help="folder for everything the demo writes")] = Path(
        "out/demo"
    ),
    scenes: Annotated[int, typer.Option("--scenes", min=1, help="synth scenes to annotate")] = 6,
    bench_seed: Annotated[int, typer.Option("--bench-seed", min=0, help="GIQA-Synth-Bench seed")] = 0,
    bench_items: Annotated[
        int, typer.Option("--bench-items", min=1, help="bench items the demo VLM answers (of 250)")
    ] = 250,
    llm_url: Annotated[
        str | None,
        typer.Option("--llm-url", help="OpenAI-compatible /v1 URL for Stage 1/VQA (default: embedded)"),
    ] = None,
    vlm: Annotated[
        str | None,
        typer.Option(
            "--vlm", help="grounded-IQA model to score: checkpoint folder or /v1 URL (default: shipped)"
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an earlier demo in --out")] = False,
) -> None:
    """Synth scenes → annotate → dataset → demo VLM on a synth bench → eval → one HTML report."""
    from giqa.backends.factory import annotate_config, make_detector, make_judge, make_vlm
    from giqa.cli.annotate import chat_llm
    from giqa.evaluation.html_report import write_report_html
    from giqa.evaluation.run import predict_and_score
    from giqa.evaluation.table import format_table
    from giqa.files import atomic_write_json, atomic_write_text
    from giqa.pipeline.export import export_from_audit
    from giqa.pipeline.inputs import read_inputs
    from giqa.pipeline.run import Backends, run_annotation
    from giqa.settings import get_settings
    from giqa.synth import read_scenes, write_bench, write_scenes
    from giqa.synth.bench import BENCH_FILE
    from giqa.synth.preview import write_html

    if out.exists() and any(out.iterdir()):
        if not overwrite:
            typer.echo(f"error: {out} is not empty; pass --overwrite to replace it", err=True)
            raise typer.Exit(2)
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = get_settings()
    total = time.perf_counter()

    t = _step(f"GIQA-Synth: {scenes} training-style scenes and a bench (seed {bench_seed})")
    scenes_dir, bench_dir = out / "scenes", out / "bench"
    write_scenes(scenes, 0, scenes_dir, progress=False)
    write_bench(bench_seed, bench_dir, progress=False)
    write_html(bench_dir, bench_dir / "preview.html")
    descriptions = out / "descriptions.jsonl"
    atomic_write_text(
        descriptions,
        "".join(
            json.dumps({"image": r.image, "description": r.description}) + "\n"
            for r in read_scenes(scenes_dir)
        ),
    )
    _done(t)

    t = _step("annotate: Stage 1 + VQA (LLM), Stage 2 (demo detector), Stage 3 (classical judge), Stage 4")
    annotate_dir = out / "annotate"
    items = read_inputs(descriptions, scenes_dir, max_chars=settings.annotate.max_description_chars)
    backends_args = {
        "detector": make_detector(settings.pipeline),
        "judge": make_judge(settings.pipeline),
    }
    with chat_llm(settings, llm_url) as llm:
        counts = run_annotation(
            items,
            scenes_dir,
            annotate_dir,
            Backends(llm=llm, **backends_args),
            annotate_config(settings),
        )
    summary = export_from_audit(annotate_dir / "audit.jsonl", annotate_dir, seed=settings.annotate.seed)
    _done(
        t, f"{counts['processed']} samples, {counts['failed']} failed; dataset {annotate_dir / 'train.json'}"
    )

    t = _step("the demo VLM answers the bench, eval without a judge (LLM-Score and Acc(W) need --judge-url)")
    bench_file = bench_dir / BENCH_FILE
    model = make_vlm(vlm)
    scored = predict_and_score(
        model, bench_file, out / "predictions.jsonl", limit=bench_items, max_new_tokens=160, progress=True
    )
    bench, preds, result = scored.bench, scored.predictions, scored.result
    grid = (settings.grid_n, settings.grid_m)
    atomic_write_json(out / "report.json", result.report)
    table = format_table([(model.model_name, result.report)])
    _done(t, f"model {model.model_name}")

    stats = (
        (annotate_dir / "stats.md").read_text(encoding="utf-8")
        if (annotate_dir / "stats.md").is_file()
        else ""
    )
    from giqa.cards import card_html

    annotated = "".join(card_html(c, scenes_dir, 3) for c in _annotated_cards(annotate_dir, 6))
    extra = (
        f"<h2>Annotation run ({counts['processed']} samples)</h2><pre>{_escape(stats)}</pre>{annotated}"
        "<h2>Bench items</h2>"
    )
    page = write_report_html(
        out / "report.html",
        bench_file=bench_file,
        items=bench,
        responses=preds.responses,
        rows=result.items,
        reports=[(model.model_name, result.report)],
        title="Grounding-IQA demo",
        intro=f"Everything on embedded defaults, in {time.perf_counter() - total:.0f} s.",
        extra_html=extra,
        grid=grid,
    )
    typer.echo(table)
    typer.echo(
        f"dataset: {annotate_dir / 'train.json'} ({summary['report']['counts'].get('ok', 0)} samples ok)"
    )
    typer.echo(f"open {page}")


def _escape(text: str) -> str:
    import html

    return html.escape(text)
