"""Orchestration overhead of the annotation platform: the same input through ``giqa annotate``'s code path
(one process) and through the stack (``giqa stack``'s processes: detector and iqa_filter services, the
annotator, one Celery worker per queue, Postgres, Redis, a moto S3 server), same detector (the shipped demo
Grounding DINO), same judge (classical), same LLM endpoint.

Arms:
- ``embedded``: ``run_annotation`` + ``export_from_audit`` in this process (detector and judge in-process).
- ``distributed-1`` / ``distributed-2``: a REST run through the stack with 1 or 2 detect workers.

Figures: wall time per sample of each arm (submission to dataset for the distributed ones), their ratio and
difference (ms/sample), and the orchestration cost inside the tasks: per stage task, the worker's task time
(Celery's "succeeded in") minus the stage's own seconds (stored with its result), summed over a sample's
four stage tasks; plus whether the datasets are byte-identical.

LLM: by default the deterministic scripted chat server of the tests (``tests/scripted_backends.py``, over
HTTP), so model time is small and the overhead shows; ``--llm embedded`` starts a fresh embedded llama.cpp
server per arm instead (fresh, so no arm profits from prompts another arm cached).

    PYTHONPATH=shared:. python bench/distributed_overhead.py --n 24
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "shared"), str(ROOT), str(ROOT / "tests")]

REDIS = "redis://127.0.0.1:6379/4"
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def make_world(out: Path, n: int, seed: int) -> tuple[Path, Path, dict[str, Any]]:
    from giqa.synth import SceneRecord, write_scenes

    write_scenes(n, seed, out / "scenes", progress=False)
    records = {}
    for line in (out / "scenes" / "annotations.jsonl").read_text().splitlines():
        record = SceneRecord.model_validate_json(line)
        records[record.image] = record
    descriptions = out / "descriptions.jsonl"
    descriptions.write_text(
        "".join(json.dumps({"image": i, "description": r.description}) + "\n" for i, r in records.items())
    )
    return out / "scenes", descriptions, records


def llm_endpoint(kind: str, records: dict[str, Any], stack: ExitStack) -> str:
    if kind == "scripted":
        from scripted_backends import serve_scripted_llm

        server, url = serve_scripted_llm(records)
        stack.callback(server.server_close)
        stack.callback(server.shutdown)
        return url
    from giqa.llm.server import EmbeddedLLMServer

    server = stack.enter_context(EmbeddedLLMServer(n_ctx=2048))
    return server.url


def embedded(images: Path, descriptions: Path, settings: Any, out: Path) -> float:
    from giqa.backends.factory import annotate_config, make_chat_llm, make_detector, make_judge
    from giqa.pipeline.export import export_from_audit
    from giqa.pipeline.inputs import read_inputs
    from giqa.pipeline.run import Backends, run_annotation

    local = settings.pipeline.model_copy(update={"detector_url": None, "judge_url": None})
    detector, judge = make_detector(local), make_judge(local)
    detector.detect(_warm_image(images), ["circle"])  # load the weights before the clock starts
    started = time.perf_counter()
    with make_chat_llm(settings) as llm:
        backends = Backends(llm=llm, detector=detector, judge=judge)
        items = read_inputs(descriptions, images)
        run_annotation(items, images, out, backends, annotate_config(settings), progress=False)
    export_from_audit(out / "audit.jsonl", out, seed=settings.annotate.seed, val_fraction=0.34)
    return time.perf_counter() - started


def _warm_image(images: Path) -> Any:
    from giqa.backends.images import load_image

    return load_image(next(images.glob("images/*.png")))


def create_database() -> str:
    import psycopg

    name = f"giqa_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def distributed(
    images: Path, descriptions: Path, llm_url: str, s3: str, detect_workers: int, work: Path
) -> dict[str, Any]:
    import httpx
    import redis

    from giqa.infra.db.migrate import upgrade
    from giqa.infra.stack import Stack, plan
    from giqa.settings import Settings

    redis.Redis.from_url(REDIS).flushdb()
    db = create_database()
    url = PG.format(name=db)
    try:
        upgrade(url)
        env = {
            "GIQA_DB__URL": url,
            "GIQA_QUEUE__BROKER_URL": REDIS,
            "GIQA_STORAGE__ENDPOINT": s3,
            "GIQA_STORAGE__ACCESS_KEY": "giqa",
            "GIQA_STORAGE__SECRET_KEY": "giqa-bench-secret",
            "GIQA_STORAGE__BUCKET": f"bench-{detect_workers}",
            "GIQA_LLM__URL": llm_url,
            "GIQA_LLM__DIALECT": "json_object",
            "GIQA_ANNOTATE__VAL_FRACTION": "0.34",
            "GIQA_DATA_DIR": str(work / "data"),
            "GIQA_SERVICE__MAX_BODY_BYTES": str(2**30),
            "OMP_NUM_THREADS": "1",
        }
        settings = Settings(
            db={"url": url},
            queue={"broker_url": REDIS},
            storage={"endpoint": s3},
            llm={"url": llm_url, "dialect": "json_object"},
        )
        the_plan = plan(settings, ports=_free_ports(), detect_workers=detect_workers, repo_root=ROOT)
        with Stack(the_plan, work / "logs", cwd=ROOT, extra_env=env) as stack:
            stack.start(timeout_s=180)
            api = the_plan.urls["annotator"]
            files: list[tuple[str, Any]] = [
                ("descriptions", ("d.jsonl", descriptions.read_bytes(), "text/plain"))
            ]
            for path in sorted(images.glob("images/*.png")):
                files.append(
                    ("images", (path.relative_to(images).as_posix(), path.read_bytes(), "image/png"))
                )
            started = time.perf_counter()
            created = httpx.post(f"{api}/v1/runs", files=files, timeout=600).json()
            run_id = created["run_id"]
            peak: dict[str, int] = {}
            while True:
                run = httpx.get(f"{api}/v1/runs/{run_id}", timeout=60).json()
                _sample_rss(stack, peak)
                if run["state"] in ("done", "failed", "cancelled"):
                    break
                time.sleep(0.2)
            wall = time.perf_counter() - started
            rows = _rows(url)
            out = work / "dataset"
            out.mkdir(parents=True, exist_ok=True)
            for name in ("train.json", "val.json"):
                data = httpx.get(f"{api}/v1/runs/{run_id}/dataset", params={"file": name}, timeout=60).content
                (out / name).write_bytes(data)
            logs = {p.name: stack.log(p.name).read_text() for p in the_plan.processes}
        return {
            "wall_s": wall, "run": run, "logs": logs, "dataset": out, "n": created["total"], "peak_rss": peak,
            "rows": rows,
        }  # fmt: skip
    finally:
        drop_database(db)


def _sample_rss(stack: Any, peak: dict[str, int]) -> None:
    """Peak resident memory of each stack process (with its children: the embedded LLM server)."""
    import psutil

    for name, child in stack.running.items():
        try:
            proc = psutil.Process(child.pid)
            rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
        except psutil.Error:
            continue
        peak[name] = max(peak.get(name, 0), rss)


def _rows(url: str) -> dict[str, int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                table: int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() or 0)
                for table in ("runs", "images", "samples", "stage_results", "failures", "datasets")
            }
    finally:
        engine.dispose()


def _free_ports() -> dict[str, int]:
    import socket

    ports = {}
    for name in ("annotator", "detector", "iqa_filter"):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports[name] = sock.getsockname()[1]
    return ports


TASK_DONE = re.compile(r"Task (giqa\.annotate\.\w+)\[[^\]]+\] succeeded in ([0-9.eE-]+)s")


def task_overhead_ms(result: dict[str, Any]) -> dict[str, float]:
    """Per sample: the stage tasks' run time minus the stage seconds stored with the results (ms)."""
    task_s: dict[str, float] = {}
    for text in result["logs"].values():
        for name, seconds in TASK_DONE.findall(text):
            task_s[name] = task_s.get(name, 0.0) + float(seconds)
    stage_total = {k: v["total_s"] for k, v in result["run"]["stage_seconds"].items()}
    n = result["n"]
    out = {}
    for stage in ("stage1", "detect", "assemble", "vqa"):
        out[stage] = 1000 * (task_s.get(f"giqa.annotate.{stage}", 0.0) - stage_total.get(stage, 0.0)) / n
    out["export (per sample)"] = 1000 * task_s.get("giqa.annotate.export", 0.0) / n
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=24, help="synth scenes")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--llm", choices=("scripted", "embedded"), default="scripted")
    parser.add_argument("--workers", default="1,2", help="detect worker counts to run")
    parser.add_argument("--skip-embedded", action="store_true", help="only the distributed arms")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from giqa.settings import Settings

    sys.path.insert(0, str(ROOT / "tests" / "integration"))
    from conftest import start_s3_server, stop  # the S3 server the integration tests start

    work = Path(tempfile.mkdtemp(prefix="giqa-bench-"))
    try:
        images, descriptions, records = make_world(work, args.n, args.seed)
        s3_process, s3 = start_s3_server(work)
        results: dict[str, Any] = {}
        try:
            if not args.skip_embedded:
                with ExitStack() as stack:
                    url = llm_endpoint(args.llm, records, stack)
                    settings = Settings(
                        llm={"url": url, "dialect": "json_object"}, annotate={"val_fraction": 0.34}
                    )
                    results["embedded"] = embedded(images, descriptions, settings, work / "embedded")
            for count in (int(c) for c in args.workers.split(",")):
                with ExitStack() as stack:
                    url = llm_endpoint(args.llm, records, stack)
                    results[f"distributed-{count}"] = distributed(
                        images, descriptions, url, s3, count, work / f"dist{count}"
                    )
        finally:
            stop(s3_process)
        n = args.n
        emb_ms = 1000 * results["embedded"] / n if "embedded" in results else float("nan")
        print(f"input: {n} GIQA-Synth scenes (seed {args.seed}), LLM {args.llm}; 2 CPU cores shared")
        print(f"embedded           {results.get('embedded', float('nan')):7.2f} s  {emb_ms:8.1f} ms/sample")
        for name, r in results.items():
            if name == "embedded":
                continue
            ms = 1000 * r["wall_s"] / n
            same = "embedded" in results and all(
                (r["dataset"] / f).read_bytes() == (work / "embedded" / f).read_bytes()
                for f in ("train.json", "val.json")
            )
            print(
                f"{name:18} {r['wall_s']:7.2f} s  {ms:8.1f} ms/sample  ratio {ms / emb_ms:5.2f}  "
                f"difference {ms - emb_ms:+8.1f} ms/sample  {n / r['wall_s']:.2f} samples/s  "
                f"state {r['run']['state']}  dataset {'identical' if same else 'DIFFERS'}"
            )
            overhead = task_overhead_ms(r)
            total = sum(v for k, v in overhead.items() if not k.startswith("export"))
            parts = ", ".join(f"{k} {v:.1f}" for k, v in overhead.items())
            print(f"{'':18} in-task orchestration {total:.1f} ms/sample ({parts})")
            means = {k: round(1000 * v["mean_s"], 1) for k, v in r["run"]["stage_seconds"].items()}
            print(f"{'':18} stage ms/sample (model work): {means}")
            print(f"{'':18} rows: {r['rows']}")
            mib = {k: round(v / 2**20) for k, v in r["peak_rss"].items()}
            print(f"{'':18} peak RSS MiB: {mib}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
