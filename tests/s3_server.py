"""A real S3-compatible server for tests: ``moto_server`` (moto in server mode) as a subprocess on a free
loopback port, answering real HTTP the way MinIO does (the ``s3_server`` fixture uses it; a test that must
stop its own server calls :func:`start_s3_server` and :func:`stop`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from giqa.llm.server import free_port


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
