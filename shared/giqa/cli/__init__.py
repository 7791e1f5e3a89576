"""The ``giqa`` command line. Each sub-command group lives in its own module; heavy imports stay inside
the commands so ``giqa --help`` answers at once. Errors and exit codes: :mod:`giqa.cli.common`."""

from __future__ import annotations

import typer

from giqa.cli.annotate import annotate as annotate_command
from giqa.cli.annotate import tags as tags_command
from giqa.cli.common import SafetyNetGroup
from giqa.cli.db import app as db_app
from giqa.cli.demo import demo as demo_command
from giqa.cli.eval import app as eval_app
from giqa.cli.jobs import evals_app, jobs_app
from giqa.cli.llm import app as llm_app
from giqa.cli.predict import predict_command
from giqa.cli.runs import app as runs_app
from giqa.cli.serve import app as serve_app
from giqa.cli.stack import app as stack_app
from giqa.cli.stages import detect as detect_command
from giqa.cli.stages import judge as judge_command
from giqa.cli.synth import app as synth_app
from giqa.cli.train import CONTEXT as TRAIN_CONTEXT
from giqa.cli.train import train_command
from giqa.cli.train_detector import train_detector_command
from giqa.cli.worker import worker_command

app = typer.Typer(
    cls=SafetyNetGroup,
    name="giqa",
    help="Grounding image quality assessment: synthetic data, annotation, evaluation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(synth_app, name="synth")
app.add_typer(llm_app, name="llm")
app.command("annotate")(annotate_command)
app.command("tags")(tags_command)
app.add_typer(eval_app, name="eval")
app.add_typer(runs_app, name="runs")
app.add_typer(jobs_app, name="jobs")
app.add_typer(evals_app, name="evals")
app.add_typer(stack_app, name="stack")
app.command("predict")(predict_command)
app.command("detect")(detect_command)
app.command("judge")(judge_command)
app.command("train", context_settings=TRAIN_CONTEXT, add_help_option=False)(train_command)
app.command("demo")(demo_command)
app.command("train-detector")(train_detector_command)
app.add_typer(serve_app, name="serve")
app.command("worker")(worker_command)
app.add_typer(db_app, name="db")


def main() -> None:
    app()
