"""The annotator service and its stage tasks on embedded defaults: SQLite, the local object folder, Celery in
eager mode (tasks run in-process), scripted model ports. The same code runs against Postgres, S3 and real
workers in ``tests/integration/test_platform_e2e.py``.

What it shows: a run submitted over REST yields byte for byte the dataset ``giqa annotate``'s code path
(``run_annotation`` + ``export_from_audit``) writes for the same input and models; bad samples are failed
with stage and reason, bad requests are refused with nothing written; transient faults are retried with
backoff and, when the retries are spent, recorded as retryable, and ``retry`` finishes them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery")
pytest.importorskip("sqlalchemy")

from fastapi.testclient import TestClient  # noqa: E402

from giqa.backends.classical import ClassicalJudge  # noqa: E402
from giqa.llm.errors import LLMUnavailableError  # noqa: E402
from giqa.pipeline.export import export_from_audit  # noqa: E402
from giqa.pipeline.inputs import read_inputs  # noqa: E402
from giqa.pipeline.run import Backends, run_annotation  # noqa: E402
from giqa.settings import Settings  # noqa: E402
from giqa.synth import SceneRecord, write_scenes  # noqa: E402
from scripted_backends import ScriptedLLM, TruthDetector  # noqa: E402

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, SceneRecord], Path]:
    root = tmp_path_factory.mktemp("scenes")
    write_scenes(6, 11, root, progress=False)
    records = {}
    for line in (root / "annotations.jsonl").read_text().splitlines():
        record = SceneRecord.model_validate_json(line)
        records[record.image] = record
    (root / "images" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    first = next(iter(records.values()))
    lines = [{"image": image, "description": r.description} for image, r in records.items()]
    lines += [
        {"image": "images/corrupt.png", "description": first.description},
        {"image": first.image, "description": ""},
        {"image": "images/missing.png", "description": first.description},
        {"image": first.image, "description": first.description + " The GARBAGE circle is blurry."},
    ]
    inputs = root / "in.jsonl"
    inputs.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return root, records, inputs


def settings_for(tmp: Path, **queue: Any) -> Settings:
    return Settings(
        data_dir=tmp / "data",
        queue={"retry_backoff_s": 0.001, "retry_backoff_max_s": 0.001, **queue},
        annotate={"val_fraction": 0.34},
    )


@pytest.fixture
def client_for(tmp_path: Path) -> Iterator[Any]:
    from services.annotator.app import create_app_from_settings
    from services.annotator.tasks import WorkerContext

    clients: list[TestClient] = []

    def make(llm: Any, detector: Any, **queue: Any) -> TestClient:
        settings = settings_for(tmp_path, **queue)
        ctx = WorkerContext(settings, backends={"llm": llm, "detector": detector, "judge": ClassicalJudge()})
        client = TestClient(create_app_from_settings(settings, ctx=ctx))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def upload(client: TestClient, root: Path, inputs: Path, images: Sequence[str] | None = None) -> Any:
    names = (
        images
        if images is not None
        else sorted(p.relative_to(root).as_posix() for p in root.glob("images/*"))
    )
    files = [("descriptions", ("in.jsonl", inputs.read_bytes(), "application/x-ndjson"))]
    files += [("images", (name, (root / name).read_bytes(), "image/png")) for name in names]
    return client.post("/v1/runs", files=files, data={"name": "synth"})


def test_a_run_over_rest_yields_the_embedded_dataset_byte_for_byte(
    tmp_path: Path, world: tuple[Path, dict[str, SceneRecord], Path], client_for: Any
) -> None:
    root, records, inputs = world
    judge = ClassicalJudge()
    embedded = tmp_path / "embedded"
    backends = Backends(llm=ScriptedLLM(records), detector=TruthDetector(records), judge=judge)
    from giqa.backends.factory import annotate_config

    config = annotate_config(settings_for(tmp_path))
    run_annotation(read_inputs(inputs, root), root, embedded, backends, config, progress=False)
    export_from_audit(embedded / "audit.jsonl", embedded, val_fraction=0.34)

    client = client_for(ScriptedLLM(records), TruthDetector(records))
    answer = upload(client, root, inputs)
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["total"] == 10 and created["failed_at_input"] == 3 and created["started"] == 7

    run = client.get(f"/v1/runs/{created['run_id']}").json()
    assert run["state"] == "done", run
    assert run["by_state"] == {"pending": 0, "running": 0, "done": 6, "failed": 4}
    assert run["by_stage"]["vqa"] == 6 and run["by_stage"]["stage1"] == 6
    reasons = sorted(f"{f['stage']}: {f['reason'].split(':')[0]}" for f in run["failures"])
    assert reasons == ["stage1: LLMOutputError", "stage1: input", "stage1: input", "stage1: input"]

    for name in ("train.json", "val.json"):
        got = client.get(f"/v1/runs/{created['run_id']}/dataset", params={"file": name})
        assert got.status_code == 200
        assert got.content == (embedded / name).read_bytes(), name
    dataset = client.get(f"/v1/runs/{created['run_id']}/dataset").json()
    assert set(dataset["files"]) >= {"train.json", "val.json", "stats.json", "box_area.png"}
    embedded_stats = json.loads((embedded / "stats.json").read_text())
    for part in ("table", "balanced_vqa_kept"):
        assert dataset["stats"][part] == embedded_stats[part]
    ours, theirs = dataset["stats"]["report"], embedded_stats["report"]
    assert ours["counts"] == theirs["counts"] and ours["drops"] == theirs["drops"]
    # failures read back under the audit's stage names; the wording differs only where the embedded run
    # names a file on its disk (an image's absolute path)
    assert sorted(k.split(":")[0] for k in ours["failures"]) == sorted(
        k.split(":")[0] for k in theirs["failures"]
    )
    assert "input: in.jsonl line 8: empty description" in ours["failures"]

    again = upload(client, root, inputs)  # the same images again: content-addressed, stored once
    assert again.status_code == 201
    stored = list((tmp_path / "data" / "objects" / "images").rglob("*.png"))
    assert len(stored) == 6


def test_bad_requests_are_refused_and_write_nothing(
    tmp_path: Path, world: tuple[Path, dict[str, SceneRecord], Path], client_for: Any
) -> None:
    root, records, inputs = world
    client = client_for(ScriptedLLM(records), TruthDetector(records))
    no_descriptions = client.post("/v1/runs", files=[("images", ("a.png", b"x", "image/png"))])
    assert no_descriptions.status_code == 400 and "descriptions" in no_descriptions.json()["error"]["message"]
    empty = client.post("/v1/runs", files=[("descriptions", ("in.jsonl", b"", "text/plain"))])
    assert empty.status_code == 400 and "empty" in empty.json()["error"]["message"]
    wrong_kind = client.post("/v1/runs", files=[("descriptions", ("in.csv", b"a,b", "text/csv"))])
    assert wrong_kind.status_code == 400 and ".jsonl" in wrong_kind.json()["error"]["message"]
    not_llava = client.post("/v1/runs", files=[("descriptions", ("in.json", b"{not json", "text/plain"))])
    assert not_llava.status_code == 400 and "not valid JSON" in not_llava.json()["error"]["message"]
    twice = [("descriptions", ("in.jsonl", inputs.read_bytes(), "text/plain"))]
    twice += [
        ("images", ("images/a.png", b"1", "image/png")),
        ("images", ("images/a.png", b"2", "image/png")),
    ]
    duplicate = client.post("/v1/runs", files=twice)
    assert duplicate.status_code == 400 and "two uploaded images" in duplicate.json()["error"]["message"]
    assert client.post("/v1/runs", content=b"x", headers={"content-type": "text/plain"}).status_code == 415
    missing_key = client.post("/v1/runs", json={"images_prefix": "in/", "descriptions_key": "in/none.jsonl"})
    assert missing_key.status_code == 400 and "no object" in missing_key.json()["error"]["message"]
    assert client.get("/v1/runs").json() == []
    assert not list((tmp_path / "data" / "objects").rglob("*.png"))
    assert client.get("/v1/runs/nope").status_code == 404
    assert client.get("/v1/runs/nope/dataset").status_code == 404


class FlakyLLM(ScriptedLLM):
    """Unavailable for its first ``outages`` calls, then the scripted answers."""

    def __init__(self, records: dict[str, SceneRecord], outages: int) -> None:
        super().__init__(records)
        self.outages = outages

    def chat_json(self, messages: Sequence[dict[str, Any]], schema: dict[str, Any], **kw: Any) -> Any:
        if self.outages > 0:
            self.outages -= 1
            raise LLMUnavailableError("chat_json: http://x/v1 failed 3 times; last error: ConnectError")
        return super().chat_json(messages, schema, **kw)


def test_transient_faults_are_retried_then_recorded_retryable_and_retry_finishes_them(
    tmp_path: Path, world: tuple[Path, dict[str, SceneRecord], Path], client_for: Any
) -> None:
    root, records, _ = world
    image, first = next(iter(records.items()))
    inputs = tmp_path / "in.jsonl"
    lines = [{"image": image, "description": first.description}]
    inputs.write_text("".join(json.dumps(x) + "\n" for x in lines))
    llm = FlakyLLM(records, outages=3)
    client = client_for(llm, TruthDetector(records), max_retries=1)  # 2 tries: both meet the outage
    run_id = upload(client, root, inputs, [image]).json()["run_id"]
    run = client.get(f"/v1/runs/{run_id}").json()
    assert run["state"] == "done" and run["by_state"]["failed"] == 1
    (failure,) = run["failures"]
    assert (
        failure["stage"] == "stage1" and failure["retryable"] and "LLMUnavailableError" in failure["reason"]
    )
    assert client.get(f"/v1/runs/{run_id}/dataset").status_code == 200  # exported with what there was

    retried = client.post(f"/v1/runs/{run_id}/retry").json()
    assert retried == {"run_id": run_id, "retried": 1, "by_stage": {"stage1": 1}}
    run = client.get(f"/v1/runs/{run_id}").json()
    assert run["state"] == "done" and run["by_state"]["done"] == 1, run
    train = client.get(f"/v1/runs/{run_id}/dataset", params={"file": "train.json"}).json()
    val = client.get(f"/v1/runs/{run_id}/dataset", params={"file": "val.json"}).json()
    assert any(r["task"] == "des" for r in train + val)
    assert client.post(f"/v1/runs/{run_id}/retry").json()["retried"] == 0


def test_samples_whose_tasks_were_lost_are_sent_again(
    tmp_path: Path, world: tuple[Path, dict[str, SceneRecord], Path], client_for: Any
) -> None:
    """The annotator died after writing the run, before enqueuing: retry --stalled finishes it."""
    from services.annotator import runs
    from services.annotator.tasks import context

    root, records, inputs = world
    client = client_for(ScriptedLLM(records), TruthDetector(records))
    items = runs.parse_descriptions(inputs.read_bytes(), "in.jsonl", max_chars=4000)[:3]
    created = runs.create_run(
        context(), name="lost", items=items, image_bytes=lambda r: (root / r).read_bytes()
    )
    run = client.get(f"/v1/runs/{created.run_id}").json()
    assert run["by_state"]["pending"] == 3 and run["state"] == "running"
    assert client.post(f"/v1/runs/{created.run_id}/retry").json()["retried"] == 0  # nothing failed
    answer = client.post(f"/v1/runs/{created.run_id}/retry", params={"stalled": True}).json()
    assert answer["retried"] == 3 and answer["by_stage"] == {"stage1": 3}
    run = client.get(f"/v1/runs/{created.run_id}").json()
    assert run["state"] == "done" and run["by_state"]["done"] == 3
