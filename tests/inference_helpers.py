"""Helpers of the inference-service tests and bench: test images, and the real service as a uvicorn
subprocess (``python -m giqa.cli.serve_inference``) on a free loopback port."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from PIL import Image

from giqa.llm.server import free_port

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


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def drive_playground(
    url: str, api_key: str, image: Path, screenshot: Path | None = None
) -> dict[str, object]:
    """Use the playground page in a real headless Chromium like a person would: type the key, upload the
    image, Assess (with masks), Score, Ask; what the page then shows (and a screenshot of it)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1180, "height": 760})
            console_errors: list[str] = []
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: console_errors.append(str(e)))
            page.goto(url + "/")
            page.fill("#key", api_key)
            page.set_input_files("#file", str(image))
            page.wait_for_function("!document.getElementById('assess').disabled")
            page.check("#masks")
            page.click("#assess")
            page.wait_for_function("document.getElementById('text').textContent !== '—'", timeout=30_000)
            page.click("#score")
            page.wait_for_function("document.getElementById('scoreOut').textContent.includes('/ 5')")
            page.fill("#question", "Is the image noisy?")
            page.click("#ask")
            page.wait_for_function("document.getElementById('answer').textContent.includes('P(Yes)')")
            # the canvas shows the image with boxes: some pixels are the first box colour (#e6194b)
            boxed = page.evaluate(
                """() => { const c = document.getElementById('canvas');
                   const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                   let n = 0; for (let i = 0; i < d.length; i += 4)
                     if (d[i] === 0xe6 && d[i + 1] === 0x19 && d[i + 2] === 0x4b) n++;
                   return {n, w: c.width, h: c.height}; }"""
            )
            shown = {
                "text": page.inner_text("#text"),
                "objects": page.locator("#objects li").count(),
                "score": page.inner_text("#scoreOut"),
                "answer": page.inner_text("#answer"),
                "error": page.inner_text("#error"),
                "hint": page.inner_text("#hint"),
                "model": page.inner_text("#model"),
                "boxed_pixels": boxed["n"],
                "canvas": (boxed["w"], boxed["h"]),
                "console_errors": console_errors,
            }
            if screenshot is not None:
                page.screenshot(path=str(screenshot), full_page=True)
            return shown
        finally:
            browser.close()
