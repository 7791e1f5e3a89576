"""What the platform's job services share (annotator, trainer, evaluator): an app over the database, the
object store and the queue, whose models live in the workers.

:func:`platform_app` builds it once for all three: the process's :class:`WorkerContext` (sessions, store),
the Celery app the service sends its tasks through (and runs them in-process with no broker), the embedded
SQLite file migrated at start-up (a cluster runs ``giqa db upgrade`` first), and ``/ready`` answering 200
only when the database, the object store and the broker all answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from giqa.ports import Health
from giqa.service import create_app
from giqa.settings import Settings
from services.annotator.tasks import WorkerContext, use_context


def platform_app(
    settings: Settings,
    *,
    name: str,
    description: str,
    ctx: WorkerContext | None = None,
    background: Callable[[WorkerContext], Callable[[], None]] | None = None,
) -> tuple[FastAPI, WorkerContext, Any]:
    """The app (:func:`giqa.service.create_app`), its context and its Celery app (see the module doc).
    ``background(context)``: started once the database is ready, returns the function that stops it
    when the app stops (the annotator's stall sweeper)."""
    from giqa.infra.queue import broker_health, make_celery

    context = ctx or WorkerContext(settings)
    celery = make_celery(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        celery.set_default()  # the tasks this process sends go through this app (and run here when eager)
        previous = use_context(context)
        if settings.db.url is None:  # the embedded SQLite file: migrate it here (a cluster migrates first)
            from giqa.infra.db.migrate import upgrade
            from giqa.settings import database_url

            await run_in_threadpool(upgrade, database_url(settings))
        stop = background(context) if background is not None else None
        try:
            yield
        finally:
            if stop is not None:
                stop()
            use_context(previous)
            context.close()

    def ready() -> Health:
        try:
            with context.session() as s:
                s.execute(text("SELECT 1"))
        except Exception as exc:
            return Health(False, f"database: {type(exc).__name__}: {str(exc)[:200]}")
        store = context.store.health()
        if not store.ok:
            return Health(False, f"object store: {store.detail}")
        return broker_health(celery)

    app = create_app(
        name=name, settings=settings.service, ready=ready, lifespan=lifespan, description=description
    )
    return app, context, celery
