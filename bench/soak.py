"""Soak: the annotation platform and the inference service under bounded concurrent load, on loopback.

Annotation: the stack of ``giqa stack`` (detector and iqa_filter services with the shipped demo detector and
the classical judge, the annotator, one Celery worker per queue) on Postgres (a fresh database), an S3
server (moto) and a Redis server of its own, with the deterministic scripted LLM of the tests (``--llm
embedded``: the embedded llama.cpp server instead, whose answers may differ run to run). ``--clients``
operators each submit a GIQA-Synth run over REST, poll it until it is done, fetch its dataset, and start
again, until ``--minutes`` have passed. Every run has the same input, so with the scripted LLM every dataset
must equal the first one byte for byte (what was lost: must be nothing).

Inference, at the same time: ``giqa serve inference`` on embedded defaults (the shipped demo VLM, CPU) as a
process of its own; ``--inference-clients`` apps (:class:`giqa.client.InferenceClient`, no retries, so a
503 counts as an error) each alternate ``POST /v1/assess`` and a yes/no ``POST /v1/ask`` about a region,
on distinct synthetic images, until the same deadline. Each answer is checked against the contract (the
client validates it); the same image must get the same description every time (greedy decoding).

Figures (``<out>/soak.json``, ``<out>/soak_memory.png``): runs and samples completed, throughput, error
rate over every request (non-2xx answers and transport errors), latency percentiles of submits, status
polls and dataset fetches, and of each inference endpoint, run wall time percentiles, datasets that differ
from the first, and the resident memory of every process (services, workers, Redis, the S3 server, the
embedded LLM server, this process) sampled every 2 s (start, end, peak), plotted over time.

    PYTHONPATH=shared:. python bench/soak.py --minutes 3 --clients 4 --scenes 8 --inference-clients 2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "shared"), str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from load_stats import MemorySampler, percentiles, plot_memory  # noqa: E402

YES_NO = "Is the region blurry?"
REGION = (0.25, 0.25, 0.75, 0.75)


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


class InferenceLoad:
    """The apps' loop against the inference service and what it measured (per endpoint)."""

    def __init__(self, url: str, payloads: list[bytes], deadline: float, max_new_tokens: int) -> None:
        self.url, self.payloads, self.deadline, self.max_new_tokens = url, payloads, deadline, max_new_tokens
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = {"assess": [], "ask": []}
        self.requests = {"assess": 0, "ask": 0}
        self.errors: list[str] = []
        self.descriptions: dict[int, str] = {}
        self.inconsistent = 0
        self.sent = 0

    def _next(self) -> int:
        with self.lock:
            self.sent += 1
            return self.sent % len(self.payloads)

    def app(self) -> None:
        from giqa.client import InferenceClient, InferenceError

        with InferenceClient(self.url, timeout_s=120, retries=0) as client:
            while time.monotonic() < self.deadline:
                index = self._next()
                for endpoint in ("assess", "ask"):
                    started = time.perf_counter()
                    try:
                        if endpoint == "assess":
                            answer: Any = client.assess(
                                self.payloads[index], max_new_tokens=self.max_new_tokens
                            )
                        else:
                            answer = client.ask(
                                self.payloads[index],
                                YES_NO,
                                regions=[REGION],
                                max_new_tokens=self.max_new_tokens,
                            )
                    except (InferenceError, ValueError) as exc:  # ValueError: an answer off the contract
                        with self.lock:
                            self.requests[endpoint] += 1
                            self.errors.append(f"{endpoint}: {str(exc)[:120]}")
                        continue
                    with self.lock:
                        self.requests[endpoint] += 1
                        self.latency[endpoint].append(time.perf_counter() - started)
                        if endpoint == "ask" and answer.p_yes is None:
                            self.errors.append("ask: a yes/no question without p_yes")
                        if endpoint == "assess":
                            first = self.descriptions.setdefault(index, answer.description)
                            self.inconsistent += first != answer.description

    def summary(self, elapsed: float) -> dict[str, Any]:
        total = sum(self.requests.values())
        return {
            "requests": dict(self.requests),
            "requests_per_s": total / elapsed,
            "errors": len(self.errors),
            "error_rate": len(self.errors) / max(1, total),
            "error_kinds": sorted({error[:80] for error in self.errors}),
            "latency": {kind: percentiles(values) for kind, values in self.latency.items()},
            "images": len(self.descriptions),
            "descriptions_differing_for_the_same_image": self.inconsistent,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=4, help="operators submitting runs at once")
    parser.add_argument("--scenes", type=int, default=8, help="samples per run")
    parser.add_argument("--inference-clients", type=int, default=2, help="apps calling the inference service")
    parser.add_argument("--inference-images", type=int, default=16, help="distinct images the apps send")
    parser.add_argument("--max-new-tokens", type=int, default=48, help="inference answers' token cap")
    parser.add_argument("--llm", choices=("scripted", "embedded"), default="scripted", help="annotation LLM")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "soak")
    args = parser.parse_args()

    import psutil

    from distributed_overhead import create_database, drop_database, llm_endpoint, make_world
    from faults import RedisServer
    from giqa.infra.db.migrate import upgrade
    from giqa.infra.stack import Stack, plan
    from giqa.settings import Settings
    from inference_load import images as synthetic_images
    from inference_load import start as start_inference
    from processes import servers_under
    from s3_server import free_port, start_s3_server, stop

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="giqa-soak-") as tmp, ExitStack() as cleanup:
        work = Path(tmp)
        images, descriptions, records = make_world(work, args.scenes, 5)
        redis = RedisServer(work).start()
        cleanup.callback(redis.stop)
        s3, s3_url = start_s3_server(work)
        cleanup.callback(stop, s3)
        llm_url = llm_endpoint(args.llm, records, cleanup)
        db = create_database()
        cleanup.callback(drop_database, db)
        db_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
        upgrade(db_url)
        dialect = "json_object"
        env = {
            "GIQA_DB__URL": db_url,
            "GIQA_QUEUE__BROKER_URL": redis.url,
            "GIQA_STORAGE__ENDPOINT": s3_url,
            "GIQA_STORAGE__ACCESS_KEY": "giqa",
            "GIQA_STORAGE__SECRET_KEY": "giqa-soak-secret",
            "GIQA_LLM__URL": llm_url,
            "GIQA_LLM__DIALECT": dialect,
            "GIQA_DATA_DIR": str(work / "data"),
            "OMP_NUM_THREADS": "1",
        }
        settings = Settings(
            db={"url": db_url},
            queue={"broker_url": redis.url},
            storage={"endpoint": s3_url, "access_key": "giqa", "secret_key": "giqa-soak-secret"},
            llm={"url": llm_url, "dialect": dialect},
        )
        ports = {name: free_port() for name in ("annotator", "detector", "iqa_filter")}
        the_plan = plan(settings, ports=ports, repo_root=ROOT)
        stack = Stack(the_plan, work / "logs", cwd=ROOT, extra_env=env).start(timeout_s=180)
        cleanup.callback(stack.close)
        pids = {name: p.pid for name, p in stack.running.items()}
        pids |= {"redis": redis.process.pid, "s3": s3.pid}  # type: ignore[union-attr]
        for server in servers_under(psutil.Process().pid)[:1]:  # the embedded LLM server (--llm embedded)
            pids["llm"] = server.pid
        inference = None
        if args.inference_clients > 0:
            service, inference_url = start_inference(
                16,
                batch_wait_ms=25.0,
                max_new_tokens=args.max_new_tokens,
                log=work / "logs" / "inference.log",
            )
            cleanup.callback(_terminate, service)
            pids["inference"] = service.pid
            payloads = synthetic_images(args.inference_images)
        pids["bench"] = psutil.Process().pid
        sampler = MemorySampler(pids).start()
        deadline = time.monotonic() + 60 * args.minutes
        load = Load(the_plan.urls["annotator"], images, descriptions, deadline)
        threads = [threading.Thread(target=load.operator) for _ in range(args.clients)]
        if args.inference_clients > 0:
            inference = InferenceLoad(inference_url, payloads, deadline, args.max_new_tokens)
            threads += [threading.Thread(target=inference.app) for _ in range(args.inference_clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        memory = sampler.stop()
        dead = stack.dead()

    done = [r for r in load.runs if r["state"] == "done"]
    summary = {
        "minutes": args.minutes,
        "clients": args.clients,
        "scenes_per_run": args.scenes,
        "llm": args.llm,
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
        "inference": None
        if inference is None
        else inference.summary(elapsed)
        | {"clients": args.inference_clients, "max_new_tokens": args.max_new_tokens},
        "memory": sampler.summary(),
        "processes_died": dead,
    }
    (args.out / "soak.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_memory(memory, args.out / "soak_memory.png", "soak: resident memory of each process")
    print(json.dumps(summary, indent=2))


def _terminate(process: Any) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except Exception:  # it did not stop in time
        process.kill()


if __name__ == "__main__":
    main()
