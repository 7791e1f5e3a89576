"""The detector service (services/detector/app.py) with the shipped demo Grounding DINO: its boxes and
scores equal the in-process detector's for the same images and phrases, per-request thresholds apply,
bad requests get the right 4xx in the one error shape and the service keeps serving, keys when configured."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from giqa.backends.factory import make_detector
from giqa.ports import Detection
from giqa.settings import PipelineSettings, ServiceSettings, Settings
from giqa.wire import MAX_DETECT_ITEMS, MAX_PHRASE_CHARS, MAX_PHRASES, DetectResponse, ErrorBody
from services.detector.app import create_app_from_settings
from wire_inputs import b64_image, broken_images

pytestmark = pytest.mark.models

# low thresholds: the demo detector is weak, and equality is only worth checking on non-empty answers
PIPELINE = PipelineSettings(box_threshold=0.1, text_threshold=0.05, device="cpu")


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    app = create_app_from_settings(Settings(pipeline=PIPELINE))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def local() -> Any:
    return make_detector(PIPELINE)


def as_detections(answer: DetectResponse) -> list[list[list[Detection]]]:
    return [
        [[Detection(d.box, d.score, d.label) for d in found] for found in item] for item in answer.results
    ]


def error_of(response: httpx.Response) -> dict[str, Any]:
    return ErrorBody.model_validate(response.json()).error.model_dump()


def test_ready_and_boxes_equal_the_in_process_detector(client: TestClient, local: Any, scenes: Any) -> None:
    assert client.get("/ready").json()["detail"].startswith("grounding dino")
    phrases = [[t.phrase for t in r.tags] + ["red square"] for r in scenes.records]
    body = {
        "items": [{"image": b64_image(i), "phrases": p} for i, p in zip(scenes.images, phrases, strict=True)]
    }
    response = client.post("/v1/detect", json=body)
    assert response.status_code == 200, response.text
    answer = DetectResponse.model_validate(response.json())
    want = local.detect_batch(scenes.images, phrases)
    assert as_detections(answer) == want  # exactly: same boxes, scores and labels
    assert sum(len(found) for item in want for found in item) > 0
    assert answer.model.endswith("detector") and answer.seconds > 0


def test_request_thresholds_override_the_service(client: TestClient, local: Any, scenes: Any) -> None:
    image, phrases = scenes.images[0], [t.phrase for t in scenes.records[0].tags]
    body = {
        "items": [{"image": b64_image(image), "phrases": phrases}],
        "box_threshold": 0.0,
        "text_threshold": 0.0,
    }
    answer = DetectResponse.model_validate(client.post("/v1/detect", json=body).json())
    want = local.detect_batch([image], [phrases], box_threshold=0.0, text_threshold=0.0)
    assert as_detections(answer) == want
    assert all(len(found) == PIPELINE.max_detections for found in want[0])  # thresholds at 0: all pass


def _item(good: str, **over: Any) -> dict[str, Any]:
    return {"image": good, "phrases": ["red circle"]} | over


BAD_BODIES: list[tuple[str, Any, int, str, str]] = [
    ("no phrases", lambda g: {"items": [_item(g, phrases=[])]}, 422, "bad_request", "phrases"),
    ("blank phrase", lambda g: {"items": [_item(g, phrases=["  "])]}, 422, "bad_request", "blank"),
    (
        "phrase too long",
        lambda g: {"items": [_item(g, phrases=["a" * (MAX_PHRASE_CHARS + 1)])]},
        422,
        "bad_request",
        "phrases",
    ),
    (
        "too many phrases",
        lambda g: {"items": [_item(g, phrases=["x"] * (MAX_PHRASES + 1))]},
        422,
        "bad_request",
        "phrases",
    ),
    ("too many items", lambda g: {"items": [_item(g)] * (MAX_DETECT_ITEMS + 1)}, 422, "bad_request", "items"),
    ("no items", lambda g: {"items": []}, 422, "bad_request", "items"),
    ("missing items", lambda g: {}, 422, "bad_request", "items"),
    ("image and key", lambda g: {"items": [_item(g, image_key="k")]}, 422, "bad_request", "exactly one"),
    ("no image", lambda g: {"items": [{"phrases": ["x"]}]}, 422, "bad_request", "exactly one"),
    ("extra field", lambda g: {"items": [_item(g, box=[0, 0, 1, 1])]}, 422, "bad_request", "box"),
    (
        "threshold out of range",
        lambda g: {"items": [_item(g)], "box_threshold": 1.5},
        422,
        "bad_request",
        "box_threshold",
    ),
    (
        "threshold NaN",
        lambda g: {"items": [_item(g)], "text_threshold": float("nan")},
        422,
        "bad_request",
        "text_threshold",
    ),
    (
        "object key without a store",
        lambda g: {"items": [{"image_key": "a.png", "phrases": ["x"]}]},
        400,
        "bad_request",
        "no object store configured",
    ),
]


@pytest.mark.parametrize(
    ("body", "status", "code", "fragment"), [pytest.param(b, s, c, f, id=n) for n, b, s, c, f in BAD_BODIES]
)
def test_bad_requests_get_4xx_in_the_one_shape(
    client: TestClient, scenes: Any, body: Any, status: int, code: str, fragment: str
) -> None:
    good = b64_image(scenes.images[0])
    response = client.post(
        "/v1/detect", content=json.dumps(body(good)), headers={"content-type": "application/json"}
    )
    assert response.status_code == status, response.text
    error = error_of(response)
    assert error["code"] == code and fragment in error["message"] + str(error["detail"])
    assert client.post("/v1/detect", json={"items": [_item(good)]}).status_code == 200


@pytest.mark.parametrize(
    "kind", ["corrupt_base64", "zero_bytes", "not_an_image", "truncated_png", "pixel_bomb"]
)
def test_bad_images_name_the_item(client: TestClient, scenes: Any, kind: str) -> None:
    good = b64_image(scenes.images[0])
    bad = broken_images(scenes.images[0])[kind]
    response = client.post("/v1/detect", json={"items": [_item(good), _item(bad)]})
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["code"] == "invalid_image" and error["detail"] == {"item": 1}
    assert "items[1].image" in error["message"]
    assert client.post("/v1/detect", json={"items": [_item(good)]}).status_code == 200


def test_keys_required_when_configured(local: Any, scenes: Any) -> None:
    settings = Settings(pipeline=PIPELINE, service=ServiceSettings(api_keys=[SecretStr("k-9")]))
    body = {"items": [_item(b64_image(scenes.images[0]))]}
    # the backend built once for the module is handed in: the keys are what is under test here
    with TestClient(create_app_from_settings(settings, backend=local)) as keyed:
        assert keyed.post("/v1/detect", json=body).status_code == 401
        assert keyed.post("/v1/detect", json=body, headers={"Authorization": "Bearer k-9"}).status_code == 200
