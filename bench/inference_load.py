"""Load test of the inference service: dynamic batching vs batch size 1, same run, same requests.

The service runs on the shipped demo VLM as a real uvicorn subprocess (``python -m
giqa.cli.serve_inference``) on a free loopback port, once with ``--max-batch-size 1`` and once with dynamic
batching, one after the other (never both at once, so they do not share the CPU). N concurrent clients
send ``POST /v1/assess`` (multipart) with distinct synthetic images until a request count or a time bound
is reached. It reports throughput and p50/p95/p99 latency of each, their ratio, whether every image got the
same description batched as unbatched, and the batched server's RSS after warm-up and after all requests.

    OMP_NUM_THREADS=1 .venv/bin/python bench/inference_load.py --clients 16 --requests 400 --time-limit 120
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "shared"), str(ROOT / "bench")]

from giqa.llm.server import free_port  # noqa: E402
from load_stats import percentiles  # noqa: E402


def images(count: int, size: int = 96, seed: int = 0) -> list[bytes]:
    """``count`` distinct PNGs: a few coloured shapes on a plain background, some blurred or noisy."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        image = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 255, 3)))
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(1, 4))):
            x1, y1 = (int(v) for v in rng.integers(0, size // 2, 2))
            w, h = (int(v) for v in rng.integers(size // 6, size // 2, 2))
            color = tuple(int(v) for v in rng.integers(0, 255, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x1, y1, x1 + w, y1 + h), fill=color)
        pixels = np.asarray(image).astype(np.int16)
        if rng.random() < 0.5:
            pixels = np.clip(pixels + rng.normal(0, 25, pixels.shape), 0, 255).astype(np.int16)
        buffer = io.BytesIO()
        Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def start(
    max_batch_size: int, *, batch_wait_ms: float, max_new_tokens: int, log: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """``giqa serve inference`` on the shipped demo VLM (embedded defaults) on a free port, once ready."""
    port = free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "shared"), str(ROOT), env.get("PYTHONPATH", "")])
    env.setdefault("OMP_NUM_THREADS", "1")
    env["HF_HUB_OFFLINE"] = "1"
    command = [
        sys.executable, "-m", "giqa.cli.serve_inference", "--port", str(port), "--log-level", "warning",
        "--max-batch-size", str(max_batch_size), "--batch-wait-ms", str(batch_wait_ms),
        "--queue-size", "1024", "--max-new-tokens", str(max_new_tokens),
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("the service was not ready in 120 s")


async def load(
    url: str,
    payloads: list[bytes],
    clients: int,
    total: int,
    limit_s: float,
    server: psutil.Process | None = None,
) -> dict[str, Any]:
    """``clients`` concurrent loops sending requests until ``total`` are sent or ``limit_s`` passes; the
    ``server``'s RSS after every quarter of ``total``."""
    checkpoints = {max(1, total * k // 4) for k in range(1, 5)}
    rss: dict[int, float] = {}
    latencies: list[float] = []
    answers: dict[int, str] = {}
    errors: list[str] = []
    sent = 0
    started = time.perf_counter()

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal sent
        while sent < total and time.perf_counter() - started < limit_s:
            index = sent % len(payloads)
            sent += 1
            t0 = time.perf_counter()
            response = await http.post(
                url + "/v1/assess", files={"image": (f"{index}.png", payloads[index], "image/png")}
            )
            latencies.append(time.perf_counter() - t0)
            if server is not None and len(latencies) in checkpoints:
                rss[len(latencies)] = round(server.memory_info().rss / 2**20, 1)
            if response.status_code != 200:
                errors.append(f"{response.status_code}: {response.text[:200]}")
                continue
            description = response.json()["description"]
            if answers.setdefault(index, description) != description:
                errors.append(f"image {index}: two different answers in one run")

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=300, limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    elapsed = time.perf_counter() - started
    spread = percentiles(latencies)
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "first_errors": errors[:3],
        "seconds": round(elapsed, 2),
        "throughput_rps": round(len(latencies) / elapsed, 2),
        **{k: round(float(spread[k]), 1) for k in ("p50_ms", "p95_ms", "p99_ms")},
        "rss_mb_after_n_requests": rss,
        "answers": answers,
    }


def batch_sizes(url: str) -> dict[str, float]:
    """Model calls so far and the requests they carried, from the service's /metrics."""
    values = {"sum": 0.0, "count": 0.0}
    for line in httpx.get(url + "/metrics").text.splitlines():
        for name in values:
            if line.startswith(f'giqa_inference_batch_size_{name}{{kind="generate"}}'):
                values[name] = float(line.split()[-1])
    return values


def phase(max_batch: int, args: argparse.Namespace, payloads: list[bytes], tmp: Path) -> dict[str, Any]:
    process, url = start(
        max_batch,
        batch_wait_ms=args.batch_wait_ms,
        max_new_tokens=args.max_new_tokens,
        log=tmp / f"serve-{max_batch}.log",
    )
    try:
        server = psutil.Process(process.pid)
        asyncio.run(load(url, payloads[:4], 4, 16, 60))  # warm-up (not counted)
        rss_before = server.memory_info().rss
        calls_before = batch_sizes(url)
        result = asyncio.run(load(url, payloads, args.clients, args.requests, args.time_limit, server))
        result["rss_before_mb"] = round(rss_before / 2**20, 1)
        result["rss_after_mb"] = round(server.memory_info().rss / 2**20, 1)
        calls_after = batch_sizes(url)
        calls = calls_after["count"] - calls_before["count"]
        result["model_calls"] = int(calls)
        result["mean_batch_size"] = round((calls_after["sum"] - calls_before["sum"]) / max(calls, 1), 2)
        return result
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=400, help="per phase (bounded by --time-limit)")
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per phase")
    parser.add_argument("--images", type=int, default=64, help="distinct images cycled through")
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--batch-wait-ms", type=float, default=25.0)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--out", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()

    payloads = images(args.images)
    with tempfile.TemporaryDirectory() as tmp:
        single = phase(1, args, payloads, Path(tmp))
        batched = phase(args.max_batch_size, args, payloads, Path(tmp))
    shared = sorted(set(single["answers"]) & set(batched["answers"]))
    differ = [i for i in shared if single["answers"][i] != batched["answers"][i]]
    report = {
        "clients": args.clients,
        "max_new_tokens": args.max_new_tokens,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "(unset)"),
        "batch_size_1": {k: v for k, v in single.items() if k != "answers"},
        f"dynamic_batching_{args.max_batch_size}": {k: v for k, v in batched.items() if k != "answers"},
        "throughput_ratio": round(batched["throughput_rps"] / single["throughput_rps"], 2),
        "images_compared": len(shared),
        "images_with_different_answers": len(differ),
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
