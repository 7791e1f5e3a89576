"""The bad-input corpus (:mod:`bad_inputs`) against every entry point on this branch: the image decoder all
of them share, the iqa_filter service (``POST /v1/judge``, the real classical judge), the detector service
(``POST /v1/detect``, with a pixel-reading detector double so the boxes say which way up the image
arrived), the annotator (``POST /v1/runs`` on embedded defaults: SQLite, the local object folder, eager
Celery) and the annotator's Celery task payloads; and ``giqa annotate``'s code path (images read from files).

What each must show: a bad input gets a clear 4xx (the one error shape, a message naming the problem) or a
failure record with its reason; an odd but valid one (16-bit, CMYK, palette, animated, EXIF-rotated) is
used as the image it displays — boxes follow the displayed orientation end to end; the service keeps
serving (a good request right after succeeds); nothing is left half-written (rows and objects counted
before and after).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from bad_inputs import (
    BAD_BOXES,
    DESCRIPTION,
    INJECTION,
    MARK_BOX,
    NON_UTF8_DESCRIPTIONS,
    PHRASE,
    SIZE,
    CorpusLLM,
    ImageCase,
    RedSquareDetector,
    close_to,
    image_cases,
    json_bodies,
    marked_image,
    text_cases,
)
from giqa.backends.images import ImageError, decode_image, encode_png
from giqa.boxes import Box
from giqa.settings import Settings
from giqa.wire import ErrorBody

pytestmark = pytest.mark.unit

CASES = image_cases()
BAD_IMAGES = [c for c in CASES if not c.ok]
GOOD_IMAGES = [c for c in CASES if c.ok]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def error_of(response: Any) -> dict[str, Any]:
    return ErrorBody.model_validate(response.json()).error.model_dump()


# -------------------------------------------------------------------------------------------- decoder


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_image_decodes_as_displayed_or_is_refused_with_the_reason(case: ImageCase) -> None:
    if not case.ok:
        with pytest.raises(ImageError, match=case.why):
            decode_image(case.data, 40_000_000, where=case.name)
        return
    image = decode_image(case.data, 40_000_000, where=case.name)
    assert image.mode == "RGB" and image.size == SIZE, (image.mode, image.size)
    found = RedSquareDetector().detect(image, [PHRASE])[0]
    if case.mark_visible:
        assert found and close_to(found[0].box, MARK_BOX, 0.02), (case.name, found)
    else:  # grayscale: no red, but the grey levels are kept (not clipped white)
        want = np.asarray(marked_image().convert("L"), dtype=float)
        assert np.abs(np.asarray(image.convert("L"), dtype=float) - want).mean() < 2.0


# ----------------------------------------------------------------------------------------- iqa_filter


@pytest.fixture(scope="module")
def judge_client() -> Iterator[TestClient]:
    from services.iqa_filter.app import create_app_from_settings

    with TestClient(create_app_from_settings(Settings()), raise_server_exceptions=False) as client:
        yield client


def judge_body(data: bytes, box: Any = MARK_BOX.as_list()) -> dict[str, Any]:  # noqa: B008
    return {"images": [b64(data)], "items": [{"image_index": 0, "box": box, "quality": "blurry"}]}


GOOD_PNG = encode_png(marked_image())


def still_judges(client: TestClient) -> None:
    assert client.post("/v1/judge", json=judge_body(GOOD_PNG)).status_code == 200


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_judge_refuses_bad_images_and_judges_odd_ones(judge_client: TestClient, case: ImageCase) -> None:
    response = judge_client.post("/v1/judge", json=judge_body(case.data))
    if case.ok:
        assert response.status_code == 200, response.text
        assert 0.0 <= response.json()["results"][0]["p_yes"] <= 1.0
    else:
        assert response.status_code == 400, response.text
        error = error_of(response)
        assert error["code"] == "invalid_image" and "images[0]" in error["message"], error
    still_judges(judge_client)


@pytest.mark.parametrize("name", list(BAD_BOXES))
def test_judge_refuses_bad_boxes(judge_client: TestClient, name: str) -> None:
    body = json.dumps(judge_body(GOOD_PNG, BAD_BOXES[name]), allow_nan=True)
    response = judge_client.post("/v1/judge", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert "box" in json.dumps(error_of(response)), response.text
    still_judges(judge_client)


JUDGE_BODIES = json_bodies(judge_body(GOOD_PNG), "items")


@pytest.mark.parametrize("name", list(JUDGE_BODIES))
def test_judge_refuses_bad_json(judge_client: TestClient, name: str) -> None:
    response = judge_client.post(
        "/v1/judge", content=JUDGE_BODIES[name], headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500, (name, response.status_code, response.text[:300])
    error_of(response)  # the one error shape
    still_judges(judge_client)


# ------------------------------------------------------------------------------------------- detector


@pytest.fixture(scope="module")
def detect_client() -> Iterator[TestClient]:
    from services.detector.app import create_app_from_settings

    app = create_app_from_settings(Settings(), backend=RedSquareDetector())  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def detect_body(data: bytes) -> dict[str, Any]:
    return {"items": [{"image": b64(data), "phrases": [PHRASE]}]}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_detector_refuses_bad_images_and_boxes_follow_the_displayed_image(
    detect_client: TestClient, case: ImageCase
) -> None:
    response = detect_client.post("/v1/detect", json=detect_body(case.data))
    if case.ok:
        assert response.status_code == 200, response.text
        found = response.json()["results"][0][0]
        if case.mark_visible:
            assert found and close_to(Box(*found[0]["box"]), MARK_BOX, 0.02), (case.name, found)
    else:
        assert response.status_code == 400, response.text
        error = error_of(response)
        assert error["code"] == "invalid_image" and error["detail"] == {"item": 0}, error
    assert detect_client.post("/v1/detect", json=detect_body(GOOD_PNG)).status_code == 200


DETECT_BODIES = json_bodies(detect_body(GOOD_PNG), "items")


@pytest.mark.parametrize("name", list(DETECT_BODIES))
def test_detector_refuses_bad_json(detect_client: TestClient, name: str) -> None:
    response = detect_client.post(
        "/v1/detect", content=DETECT_BODIES[name], headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500, (name, response.status_code, response.text[:300])
    error_of(response)
    assert detect_client.post("/v1/detect", json=detect_body(GOOD_PNG)).status_code == 200


# ------------------------------------------------------------------------------------------ annotator


@pytest.fixture
def annotator(tmp_path: Path) -> Iterator[tuple[TestClient, Any, Path]]:
    from giqa.backends.classical import ClassicalJudge
    from services.annotator.app import create_app_from_settings
    from services.annotator.tasks import WorkerContext

    settings = Settings(
        data_dir=tmp_path / "data",
        queue={"retry_backoff_s": 0.001, "retry_backoff_max_s": 0.001},
        annotate={"max_description_chars": 400},
    )
    backends = {"llm": CorpusLLM(), "detector": RedSquareDetector(), "judge": ClassicalJudge()}
    ctx = WorkerContext(settings, backends=backends)
    with TestClient(create_app_from_settings(settings, ctx=ctx), raise_server_exceptions=False) as client:
        yield client, ctx, tmp_path / "data" / "objects"


def held(ctx: Any, objects: Path) -> dict[str, int]:
    """Rows of every table and files in the object folder."""
    from sqlalchemy import text

    with ctx.session() as s:
        counts = {t: s.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}
    return counts | {"objects": sum(1 for p in objects.rglob("*") if p.is_file()) if objects.exists() else 0}


TABLES = ("runs", "images", "samples", "stage_results", "failures", "datasets")


def test_an_upload_of_the_whole_corpus_fails_the_bad_samples_and_annotates_the_rest_upright(
    annotator: tuple[TestClient, Any, Path],
) -> None:
    from giqa.infra.db import dal

    client, ctx, objects = annotator
    lines = [{"image": f"images/{c.name}.img", "description": DESCRIPTION} for c in CASES]
    texts = text_cases(400)
    lines += [{"image": "images/png_rgb.img", "description": t.description} for t in texts]
    files = [
        ("descriptions", ("in.jsonl", "".join(json.dumps(x) + "\n" for x in lines).encode(), "text/plain"))
    ]
    files += [("images", (f"images/{c.name}.img", c.data, "application/octet-stream")) for c in CASES]
    answer = client.post("/v1/runs", files=files, data={"name": "corpus"})
    assert answer.status_code == 201, answer.text
    bad_texts = [t for t in texts if not t.ok]
    created = answer.json()
    assert created["failed_at_input"] == len(BAD_IMAGES) + len(bad_texts), created
    run_id = created["run_id"]
    run = client.get(f"/v1/runs/{run_id}").json()
    assert run["state"] == "done" and run["by_state"]["done"] == len(GOOD_IMAGES) + 2, run

    with ctx.session() as s:
        in_order = list(dal.iter_run_records(s, run_id=run_id))  # by id: the order of the lines
        samples = {
            f"{line['description']}|{line['image']}": x for line, x in zip(lines, in_order, strict=True)
        }
        failures = dal.latest_failures(s, run_id=run_id)
        stored = {row[0]: row[1:] for row in s.execute(_images_query()).all()}
    for case in CASES:
        sample = samples[f"{DESCRIPTION}|images/{case.name}.img"]
        if not case.ok:
            assert sample.state == "failed" and not sample.payloads and sample.image_key is None
            reason = failures[sample.id].reason
            assert reason.startswith("input: ") and case.why in reason, (case.name, reason)
            continue
        assert sample.state == "done", (case.name, sample.state)
        # the image as displayed: stored size, and the detector's box on the red square (EXIF included)
        assert stored[sample.image_key] == SIZE, case.name
        found = sample.payloads["detect"]["detections"][0]
        if case.mark_visible:
            assert found and close_to(Box(*found[0]["box"]), MARK_BOX, 0.02), (case.name, found)
    for text in texts:
        sample = samples[f"{text.description}|images/png_rgb.img"]
        if not text.ok:
            assert sample.state == "failed" and text.why in failures[sample.id].reason, text.name
    # prompt injection: the tags are what the text names, and the record has the schema every record has
    injected = samples[f"{INJECTION}|images/png_rgb.img"]
    assert [t["phrase"] for t in injected.payloads["stage1"]["tags"]] == [PHRASE]
    plain = samples[f"{DESCRIPTION}|images/png_rgb.img"]
    for stage in ("stage1", "detect", "assemble", "vqa"):
        assert set(injected.payloads[stage]) == set(plain.payloads[stage]), stage
    train = client.get(f"/v1/runs/{run_id}/dataset", params={"file": "train.json"}).json()
    val = client.get(f"/v1/runs/{run_id}/dataset", params={"file": "val.json"}).json()
    assert {tuple(sorted(r)) for r in train + val} == {tuple(sorted(train[0]))}
    # only the images that decode are stored
    assert len(list((objects / "images").rglob("*"))) >= 1
    assert held(ctx, objects)["images"] == len({c.data for c in GOOD_IMAGES})


def _images_query() -> Any:
    from sqlalchemy import text

    return text("SELECT key, width, height FROM images")


ANNOTATOR_BODIES = json_bodies({"name": "r", "images_prefix": "in", "descriptions_key": "in/d.jsonl"}, "name")


def test_requests_that_cannot_describe_a_run_are_refused_and_write_nothing(
    annotator: tuple[TestClient, Any, Path],
) -> None:
    client, ctx, objects = annotator
    before = held(ctx, objects)
    refused = []
    deep = [("descriptions", ("in.json", b"[" * 100_000 + b"]" * 100_000, "application/json"))]
    refused.append(("deep_llava", client.post("/v1/runs", files=deep)))
    for name, body in ANNOTATOR_BODIES.items():
        headers = {"content-type": "application/json"}
        refused.append((name, client.post("/v1/runs", content=body, headers=headers)))
    for name, response in refused:
        assert 400 <= response.status_code < 500, (name, response.status_code, response.text[:300])
        assert error_of(response)["message"], name
    assert held(ctx, objects) == before
    # a bad line is one bad sample (failed with the reason, nothing else written), as in giqa annotate
    for lines, why in (
        (NON_UTF8_DESCRIPTIONS, "UTF-8"),
        (b'{"image": "a.png", "description": 5}\n', "description"),
        (b'{"image": ["a.png"], "description": "x"}\n', "image"),
        (b"[" * 10_000 + b"]" * 10_000 + b"\n", "nested too deeply"),
    ):
        answer = client.post("/v1/runs", files=[("descriptions", ("in.jsonl", lines, "text/plain"))])
        assert answer.status_code == 201 and answer.json()["failed_at_input"] == 1, answer.text
        (failure,) = client.get(f"/v1/runs/{answer.json()['run_id']}").json()["failures"]
        assert failure["reason"].startswith("input: ") and why in failure["reason"], failure
    assert held(ctx, objects)["stage_results"] == before["stage_results"]
    # still serving: a good run
    good = [
        ("descriptions", ("in.jsonl", json.dumps({"image": "a.png", "description": DESCRIPTION}).encode()))
    ]
    good += [("images", ("a.png", GOOD_PNG, "image/png"))]
    answer = client.post("/v1/runs", files=good)
    assert (
        answer.status_code == 201
        and client.get(f"/v1/runs/{answer.json()['run_id']}").json()["state"] == "done"
    )


GARBAGE_IDS = ["abc", "", -1, 0, 2**70, None, [1], {"id": 1}, 1.5, True, "1; DROP TABLE samples"]


def test_task_payloads_with_garbage_ids_are_refused_and_write_nothing(
    annotator: tuple[TestClient, Any, Path], caplog: pytest.LogCaptureFixture
) -> None:
    from services.annotator.tasks import TASKS

    client, ctx, objects = annotator
    before = held(ctx, objects)
    with caplog.at_level(logging.ERROR, logger="giqa.annotator.tasks"):
        for step, task in TASKS.items():
            for garbage in [*GARBAGE_IDS, 999_999] + (
                ["0" * 32, "../../etc/passwd"] if step == "export" else []
            ):
                result = task.apply(args=[garbage])
                assert result.successful(), (step, garbage, result.result)
    assert held(ctx, objects) == before
    assert sum("refused" in r.getMessage() for r in caplog.records) >= len(TASKS) * len(GARBAGE_IDS)
    assert client.get("/ready").status_code == 200


def test_the_cli_code_path_fails_bad_image_files_and_annotates_the_rest_upright(tmp_path: Path) -> None:
    """``giqa annotate``'s path (images read from files by :func:`giqa.backends.images.load_image`, the run
    of :func:`giqa.pipeline.run.run_annotation`): the same corpus, the same outcomes as over REST."""
    from giqa.backends.classical import ClassicalJudge
    from giqa.backends.factory import annotate_config
    from giqa.pipeline.inputs import read_inputs
    from giqa.pipeline.run import Backends, run_annotation

    (tmp_path / "images").mkdir()
    lines = []
    for case in CASES:
        (tmp_path / "images" / f"{case.name}.img").write_bytes(case.data)
        lines.append({"image": f"images/{case.name}.img", "description": DESCRIPTION})
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    backends = Backends(llm=CorpusLLM(), detector=RedSquareDetector(), judge=ClassicalJudge())
    out = tmp_path / "out"
    items = read_inputs(tmp_path / "in.jsonl", tmp_path)
    run_annotation(items, tmp_path, out, backends, annotate_config(Settings()), progress=False)
    records = {r["image"]: r for r in map(json.loads, (out / "audit.jsonl").read_text().splitlines())}
    for case in CASES:
        record = records[f"images/{case.name}.img"]
        if not case.ok:
            assert record["status"] == "failed" and "image" in json.dumps(record["failure"]), case.name
            continue
        assert record["status"] == "ok", (case.name, record.get("failure"))
        if case.mark_visible:
            (refined,) = record["refined"]
            assert close_to(Box(*refined["raw"][0]["box"]), MARK_BOX, 0.02), (case.name, refined)
