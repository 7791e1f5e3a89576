"""``giqa stack``: the whole annotation platform on this machine, each service and worker its own process.

``giqa stack up`` (``make stack``) migrates the database, starts the processes of
:func:`giqa.infra.stack.plan` (S3 server, embedded LLM, detector, iqa_filter, annotator, one Celery worker
per queue), prints where they answer, and stops them all in reverse order on Ctrl-C, SIGTERM or when one
of them dies. ``giqa stack down`` (``make stack-stop``) asks a running launcher to stop. Postgres and
Redis are the machine's own (``GIQA_DB__URL``, ``GIQA_QUEUE__BROKER_URL``).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from giqa.cli.common import EXIT_UNAVAILABLE, fail

app = typer.Typer(help="The annotation platform as local processes.", no_args_is_help=True)


def _state_dir() -> Path:
    from giqa.settings import get_settings

    return get_settings().data_dir / "stack"


def _ensure_database(url: str) -> None:
    """Create the Postgres database ``url`` names if the server lacks it (the stack's own), then migrate."""
    from sqlalchemy.engine import make_url

    from giqa.infra.db.migrate import upgrade

    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.database:
        import psycopg

        admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            found = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (parsed.database,)
            ).fetchone()
            if not found:
                conn.execute(f'CREATE DATABASE "{parsed.database}"')
    upgrade(url)


@app.command("up")
def up(
    detect_workers: Annotated[int, typer.Option("--detect-workers", min=1, max=8)] = 1,
    logs: Annotated[
        Path | None, typer.Option("--logs", help="log folder (default <data_dir>/stack/logs)")
    ] = None,
    jobs: Annotated[
        bool, typer.Option("--jobs", help="also the trainer and evaluator with their train/eval workers")
    ] = False,
) -> None:
    """Start every process, print the URLs, and keep them running until Ctrl-C."""
    from giqa.infra.stack import Stack, StackError, plan
    from giqa.settings import database_url, get_settings

    settings = get_settings()
    if settings.queue.broker_url is None:
        raise fail("the stack needs a broker: set GIQA_QUEUE__BROKER_URL=redis://127.0.0.1:6379/0")
    if settings.db.url is None:
        raise fail(
            "the stack needs Postgres: set GIQA_DB__URL=postgresql+psycopg://postgres@127.0.0.1:5432/giqa"
        )
    try:
        _ensure_database(database_url(settings))
    except Exception as exc:
        raise fail(f"cannot prepare the database: {str(exc).splitlines()[0]}", EXIT_UNAVAILABLE) from exc
    the_plan = plan(settings, detect_workers=detect_workers, jobs=jobs)
    state = _state_dir()
    log_dir = logs or state / "logs"
    stack = Stack(the_plan, log_dir)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    state.mkdir(parents=True, exist_ok=True)
    (state / "launcher.pid").write_text(str(os.getpid()))
    try:
        typer.echo(f"starting {len(the_plan.processes)} processes (logs in {log_dir}) ...")
        try:
            stack.start()
        except StackError as exc:
            raise fail(str(exc), EXIT_UNAVAILABLE) from exc
        for process in the_plan.processes:
            typer.echo(f"  {process.name:15} pid {stack.running[process.name].pid}")
        typer.echo(f"annotator: {the_plan.urls['annotator']} (docs: {the_plan.urls['annotator']}/docs)")
        for name in ("trainer", "evaluator"):
            if name in the_plan.urls:
                typer.echo(f"{name}: {the_plan.urls[name]} (docs: {the_plan.urls[name]}/docs)")
        typer.echo(
            "submit: giqa runs submit --descriptions D.jsonl --images DIR --watch; Ctrl-C stops the stack"
        )
        while not stopping:
            dead = stack.dead()
            if dead:
                typer.echo(
                    f"stopping: {', '.join(f'{n} exited with {c}' for n, c in dead.items())}", err=True
                )
                break
            time.sleep(0.5)
    finally:
        typer.echo("stopping the stack ...")
        stack.close()
        (state / "launcher.pid").unlink(missing_ok=True)
    typer.echo("stopped")


@app.command("down")
def down(timeout_s: Annotated[float, typer.Option("--timeout", min=1)] = 60.0) -> None:
    """Ask the running ``giqa stack up`` to stop every process, and wait until it has."""
    pid_file = _state_dir() / "launcher.pid"
    if not pid_file.is_file():
        typer.echo("no stack is running")
        return
    pid = int(pid_file.read_text().strip())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)
        typer.echo("no stack is running (removed a stale pid file)")
        return
    deadline = time.monotonic() + timeout_s
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    typer.echo("stopped" if not pid_file.exists() else f"the launcher (pid {pid}) is still stopping")
