"""``giqa synth``: make GIQA-Synth training sets and benches, and look at them."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    help="GIQA-Synth: a seeded world of shapes with exact quality ground truth (scenes, bench, preview).",
    no_args_is_help=True,
)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _config(  # noqa: ANN202
    size: int, min_objects: int, max_objects: int, p_hard: float, box_form: str, backgrounds: str = ""
):
    from giqa.settings import get_settings
    from giqa.synth.config import BACKGROUNDS, ConfigError, SynthConfig

    settings = get_settings()
    kinds = tuple(b.strip() for b in backgrounds.split(",") if b.strip()) or BACKGROUNDS
    try:
        return SynthConfig(
            backgrounds=kinds,
            grid_n=settings.grid_n,
            grid_m=settings.grid_m,
            width=size,
            height=size,
            min_objects=min_objects,
            max_objects=max_objects,
            p_hard_case=p_hard,
            box_form=box_form,
        )
    except ConfigError as exc:
        _fail(str(exc))


OVERWRITE_HELP = "replace a non-empty --out folder whole (default: refuse it)"


def _out_dir(out: Path, overwrite: bool) -> None:
    """Refuse before any work: a file in the folder's place, or an earlier set without --overwrite."""
    from giqa.files import is_empty_dir

    if out.exists() and not out.is_dir():
        _fail(f"--out {out} exists and is not a directory")
    if out.is_dir() and not is_empty_dir(out) and not overwrite:
        _fail(f"--out {out} is not empty: pass --overwrite to replace it whole, or choose another folder")


