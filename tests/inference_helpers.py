"""Helpers of the inference-service tests and bench: test images, and the real service as a uvicorn
subprocess (``python -m giqa.cli.serve_inference``) on a free loopback port."""

from __future__ import annotations

import base64
import io
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from PIL import Image

API_KEY = "test-key-0123456789"


def png_bytes(size: tuple[int, int] = (96, 72), color: tuple[int, int, int] = (40, 150, 90)) -> bytes:
    image = Image.new("RGB", size, color)
    for x in range(0, size[0], 8):  # a few edges, so the image is not flat
        for y in range(size[1]):
            image.putpixel((x, y), (230, 230, 230))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the service exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/ready", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the service was not ready within {timeout_s:.0f} s: {log.read_text()[-2000:]}")


@dataclass
class Served:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def serve(tmp: Path, *args: str, env: dict[str, str] | None = None) -> Served:
    """``python -m giqa.cli.serve_inference --port <free> args...`` with its log in ``tmp``; ready."""
    from processes import giqa_env

    port = free_port()
    log = tmp / f"inference-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "giqa.cli.serve_inference",
                "--port",
                str(port),
                "--log-level",
                "warning",
                *args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=giqa_env(OMP_NUM_THREADS="1", **(env or {})),
        )
    served = Served(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_ready(served.url, process, log)
    except BaseException:
        stop(served)
        raise
    return served


def stop(served: Served) -> None:
    if served.process.poll() is None:
        served.process.terminate()
        try:
            served.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            served.process.kill()
            served.process.wait(timeout=10)
