"""The evaluator service on embedded defaults (SQLite, the local object folder, Celery eager): requests it
refuses write nothing, keys guard it, an uploaded predictions file is scored to the report ``giqa eval
--no-judge`` writes, and compare answers a table or a chart. Models and real servers: the e2e test."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery")

from fastapi.testclient import TestClient  # noqa: E402

from giqa.settings import Settings  # noqa: E402

pytestmark = pytest.mark.unit

KEY = "operator-key-for-tests"


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from typer.testing import CliRunner

    from giqa.cli import app

    root = tmp_path_factory.mktemp("bench")
    result = CliRunner().invoke(app, ["synth", "bench", "--out", str(root), "--size", "48", "--no-progress"])
    assert result.exit_code == 0, result.output
    lines = (root / "bench.jsonl").read_text().splitlines()
    small = [x for x in lines if '"task":"des"' in x][:2] + [x for x in lines if '"task":"vqa"' in x][:3]
    (root / "small.jsonl").write_text("\n".join(small) + "\n")
    return root


@pytest.fixture
def client(tmp_path: Path, bench: Path) -> Iterator[tuple[TestClient, Any]]:
    from giqa.infra.storage import make_store, put_folder
    from services.evaluator.app import create_app_from_settings

    settings = Settings(
        data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", service={"operator_keys": [KEY]}
    )
    store = make_store(settings)
    store.put_file("benches/b/bench.jsonl", bench / "small.jsonl")
    put_folder(store, bench / "images", "benches/b/images/")
    store.put_bytes("benches/bad.jsonl", b'{"id": "x"}\n')
    with TestClient(create_app_from_settings(settings), raise_server_exceptions=False) as c:
        c.headers["Authorization"] = f"Bearer {KEY}"
        yield c, store


def predictions(bench: Path) -> bytes:
    ids = [json.loads(x)["id"] for x in (bench / "small.jsonl").read_text().splitlines()]
    return "".join(json.dumps({"id": i, "response": "Yes. The image is sharp."}) + "\n" for i in ids).encode()


def test_refused_requests_write_nothing(client: tuple[TestClient, Any], bench: Path) -> None:
    c, store = client
    before = sorted(store.list(""))
    base = {"bench_key": "benches/b/bench.jsonl"}
    cases = [
        (base, 400, "exactly one model"),
        (base | {"checkpoint": "a", "model_url": "http://x:1/v1"}, 400, "exactly one model"),
        (base | {"checkpoint": "missing"}, 400, "no checkpoint is registered as 'missing'"),
        (base | {"model_url": "ftp://x"}, 400, "is not an http(s) URL"),
        ({"bench_key": "benches/none.jsonl", "checkpoint": "x"}, 400, "no object 'benches/none.jsonl'"),
        ({"bench_key": "benches/bad.jsonl", "checkpoint": "x"}, 400, "cannot be scored"),
        (base | {"predictions_key": "uploads/none.jsonl"}, 400, "no object 'uploads/none.jsonl'"),
        (base | {"checkpoint": "x", "extra": 1}, 400, "extra"),
    ]
    for body, status, words in cases:
        answer = c.post("/v1/evaluations", json=body)
        assert answer.status_code == status, (body, answer.text)
        assert words in answer.json()["error"]["message"], (body, answer.text)
    answer = c.post("/v1/evaluations", content=b"x", headers={"content-type": "text/plain"})
    assert answer.status_code == 415
    answer = c.post("/v1/evaluations", files={"request": (None, json.dumps(base))})
    assert answer.status_code == 400 and "'predictions' file" in answer.json()["error"]["message"]
    wrong = b'{"id": "not-in-the-bench", "response": "x"}\n'
    answer = c.post(
        "/v1/evaluations",
        files={"request": (None, json.dumps(base)), "predictions": ("p.jsonl", wrong)},
    )
    assert answer.status_code == 400 and "cannot be scored" in answer.json()["error"]["message"]
    answer = c.post(
        "/v1/evaluations",
        files={"request": (None, "{not json"), "predictions": ("p.jsonl", predictions(bench))},
    )
    assert answer.status_code == 400 and "not JSON" in answer.json()["error"]["message"]
    assert c.get("/v1/evaluations").json() == [] and sorted(store.list("")) == before
    assert c.get(f"/v1/evaluations/{'0' * 32}").status_code == 404
    assert c.get("/v1/evaluations/compare", params={"ids": ["nope"]}).status_code == 404
    assert c.get("/v1/evaluations", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_uploaded_predictions_are_scored_as_giqa_eval_scores_them(
    client: tuple[TestClient, Any], bench: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from giqa.cli import app

    c, store = client
    data = predictions(bench)
    answer = c.post(
        "/v1/evaluations",
        files={
            "request": (None, json.dumps({"name": "up", "bench_key": "benches/b/bench.jsonl"})),
            "predictions": ("p.jsonl", data),
        },
    )
    assert answer.status_code == 201, answer.text
    eval_id = answer.json()["id"]
    assert answer.json()["model_kind"] == "predictions"
    deadline = time.monotonic() + 60
    while (view := c.get(f"/v1/evaluations/{eval_id}").json())["state"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, view
        time.sleep(0.1)
    assert view["state"] == "succeeded", view
    preds, report = tmp_path / "p.jsonl", tmp_path / "r.json"
    preds.write_bytes(data)
    args = ["eval", "--bench", str(bench / "small.jsonl"), "--predictions", str(preds), "--no-judge"]
    result = CliRunner().invoke(app, [*args, "--out", str(report), "--quiet"])
    assert result.exit_code == 0, result.output
    assert view["report"] == json.loads(report.read_text())
    assert view["model"] == f"uploads/{eval_id}/predictions.jsonl" and store.exists(view["model"])
    assert set(view["keys"]) == {"report", "items", "chart", "predictions"}
    assert all(view["files"][k].startswith("file://") for k in view["keys"])  # local files, embedded
    compared = c.get("/v1/evaluations/compare", params={"ids": [eval_id, eval_id]})
    assert compared.status_code == 200 and compared.json()["table"].count("up") >= 2
    metrics = c.get("/metrics").text
    assert 'giqa_evaluations{state="succeeded"} 1.0' in metrics
    chart = c.get("/v1/evaluations/compare", params={"ids": [eval_id], "chart": "bars"})
    assert chart.status_code == 200 and chart.content.startswith(b"\x89PNG")