@app.command()
def scenes(
    n: int = typer.Option(..., "--n", min=1, help="number of scenes to generate"),
    seed: int = typer.Option(0, "--seed", min=0, max=999_999_999, help="world seed (same seed, same bytes)"),
    out: Path = typer.Option(..., "--out", help="output folder (images/ and annotations.jsonl)"),
    size: int = typer.Option(128, "--size", min=48, max=2048, help="image side in pixels"),
    start: int = typer.Option(
        0, "--start", min=0, help="first scene index (shards of one world go to separate folders)"
    ),
    min_objects: int = typer.Option(2, "--min-objects", min=1, max=8, help="fewest objects per scene"),
    max_objects: int = typer.Option(5, "--max-objects", min=1, max=8, help="most objects per scene"),
    p_hard: float = typer.Option(0.25, "--p-hard", min=0.0, max=1.0, help="share of 'two of a kind' scenes"),
    box_form: str = typer.Option("grid", "--box-form", help="box text form: grid or norm"),
    backgrounds: str = typer.Option(
        "",
        "--backgrounds",
        help="comma-separated background kinds to draw from "
        "(gradient, radial, stripes, checker, noise, plain; default: all)",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show a progress bar"),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Write a training-style set: N scenes as images/*.png plus annotations.jsonl."""
    from giqa.synth.writer import write_scenes

    _out_dir(out, overwrite)
    config = _config(size, min_objects, max_objects, p_hard, box_form, backgrounds)
    try:
        path = write_scenes(n, seed, out, config, progress=progress, start=start, overwrite=overwrite)
    except (FileExistsError, NotADirectoryError) as exc:
        _fail(str(exc))
    typer.echo(f"wrote {n} scenes to {path}")


@app.command()
def bench(
    seed: int = typer.Option(
        0, "--seed", min=0, max=999_999_999, help="bench seed (its world never overlaps training)"
    ),
    out: Path = typer.Option(..., "--out", help="output folder (bench.jsonl, scenes.jsonl, images/)"),
    size: int = typer.Option(128, "--size", min=48, max=2048, help="image side in pixels"),
    box_form: str = typer.Option("grid", "--box-form", help="box text form: grid or norm"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show a progress bar"),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Write a GIQA-Synth-Bench: 100 images, 100 DES + 150 VQA items in the paper's mix."""
    from collections import Counter

    from giqa.synth.bench import read_bench, write_bench

    _out_dir(out, overwrite)
    config = _config(size, 2, 5, 0.25, box_form)
    try:
        path = write_bench(seed, out, config, progress=progress, overwrite=overwrite)
    except (FileExistsError, NotADirectoryError) as exc:
        _fail(str(exc))
    items = read_bench(path)
    mix = Counter(i.qtype or "des" for i in items)
    yes = sum(1 for i in items if i.qtype == "yes_no" and i.answer == "Yes.")
    typer.echo(
        f"wrote {len(items)} items to {path}: "
        + ", ".join(f"{k} {v}" for k, v in sorted(mix.items()))
        + f" (yes {yes}, no {mix['yes_no'] - yes})"
    )


@app.command()
def export(
    directory: Path = typer.Argument(..., help="a scenes folder written by 'giqa synth scenes'"),
    out: Path = typer.Option(..., "--out", help="LLaVA training JSON to write (a list of conversations)"),
    yes_no_style: str = typer.Option(
        "plain",
        "--yes-no-style",
        help="plain: the paper's 'Yes.'/'No.'; restate: say what the region is like, then the verdict "
        "('The red circle is noisy. No.'), a denser signal for small models",
    ),
    only: str = typer.Option(
        "des,yes_no,what,why,how",
        "--only",
        help="comma-separated sample kinds to keep: des, yes_no, what, why, how (e.g. 'des' for DES-only)",
    ),
    vqa_per_scene: int | None = typer.Option(
        None,
        "--vqa-per-scene",
        min=0,
        help="keep at most this many VQA samples per scene (evenly spread over its items; every DES sample "
        "stays): sets the DES / VQA mix",
    ),
) -> None:
    """Export a scenes folder as LLaVA conversation records (one DES sample + the VQA items per scene)."""
    from giqa.files import OutputPathError, check_output_file
    from giqa.synth.export import SAMPLE_KINDS, YES_NO_STYLES, write_llava

    if not directory.is_dir():
        _fail(f"{directory} is not a directory")
    if yes_no_style not in YES_NO_STYLES:
        _fail(f"--yes-no-style must be one of {', '.join(YES_NO_STYLES)}, got {yes_no_style!r}")
    try:
        kinds = [k.strip() for k in only.split(",") if k.strip()]
        if not kinds or set(kinds) - set(SAMPLE_KINDS):
            _fail(f"--only takes kinds among {', '.join(SAMPLE_KINDS)}, got {only!r}")
        check_output_file(out, "--out")
        path, count = write_llava(
            directory,
            out,
            yes_no_style=yes_no_style,  # type: ignore[arg-type]
            kinds=kinds,
            vqa_per_scene=vqa_per_scene,
        )
    except (FileNotFoundError, ValueError, OutputPathError) as exc:
        _fail(str(exc))
    typer.echo(f"wrote {count} samples to {path}")


@app.command()
def preview(
    directory: Path = typer.Argument(
        ..., help="a scenes folder (annotations.jsonl) or a bench folder (bench.jsonl)"
    ),
    out: Path = typer.Option(Path("preview.html"), "--out", help="HTML page to write"),
    png: Path | None = typer.Option(None, "--png", help="also write a PNG contact sheet here"),
    limit: int = typer.Option(60, "--limit", min=1, help="at most this many images"),
) -> None:
    """Draw the ground-truth boxes and labels over the images, beside their texts, in one HTML page."""
    from giqa.files import OutputPathError, check_output_file
    from giqa.synth.preview import write_html, write_sheet

    if not directory.is_dir():
        _fail(f"{directory} is not a directory")
    try:
        check_output_file(out, "--out")
        if png is not None:
            check_output_file(png, "--png")
        page = write_html(directory, out, limit)
        typer.echo(f"wrote {page}")
        if png is not None:
            typer.echo(f"wrote {write_sheet(directory, png, limit)}")
    except (FileNotFoundError, ValueError, OutputPathError) as exc:
        _fail(str(exc))
