"""``giqa worker``: a Celery worker on one or more of the platform's queues (``services/worker.py``).

The same arguments the stack launcher uses (:func:`giqa.infra.queue.worker_argv`: a solo pool on the model
queues, since CUDA does not survive a fork; threads on ``llm``, which waits on HTTP), with the node named
``celery@<hostname>`` by default, which the containers' health checks ping. Settings come from the ``GIQA_``
environment (broker, database, storage, backends).
"""

from __future__ import annotations

from typing import Annotated

import typer

from giqa.cli.common import fail


def worker_command(
    queues: Annotated[
        str,
        typer.Option("--queues", "-Q", help="comma-separated queues: llm, detect, judge, cpu, train, eval"),
    ],
    pool: Annotated[
        str | None,
        typer.Option("--pool", "-P", help="solo, threads or prefork (default: the queue's, see above)"),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", "-c", min=1, help="threads/processes (not for solo)")
    ] = None,
    name: Annotated[str, typer.Option("--name", "-n", help="Celery node name")] = "celery@%h",
    log_level: Annotated[str, typer.Option("--log-level", help="worker log level")] = "INFO",
) -> None:
    """Run a Celery worker that takes the platform's tasks from the given queues until stopped."""
    from giqa.cli.serve import import_services_module
    from giqa.infra.queue import worker_argv
    from giqa.settings import get_settings

    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    if not wanted:
        raise fail("--queues names no queue")
    settings = get_settings()
    if settings.queue.broker_url is None:
        raise fail("no broker configured: set GIQA_QUEUE__BROKER_URL (e.g. redis://127.0.0.1:6379/0)")
    try:
        argv = worker_argv(settings, wanted[0], pool=pool)
        for extra in wanted[1:]:
            worker_argv(settings, extra)  # the same check of every queue name
    except ValueError as exc:
        raise fail(str(exc)) from exc
    argv = argv[2:]  # "-A services.worker": the app object is passed below
    argv[argv.index("-Q") + 1] = ",".join(wanted)
    argv[argv.index("-n") + 1] = name
    argv[argv.index("-l") + 1] = log_level
    if concurrency is not None:
        if "-c" in argv:
            argv[argv.index("-c") + 1] = str(concurrency)
        else:
            argv += ["-c", str(concurrency)]
    module = import_services_module("services.worker", "the worker")
    module.app.worker_main(argv=argv)
