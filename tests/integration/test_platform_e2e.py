"""The annotation platform end to end: real Postgres, Redis (db 3), an S3 server on loopback (moto), and the
detector, iqa_filter and annotator services and one Celery worker per queue as separate processes (the
processes of ``giqa stack``, :func:`giqa.infra.stack.plan`).

A GIQA-Synth run submitted over REST (``giqa runs submit --watch``) flows through every queue and service and
yields byte for byte the dataset ``giqa annotate``'s code path (``run_annotation`` + ``export_from_audit``)
writes for the same input with the same detector (the shipped demo Grounding DINO, here behind the detector
service) and judge (the classical judge, behind the iqa_filter service).

The LLM is a deterministic scripted chat server over real HTTP (OpenAI-compatible, answering each scene's
true tags), not the embedded llama.cpp server: llama.cpp reuses the KV cache of the longest prefix it
shares with the previous request, so its greedy answers depend on the ORDER of requests (a different
suffix batch, different float sums, now and then a different token), and the platform orders LLM calls
by queue (all Stage-1 calls first) where ``giqa annotate`` alternates Stage 1 and VQA per sample.
``bench/distributed_overhead.py`` runs both on the embedded LLM and reports how far they agree.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from giqa.llm.server import free_port

pytest.importorskip("celery")
pytest.importorskip("redis")

from giqa.synth import SceneRecord, write_scenes  # noqa: E402
from scripted_backends import serve_scripted_llm  # noqa: E402

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/3"
N_SCENES = 6


@pytest.fixture(scope="module")
def redis_url() -> str:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.flushdb()  # db 3 is this suite's own
    except redis.RedisError as exc:
        pytest.skip(f"Redis at {REDIS_URL} is not reachable: {exc}")
    return REDIS_URL


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, SceneRecord], Path]:
    root = tmp_path_factory.mktemp("platform")
    write_scenes(N_SCENES, 21, root / "scenes", progress=False)
    records = {}
    for line in (root / "scenes" / "annotations.jsonl").read_text().splitlines():
        record = SceneRecord.model_validate_json(line)
        records[record.image] = record
    descriptions = root / "descriptions.jsonl"
    descriptions.write_text(
        "".join(json.dumps({"image": i, "description": r.description}) + "\n" for i, r in records.items())
    )
    return root, records, descriptions


@pytest.fixture(scope="module")
def platform(
    world: tuple[Path, dict[str, SceneRecord], Path], pg_url: str, s3_server: str, redis_url: str
) -> Iterator[dict[str, Any]]:
    from giqa.infra.stack import Stack, plan
    from giqa.settings import Settings

    root, records, _ = world
    llm_server, llm_url = serve_scripted_llm(records)
    env = {
        "GIQA_DB__URL": pg_url,
        "GIQA_QUEUE__BROKER_URL": redis_url,
        "GIQA_STORAGE__ENDPOINT": s3_server,
        "GIQA_STORAGE__ACCESS_KEY": "giqa",
        "GIQA_STORAGE__SECRET_KEY": "giqa-test-secret",
        "GIQA_LLM__URL": llm_url,
        "GIQA_LLM__DIALECT": "json_object",
        "GIQA_ANNOTATE__VAL_FRACTION": "0.34",
        "GIQA_DATA_DIR": str(root / "data"),
        "OMP_NUM_THREADS": "1",
    }
    settings = Settings(
        db={"url": pg_url},
        queue={"broker_url": redis_url},
        storage={"endpoint": s3_server, "access_key": "giqa", "secret_key": "giqa-test-secret"},
        llm={"url": llm_url, "dialect": "json_object"},
        annotate={"val_fraction": 0.34},
        data_dir=root / "data",
    )
    ports = {name: free_port() for name in ("annotator", "detector", "iqa_filter")}
    repo = Path(__file__).resolve().parents[2]
    the_plan = plan(settings, ports=ports, repo_root=repo)
    assert {p.name for p in the_plan.processes} == {
        "detector", "iqa_filter", "annotator", "worker-llm", "worker-detect1", "worker-judge", "worker-cpu"
    }  # fmt: skip
    stack = Stack(the_plan, root / "logs", cwd=repo, extra_env=env)
    try:
        stack.start(timeout_s=120)
        yield {"stack": stack, "settings": settings, "urls": the_plan.urls, "env": env}
    finally:
        stack.close()
        llm_server.shutdown()
        llm_server.server_close()


def embedded_reference(root: Path, descriptions: Path, settings: Any, out: Path) -> None:
    """What ``giqa annotate`` does, with the same LLM endpoint, detector and judge."""
    from giqa.backends.factory import annotate_config, make_chat_llm, make_detector, make_judge
    from giqa.pipeline.export import export_from_audit
    from giqa.pipeline.inputs import read_inputs
    from giqa.pipeline.run import Backends, run_annotation

    local = settings.pipeline.model_copy(update={"detector_url": None, "judge_url": None})
    with make_chat_llm(settings) as llm:
        backends = Backends(llm=llm, detector=make_detector(local), judge=make_judge(local))
        config = annotate_config(settings)
        run_annotation(
            read_inputs(descriptions, root / "scenes"), root / "scenes", out, backends, config, progress=False
        )
    export_from_audit(out / "audit.jsonl", out, seed=settings.annotate.seed, val_fraction=0.34)


def test_a_rest_run_flows_through_every_queue_and_gives_the_embedded_dataset(
    world: tuple[Path, dict[str, SceneRecord], Path], platform: dict[str, Any], tmp_path: Path
) -> None:
    import httpx
    from typer.testing import CliRunner

    from giqa.cli import app as cli
    from giqa.infra.db import dal, make_engine, make_sessionmaker, session_scope
    from giqa.infra.storage import make_store, prefix_of
    from giqa.pipeline.export import EXPORT_FILES

    root, _, descriptions = world
    url = platform["urls"]["annotator"]
    assert httpx.get(f"{url}/ready").json()["status"] == "ok"

    images = str(root / "scenes")
    submit = ["runs", "submit", "--url", url, "--descriptions", str(descriptions), "--images", images]
    result = CliRunner().invoke(cli, [*submit, "--name", "e2e", "--watch"])
    assert result.exit_code == 0, result.output + "".join(
        f"\n--- {p.name}\n{platform['stack'].log(p.name).read_text()[-2000:]}"
        for p in platform["stack"].plan.processes
    )
    run_id = result.output.split()[1].rstrip(":")
    assert f"run {run_id} (e2e): done" in result.output

    reference = tmp_path / "reference"
    embedded_reference(root, descriptions, platform["settings"], reference)
    export = tmp_path / "platform"
    assert (
        CliRunner().invoke(cli, ["runs", "export", run_id, "--url", url, "--out", str(export)]).exit_code == 0
    )
    for name in ("train.json", "val.json", "box_area.png"):
        assert (export / name).read_bytes() == (reference / name).read_bytes(), name
    assert json.loads((export / "train.json").read_text())  # not trivially equal: there is a dataset

    # every sample has its rows: done, one result per stage, no failure
    sessions = make_sessionmaker(make_engine(platform["settings"].db.url))
    with session_scope(sessions) as s:
        progress = dal.run_progress(s, run_id=run_id)
        samples = list(dal.iter_run_records(s, run_id=run_id))
    assert progress.by_state["done"] == N_SCENES and progress.failures == []
    assert {k: v for k, v in progress.by_stage.items() if v} == dict.fromkeys(
        ("stage1", "detect", "assemble", "vqa"), N_SCENES
    )
    assert all(set(x.payloads) == {"stage1", "detect", "assemble", "vqa"} for x in samples)

    # every exported file and every image is in the bucket
    store = make_store(platform["settings"])
    assert sorted(store.list(prefix_of("datasets", run_id))) == sorted(
        f"{prefix_of('datasets', run_id)}{name}" for name in EXPORT_FILES
    )
    assert all(x.image_key and store.exists(x.image_key) for x in samples)
    presigned = httpx.get(url + f"/v1/runs/{run_id}/dataset").json()["files"]["train.json"]
    assert httpx.get(presigned).content == (reference / "train.json").read_bytes()

    # through every queue and service: each worker ran its stage, the services answered the workers
    logs = {p.name: platform["stack"].log(p.name).read_text() for p in platform["stack"].plan.processes}
    for worker, tasks in {
        "worker-llm": ("giqa.annotate.stage1", "giqa.annotate.vqa"),
        "worker-detect1": ("giqa.annotate.detect",),
        "worker-judge": ("giqa.annotate.assemble",),
        "worker-cpu": ("giqa.annotate.export",),
    }.items():
        for task in tasks:
            assert f"Task {task}[" in logs[worker], f"{task} did not run on {worker}"
    for service, route in (("detector", "/v1/detect"), ("iqa_filter", "/v1/judge")):
        metrics = httpx.get(f"{platform['urls'][service]}/metrics").text
        assert f'route="{route}"' in metrics, f"{service} got no {route} request"
