"""Soak: the annotation platform under bounded concurrent load for a few minutes, on loopback.

The stack of ``giqa stack`` (detector and iqa_filter services with the shipped demo detector and the
classical judge, the annotator, one Celery worker per queue) on Postgres (a fresh database), an S3 server
(moto) and a Redis server of its own, with the deterministic scripted LLM of the tests. ``--clients``
operators each submit a GIQA-Synth run over REST, poll it until it is done, fetch its dataset, and start
again, until ``--minutes`` have passed. Every run has the same input, so every dataset must equal the
first one byte for byte (what was lost: must be nothing).

Figures (``<out>/soak.json``, ``<out>/soak_memory.png``): runs and samples completed, throughput, error
rate over every request (non-2xx answers and transport errors), latency percentiles of submits and
status polls, run wall time percentiles, datasets that differ from the first, and the resident memory of
every process sampled every 2 s (start, end, peak), plotted over time.

    PYTHONPATH=shared:. python bench/soak.py --minutes 3 --clients 4 --scenes 8
(The inference service's share of the soak lives with that service's branch.)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "shared"), str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]


def percentiles(values: list[float]) -> dict[str, float]:
    import numpy as np

    if not values:
        return {}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"n": len(values), "p50_ms": 1000 * p50, "p95_ms": 1000 * p95, "p99_ms": 1000 * p99}


class Load:
    """The operators' loop and what it measured (shared between threads under a lock)."""

    def __init__(self, url: str, images: Path, descriptions: Path, deadline: float) -> None:
        self.url, self.images, self.descriptions, self.deadline = url, images, descriptions, deadline
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = {"submit": [], "poll": [], "dataset": []}
        self.requests = 0
        self.errors: list[str] = []
        self.runs: list[dict[str, Any]] = []
        self.first_dataset: bytes | None = None
        self.differing = 0

    def call(self, client: Any, kind: str, method: str, path: str, **kw: Any) -> Any:
        import httpx

        started = time.perf_counter()
        try:
            answer = client.request(method, self.url + path, **kw)
        except httpx.HTTPError as exc:
            with self.lock:
                self.requests += 1
                self.errors.append(f"{kind}: {type(exc).__name__}")
            return None
        with self.lock:
            self.requests += 1
            self.latency[kind].append(time.perf_counter() - started)
            if answer.status_code >= 400:
                self.errors.append(f"{kind}: HTTP {answer.status_code}")
        return answer if answer.status_code < 400 else None

    def operator(self) -> None:
        import httpx

        files = [("descriptions", ("in.jsonl", self.descriptions.read_bytes(), "application/x-ndjson"))]
        files += [
            ("images", (p.relative_to(self.images).as_posix(), p.read_bytes(), "image/png"))
            for p in sorted(self.images.glob("images/*.png"))
        ]
        with httpx.Client(timeout=60) as client:
            while time.monotonic() < self.deadline:
                started = time.perf_counter()
                created = self.call(client, "submit", "POST", "/v1/runs", files=files, data={"name": "soak"})
                if created is None:
                    time.sleep(1)
                    continue
                run_id, total = created.json()["run_id"], created.json()["total"]
                state = "running"
                while state not in ("done", "failed"):
                    time.sleep(0.5)
                    shown = self.call(client, "poll", "GET", f"/v1/runs/{run_id}")
                    state = shown.json()["state"] if shown is not None else state
                    if time.monotonic() > self.deadline + 300:
                        state = "timed out"
                        break
                wall = time.perf_counter() - started
                dataset = self.call(
                    client, "dataset", "GET", f"/v1/runs/{run_id}/dataset", params={"file": "train.json"}
                )
                with self.lock:
                    self.runs.append({"run_id": run_id, "state": state, "samples": total, "wall_s": wall})
                    if dataset is not None:
                        if self.first_dataset is None:
                            self.first_dataset = dataset.content
                        elif dataset.content != self.first_dataset:
                            self.differing += 1


def sample_memory(pids: dict[str, int], stop: threading.Event, out: list[dict[str, Any]]) -> None:
    import psutil

    started = time.monotonic()
    while not stop.wait(2.0):
        row: dict[str, Any] = {"t_s": time.monotonic() - started}
        for name, pid in pids.items():
            try:
                process = psutil.Process(pid)
                children = process.children(recursive=True) if name != "bench" else []  # bench: itself
                rss = process.memory_info().rss + sum(c.memory_info().rss for c in children)
                row[name] = rss / 2**20
            except psutil.NoSuchProcess:
                row[name] = None
        out.append(row)


