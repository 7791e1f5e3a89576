"""giqa.infra.db.jobs_dal on a real Postgres: the SQLite behaviour tests of ``unit/infra/test_jobs_dal.py``
run here against the session's migrated database (JSONB, CHECK constraints, timestamps with zone)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from giqa.infra.db import make_engine, make_sessionmaker
from giqa.infra.db.models import Base
from unit.infra import test_jobs_dal as behaviour

pytestmark = pytest.mark.integration

globals().update({name: getattr(behaviour, name) for name in dir(behaviour) if name.startswith("test_")})


@pytest.fixture
def db_url(pg_url: str) -> Iterator[str]:
    """The session's migrated database, emptied before each test."""
    engine = make_engine(pg_url)
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    yield pg_url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)
