"""``giqa train``: supervised fine-tuning of a LLaVA-family model (see ``giqa.training``).

The flags are generated from :class:`giqa.training.config.TrainConfig`, so typer hands the raw arguments
to that parser; ``giqa train --help`` lists every field with its help text and default.
"""

from __future__ import annotations

import logging

import typer


def train_command(ctx: typer.Context) -> None:
    """Fine-tune on a LLaVA JSON: giqa train --config configs/train/tiny.yaml [--field value ...]."""
    from giqa.training.config import ConfigError, parse_args
    from giqa.training.data import DataError

    try:
        config = parse_args(list(ctx.args))
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from giqa.models.llava import CheckpointError
    from giqa.training.run import train

    try:
        result = train(config)
    except (DataError, CheckpointError, ConfigError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    skipped = result.skipped["total"]
    why = " (stopped by max_time_minutes)" if result.stopped_by_time else ""
    typer.echo(f"trained {result.steps} steps{why}; final model: {result.final}")
    typer.echo(f"skipped rows: {skipped} {result.skipped['by_reason'] if skipped else ''}".rstrip())
    if result.report is not None:
        from giqa.evaluation.table import format_table

        typer.echo(format_table([(result.final.parent.name, result.report)]))


CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}
