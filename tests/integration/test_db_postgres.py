"""giqa.infra.db on a real Postgres: the migrations, every behaviour the SQLite tests check, and what only
a server shows: concurrent callers, upsert races, and a connection the server killed."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from giqa.infra.db import dal, make_engine, make_sessionmaker, session_scope
from giqa.infra.db.dal import SampleIn
from giqa.infra.db.migrate import current, head, schema_drift, upgrade
from giqa.infra.db.models import Base, StageResult
from unit.infra import test_db_sqlite as behaviour

pytestmark = pytest.mark.integration

SQLITE_ONLY = {
    "test_a_never_migrated_database_has_no_revision",
    "test_settings_default_is_a_sqlite_file_under_data_dir",
    "test_sqlite_runs_with_foreign_keys_and_wal",
    "test_unsupported_database_is_refused",
    "test_concurrent_export_on_sqlite_has_one_winner",
    "test_cli_upgrade_and_current",
}
# the same behaviour tests, run here against Postgres through the fixtures below
globals().update(
    {
        name: getattr(behaviour, name)
        for name in dir(behaviour)
        if name.startswith("test_") and name not in SQLITE_ONLY
    }
)
new_run = behaviour.new_run


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
    engine = make_engine(db_url, pool_size=10)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


def in_threads(n: int, work: Callable[[], object]) -> list[object]:
    """``work`` in ``n`` threads released together; their results (an exception fails the test)."""
    barrier = threading.Barrier(n)
    results: list[object] = []
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            results.append(work())
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    return results


def test_migrations_on_a_fresh_postgres_database_match_the_models(pg_server_url: str, pg_url: str) -> None:
    assert pg_url == pg_server_url and current(pg_url) == head()
    assert schema_drift(pg_url) == []
    engine = make_engine(pg_url)
    with engine.connect() as connection:
        kinds = connection.execute(
            text(
                "SELECT data_type FROM information_schema.columns"
                " WHERE table_name = 'stage_results' AND column_name = 'payload'"
            )
        ).scalar()
    engine.dispose()
    assert kinds == "jsonb"


def test_concurrent_export_has_exactly_one_winner(sessions: sessionmaker[Session]) -> None:
    for _ in range(3):
        run_id, ids = new_run(sessions, n=4)
        with session_scope(sessions) as s:
            for sid in ids:
                dal.finish_sample(s, sample_id=sid)

        def attempt(run_id: str = run_id) -> bool:
            with session_scope(sessions) as s:
                return dal.try_begin_export(s, run_id=run_id)

        assert sorted(in_threads(8, attempt)) == [False] * 7 + [True]  # type: ignore[type-var]


def test_the_last_samples_finishing_together_start_one_export(sessions: sessionmaker[Session]) -> None:
    run_id, ids = new_run(sessions, n=6)
    pending = list(ids)
    lock = threading.Lock()

    def finish_then_try() -> bool:
        with lock:
            sid = pending.pop()
        with session_scope(sessions) as s:
            dal.finish_sample(s, sample_id=sid)
        with session_scope(sessions) as s:  # after the commit, as the docstring asks
            return dal.try_begin_export(s, run_id=run_id)

    assert sorted(in_threads(6, finish_then_try)) == [False] * 5 + [True]  # type: ignore[type-var]


def test_upsert_race_from_two_threads_stores_one_row(sessions: sessionmaker[Session]) -> None:
    _, (sid, *_rest) = new_run(sessions, n=1)
    for round_ in range(5):

        def write(round_: int = round_) -> None:
            with session_scope(sessions) as s:
                dal.upsert_stage(s, sample_id=sid, stage="detect", payload={"round": round_}, seconds=0.1)

        in_threads(2, write)
    with session_scope(sessions) as s:
        assert s.scalar(select(func.count()).select_from(StageResult)) == 1
        assert dal.stage_payload(s, sample_id=sid, stage="detect") == {"round": 4}


def test_add_samples_race_returns_the_same_ids(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as s:
        run_id = dal.create_run(s, name="race", config={})
    samples = [SampleIn(f"k{i}", f"{i}.png", "t") for i in range(50)]

    def add() -> list[int]:
        with session_scope(sessions) as s:
            return dal.add_samples(s, run_id=run_id, samples=samples)

    first, second = in_threads(2, add)
    assert first == second and len(set(first)) == 50  # type: ignore[arg-type]


def test_a_connection_the_server_killed_is_replaced(pg_url: str) -> None:
    engine = make_engine(pg_url, pool_size=1)
    sessions = make_sessionmaker(engine)
    try:
        with session_scope(sessions) as s:
            before = s.scalar(text("SELECT pg_backend_pid()"))
        killer = make_engine(pg_url)
        with killer.begin() as connection:
            assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": before}).scalar()
        killer.dispose()
        with session_scope(sessions) as s:  # the pooled connection is dead: pre-ping replaces it
            after = s.scalar(text("SELECT pg_backend_pid()"))
            run_id = dal.create_run(s, name="after the kill", config={})
        assert after != before
        with session_scope(sessions) as s:
            assert dal.get_run(s, run_id=run_id) is not None
    finally:
        engine.dispose()


def test_upgrade_is_a_no_op_at_head(pg_url: str) -> None:
    upgrade(pg_url)
    assert current(pg_url) == head()


def test_cli_on_postgres(pg_url: str, pg_server_url: str) -> None:
    from typer.testing import CliRunner

    from giqa.cli import app

    plain = pg_url.replace("postgresql+psycopg://", "postgresql://")  # the driver is filled in
    result = CliRunner().invoke(app, ["db", "current", "--url", plain])
    assert result.exit_code == 0 and result.output.strip() == f"{head()} (up to date)"
    missing = pg_server_url.rsplit("/", 1)[0] + "/giqa_no_such_database"
    result = CliRunner().invoke(app, ["db", "upgrade", "--url", missing])
    assert result.exit_code == 3 and 'database "giqa_no_such_database" does not exist' in result.output
