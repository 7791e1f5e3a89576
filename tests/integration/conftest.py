"""Real servers for the integration tests: a Postgres database of their own and an S3 server on loopback.

Postgres: the server at 127.0.0.1:5432 (user postgres, trust; ``GIQA_TEST_PG`` is not read — the address
is the project's test convention). One database per test session, named after the branch and a random
suffix, created at the first use, migrated, and dropped at the end even if connections are still open.
Unreachable: every test that needs it is skipped with the reason.

S3: ``moto_server`` (moto in server mode) as a subprocess on a free loopback port, answering real HTTP
the way MinIO does; started at the first use, stopped at the end.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, timeout_s: float = 30.0, process: subprocess.Popen[bytes] | None = None) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before answering {url}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s")


def start_s3_server(log_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``moto_server`` on a free loopback port; returns the process and its endpoint once it answers."""
    executable = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    if not Path(executable).exists():
        pytest.skip("moto_server is not installed (pip install 'moto[server]', the dev extra)")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with (log_dir / f"moto-{port}.log").open("wb") as log:
        process = subprocess.Popen(
            [executable, "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_for_http(endpoint, process=process)
    except BaseException:
        stop(process)
        raise
    return process, endpoint


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3-compatible server (moto in server mode) on loopback for the session; its endpoint URL."""
    process, endpoint = start_s3_server(tmp_path_factory.mktemp("s3"))
    try:
        yield endpoint
    finally:
        stop(process)