def plot(samples: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    names = [k for k in samples[0] if k != "t_s"] if samples else []
    for name in names:
        ax.plot([s["t_s"] for s in samples], [s[name] for s in samples], label=name)
    ax.set_xlabel("seconds")
    ax.set_ylabel("resident memory (MiB, with children)")
    ax.set_title("soak: memory of each process")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=4, help="operators submitting runs at once")
    parser.add_argument("--scenes", type=int, default=8, help="samples per run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "soak")
    args = parser.parse_args()

    import psutil

    from distributed_overhead import create_database, drop_database, make_world
    from faults import RedisServer
    from giqa.infra.db.migrate import upgrade
    from giqa.infra.stack import Stack, plan
    from giqa.settings import Settings
    from s3_server import free_port, start_s3_server, stop
    from scripted_backends import serve_scripted_llm

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="giqa-soak-") as tmp:
        work = Path(tmp)
        images, descriptions, records = make_world(work, args.scenes, 5)
        redis = RedisServer(work).start()
        s3, s3_url = start_s3_server(work)
        llm, llm_url = serve_scripted_llm(records)
        db = create_database()
        db_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
        stack = None
        try:
            upgrade(db_url)
            env = {
                "GIQA_DB__URL": db_url,
                "GIQA_QUEUE__BROKER_URL": redis.url,
                "GIQA_STORAGE__ENDPOINT": s3_url,
                "GIQA_STORAGE__ACCESS_KEY": "giqa",
                "GIQA_STORAGE__SECRET_KEY": "giqa-soak-secret",
                "GIQA_LLM__URL": llm_url,
                "GIQA_LLM__DIALECT": "json_object",
                "GIQA_DATA_DIR": str(work / "data"),
                "OMP_NUM_THREADS": "1",
            }
            settings = Settings(
                db={"url": db_url},
                queue={"broker_url": redis.url},
                storage={"endpoint": s3_url, "access_key": "giqa", "secret_key": "giqa-soak-secret"},
                llm={"url": llm_url, "dialect": "json_object"},
            )
            ports = {name: free_port() for name in ("annotator", "detector", "iqa_filter")}
            the_plan = plan(settings, ports=ports, repo_root=ROOT)
            stack = Stack(the_plan, work / "logs", cwd=ROOT, extra_env=env).start(timeout_s=180)
            pids = {name: p.pid for name, p in stack.running.items()}
            pids |= {"redis": redis.process.pid, "s3": s3.pid, "bench": psutil.Process().pid}  # type: ignore[union-attr]
            memory: list[dict[str, Any]] = []
            stop_sampling = threading.Event()
            sampler = threading.Thread(target=sample_memory, args=(pids, stop_sampling, memory), daemon=True)
            sampler.start()
            load = Load(
                the_plan.urls["annotator"], images, descriptions, time.monotonic() + 60 * args.minutes
            )
            started = time.perf_counter()
            operators = [threading.Thread(target=load.operator) for _ in range(args.clients)]
            for thread in operators:
                thread.start()
            for thread in operators:
                thread.join()
            elapsed = time.perf_counter() - started
            stop_sampling.set()
            sampler.join()
            dead = stack.dead()
        finally:
            if stack is not None:
                stack.close()
            llm.shutdown()
            llm.server_close()
            stop(s3)
            redis.stop()
            drop_database(db)

    done = [r for r in load.runs if r["state"] == "done"]
    memory_by_process = {
        name: {
            "start_mib": next((m[name] for m in memory if m.get(name) is not None), None),
            "end_mib": next((m[name] for m in reversed(memory) if m.get(name) is not None), None),
            "peak_mib": max((m[name] for m in memory if m.get(name) is not None), default=None),
        }
        for name in (memory[0] if memory else {})
        if name != "t_s"
    }
    summary = {
        "minutes": args.minutes,
        "clients": args.clients,
        "scenes_per_run": args.scenes,
        "elapsed_s": elapsed,
        "runs_done": len(done),
        "runs_not_done": len(load.runs) - len(done),
        "samples_done": sum(r["samples"] for r in done),
        "samples_per_s": sum(r["samples"] for r in done) / elapsed,
        "requests": load.requests,
        "errors": len(load.errors),
        "error_rate": len(load.errors) / max(1, load.requests),
        "error_kinds": sorted(set(load.errors)),
        "datasets_differing_from_the_first": load.differing,
        "latency": {kind: percentiles(values) for kind, values in load.latency.items()},
        "run_wall": percentiles([r["wall_s"] for r in done]),
        "memory": memory_by_process,
        "processes_died": dead,
    }
    (args.out / "soak.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot(memory, args.out / "soak_memory.png")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
