"""Real servers for the integration tests: a Postgres database of their own and an S3 server on loopback.

Postgres: the server at 127.0.0.1:5432 (user postgres, trust; ``GIQA_TEST_PG`` is not read — the address
is the project's test convention). One database per test session, named after the branch and a random
suffix, created at the first use, migrated, and dropped at the end even if connections are still open.
Unreachable: every test that needs it is skipped with the reason.

S3: ``moto_server`` (moto in server mode) as a subprocess on a free loopback port, answering real HTTP
the way MinIO does; started at the first use, stopped at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from s3_server import start_s3_server, stop

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
PG_ADMIN_DBS = ("postgres", "test")


def _admin_connection():  # type: ignore[no-untyped-def]
    import psycopg

    problem: Exception | None = None
    for dbname in PG_ADMIN_DBS:
        try:
            return psycopg.connect(
                host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname, connect_timeout=3, autocommit=True
            )
        except psycopg.OperationalError as exc:
            problem = exc
    raise problem  # type: ignore[misc]


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A fresh, empty Postgres database for this session (not migrated); its SQLAlchemy URL."""
    try:
        import psycopg
    except ImportError:
        pytest.skip("psycopg is not installed (the services extra)")
    try:
        admin = _admin_connection()
    except psycopg.OperationalError as exc:
        pytest.skip(f"Postgres at {PG_HOST}:{PG_PORT} is not reachable: {str(exc).strip().splitlines()[0]}")
    name = f"giqa_infra_stores_{uuid.uuid4().hex[:10]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_url(pg_server_url: str) -> str:
    """The session's Postgres database, migrated to the newest revision."""
    from giqa.infra.db.migrate import upgrade

    upgrade(pg_server_url)
    return pg_server_url


# ------------------------------------------------------------------------------------------------ S3


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3-compatible server (moto in server mode) on loopback for the session; its endpoint URL."""
    process, endpoint = start_s3_server(tmp_path_factory.mktemp("s3"))
    try:
        yield endpoint
    finally:
        stop(process)
