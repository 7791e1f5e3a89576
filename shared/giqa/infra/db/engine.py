"""Engines and sessions: one place decides the connection options of each database kind.

SQLite (embedded): foreign keys on (SQLite ignores them by default), WAL so readers do not block the
writer, and a busy timeout so concurrent writers wait instead of failing at once. Postgres: ``pool_pre_ping``
so a connection the server dropped (restart, idle kill) is replaced on checkout instead of failing the
next query, and a connect timeout so a server that is down is an error in seconds, not minutes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from giqa.settings import Settings, database_url


def make_engine(
    url: str, *, pool_size: int = 5, echo: bool = False, connect_timeout_s: float = 10.0
) -> Engine:
    """An engine for ``url`` (``postgresql+psycopg://...`` or ``sqlite:///path``) with the options above.

    A SQLite file's folder is created. Other databases are refused with a :class:`ValueError`.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed, echo=echo, connect_args={"timeout": connect_timeout_s, "check_same_thread": False}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(
            parsed,
            echo=echo,
            pool_pre_ping=True,
            pool_size=pool_size,
            connect_args={"connect_timeout": max(1, round(connect_timeout_s))},
        )
    raise ValueError(f"unsupported database {backend!r}: use postgresql+psycopg:// or sqlite:///")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable across process crashes
    finally:
        cursor.close()


def engine_from_settings(settings: Settings) -> Engine:
    """The engine the settings describe (``db.url``, else the embedded SQLite file)."""
    db = settings.db
    return make_engine(
        database_url(settings), pool_size=db.pool_size, echo=db.echo, connect_timeout_s=db.connect_timeout_s
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (views are built before it anyway)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back (and re-raised) when it raises."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
