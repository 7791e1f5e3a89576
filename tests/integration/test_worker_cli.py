"""``giqa worker``, the command the containers run, as a real process on the real Redis: it names itself
``celery@<hostname>`` (what the compose and Kubernetes health checks ping), consumes the queues it is
given, and stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from processes import giqa_cli, spawn

pytestmark = pytest.mark.integration

BROKER = "redis://127.0.0.1:6379/12"


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=2):
            return True
    except OSError:
        return False


def ping(node: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys; from celery import Celery; "
        f"app = Celery(broker={BROKER!r}); "
        f"r = app.control.ping(destination=[{node!r}], timeout=2.0); "
        "print(r); sys.exit(0 if r else 1)"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.skipif(not _redis_up(), reason="no Redis on 127.0.0.1:6379")
def test_worker_answers_the_health_ping_on_its_queues_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {"GIQA_QUEUE__BROKER_URL": BROKER, "GIQA_DATA_DIR": str(tmp_path / "data")}
    worker = spawn(giqa_cli("worker", "--queues", "cpu,eval"), tmp_path, "worker", env=env)
    node = f"celery@{socket.gethostname()}"
    try:
        deadline = time.monotonic() + 90
        while True:
            answer = ping(node, env)
            if answer.returncode == 0:
                break
            assert worker.poll() is None, (tmp_path / "worker.err").read_text()[-2000:]
            assert time.monotonic() < deadline, "the worker never answered the ping"
            time.sleep(1)
        banner = (tmp_path / "worker.out").read_text() + (tmp_path / "worker.err").read_text()
        assert ".> cpu " in banner and ".> eval " in banner, banner[-3000:]  # both queues consumed
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_worker_refuses_unknown_queues_and_a_missing_broker(tmp_path: Path) -> None:
    no_broker = subprocess.run(
        [sys.executable, *giqa_cli("worker", "--queues", "cpu")], capture_output=True, text=True, timeout=60
    )
    assert no_broker.returncode == 2 and "GIQA_QUEUE__BROKER_URL" in no_broker.stderr
    bad = spawn(
        giqa_cli("worker", "--queues", "cpu,gpu"), tmp_path, "bad", env={"GIQA_QUEUE__BROKER_URL": BROKER}
    )
    assert bad.wait(timeout=60) == 2
    assert "unknown queue 'gpu'" in (tmp_path / "bad.err").read_text()
