"""The iqa_filter service (services/iqa_filter/app.py) with the real classical judge: its answers equal the
in-process judge's, bad requests get the right 4xx in the one error shape and the service keeps serving,
keys are required when configured, metrics count model calls."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from giqa.backends.factory import make_judge
from giqa.settings import ServiceSettings, Settings
from giqa.wire import MAX_JUDGE_IMAGES, MAX_JUDGE_ITEMS, ErrorBody, JudgeResponse
from services.iqa_filter.app import create_app_from_settings
from wire_inputs import b64, b64_image, broken_images

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app_from_settings(Settings()), raise_server_exceptions=False) as test_client:
        yield test_client


def error_of(response: httpx.Response) -> dict[str, Any]:
    return ErrorBody.model_validate(response.json()).error.model_dump()


def request_for(items: list[tuple[Any, Any, str]]) -> dict[str, Any]:
    images: dict[int, int] = {}
    encoded: list[str] = []
    rows = []
    for image, box, quality in items:
        if id(image) not in images:
            images[id(image)] = len(encoded)
            encoded.append(b64_image(image))
        rows.append({"image_index": images[id(image)], "box": box.as_list(), "quality": quality})
    return {"images": encoded, "items": rows}


def test_ready_and_answers_equal_the_in_process_judge(client: TestClient, scenes: Any) -> None:
    assert client.get("/ready").json()["status"] == "ok"
    items = scenes.judge_items()
    response = client.post("/v1/judge", json=request_for(items))
    assert response.status_code == 200, response.text
    answer = JudgeResponse.model_validate(response.json())
    local = make_judge(Settings().pipeline).judge_batch(items)
    assert answer.model == "classical" and len(answer.results) == len(items)
    for got, want in zip(answer.results, local, strict=True):
        assert (got.p_yes, got.abstained, got.reason) == (want.p_yes, want.abstained, want.reason)
        assert got.detail == want.detail
    # a word the judge cannot measure is an abstention, not an error
    assert answer.results[-1].abstained and answer.results[-1].detail["abstain"] == "unknown_word"


def test_inline_image_and_zero_area_box_answer_as_in_process(client: TestClient, scenes: Any) -> None:
    from giqa.boxes import Box

    image = scenes.images[1]
    line = Box(0.3, 0.2, 0.3, 0.7)  # a detector box clipped to a line: the judge abstains, as in process
    body = {
        "items": [
            {"image": b64_image(image), "box": line.as_list(), "quality": "blurry"},
            {"image": b64_image(image), "box": [0, 0, 1, 1], "quality": "noisy"},
        ]
    }
    answer = JudgeResponse.model_validate(client.post("/v1/judge", json=body).json())
    local = make_judge(Settings().pipeline).judge_batch(
        [(image, line, "blurry"), (image, Box(0, 0, 1, 1), "noisy")]
    )
    assert [r.p_yes for r in answer.results] == [j.p_yes for j in local]
    assert answer.results[0].detail["abstain"] == "crop_too_small"


def _item(**over: Any) -> dict[str, Any]:
    return {"image_index": 0, "box": [0.1, 0.1, 0.5, 0.5], "quality": "blurry"} | over


BAD_BODIES: list[tuple[str, Any, int, str, str]] = [
    # (name, body or a function of a good image's base64, status, code, message fragment)
    (
        "box arity",
        lambda g: {"images": [g], "items": [_item(box=[0.1, 0.2, 0.3])]},
        422,
        "bad_request",
        "exactly 4 coordinates",
    ),
    (
        "box NaN",
        lambda g: {"images": [g], "items": [_item(box=[0.1, float("nan"), 0.3, 0.4])]},
        422,
        "bad_request",
        "not finite",
    ),
    (
        "box out of range",
        lambda g: {"images": [g], "items": [_item(box=[0.1, 0.1, 1.5, 0.4])]},
        422,
        "bad_request",
        "outside [0, 1]",
    ),
    (
        "box inverted",
        lambda g: {"images": [g], "items": [_item(box=[0.6, 0.1, 0.2, 0.4])]},
        422,
        "bad_request",
        "inverted",
    ),
    ("box string", lambda g: {"images": [g], "items": [_item(box="0 0 1 1")]}, 422, "bad_request", "string"),
    (
        "index past images",
        lambda g: {"images": [g], "items": [_item(image_index=1)]},
        422,
        "bad_request",
        "image_index is 1",
    ),
    (
        "two image sources",
        lambda g: {"images": [g], "items": [_item(image=g)]},
        422,
        "bad_request",
        "exactly one of",
    ),
    ("no image source", lambda g: {"items": [_item(image_index=None)]}, 422, "bad_request", "exactly one of"),
    (
        "missing quality",
        lambda g: {"images": [g], "items": [{"image_index": 0, "box": [0, 0, 1, 1]}]},
        422,
        "bad_request",
        "quality",
    ),
    ("empty quality", lambda g: {"images": [g], "items": [_item(quality="")]}, 422, "bad_request", "quality"),
    ("extra field", lambda g: {"images": [g], "items": [_item(colour="red")]}, 422, "bad_request", "colour"),
    (
        "extra top-level field",
        lambda g: {"images": [g], "items": [_item()], "model": "x"},
        422,
        "bad_request",
        "model",
    ),
    ("no items", lambda g: {"images": [g], "items": []}, 422, "bad_request", "items"),
    (
        "too many items",
        lambda g: {"images": [g], "items": [_item()] * (MAX_JUDGE_ITEMS + 1)},
        422,
        "bad_request",
        "items",
    ),
    (
        "too many images",
        lambda g: {"images": [g] * (MAX_JUDGE_IMAGES + 1), "items": [_item()]},
        422,
        "bad_request",
        "images",
    ),
    (
        "object key without a store",
        lambda g: {"items": [_item(image_index=None, image_key="a/b.png")]},
        400,
        "bad_request",
        "no object store configured",
    ),
    ("not a JSON object", lambda g: [1, 2], 422, "bad_request", ""),
]


@pytest.mark.parametrize(
    ("body", "status", "code", "fragment"),
    [pytest.param(b, s, c, f, id=n) for n, b, s, c, f in BAD_BODIES],
)
def test_bad_requests_get_4xx_in_the_one_shape(
    client: TestClient, scenes: Any, body: Any, status: int, code: str, fragment: str
) -> None:
    good = b64_image(scenes.images[0])
    import json

    # json.dumps writes NaN as the bare token the JSON parser of the service accepts, as a client could
    response = client.post(
        "/v1/judge", content=json.dumps(body(good)), headers={"content-type": "application/json"}
    )
    assert response.status_code == status, response.text
    error = error_of(response)
    assert error["code"] == code and fragment in error["message"] + str(error["detail"])
    assert client.post("/v1/judge", json={"images": [good], "items": [_item()]}).status_code == 200


@pytest.mark.parametrize(
    "kind", ["corrupt_base64", "zero_bytes", "not_an_image", "truncated_png", "pixel_bomb"]
)
def test_bad_images_name_the_image_or_item(client: TestClient, scenes: Any, kind: str) -> None:
    good = b64_image(scenes.images[0])
    bad = broken_images(scenes.images[0])[kind]
    shared = client.post("/v1/judge", json={"images": [good, bad], "items": [_item(), _item(image_index=1)]})
    assert shared.status_code == 400, shared.text
    error = error_of(shared)
    assert error["code"] == "invalid_image" and error["detail"] == {"image": 1}
    assert "images[1]" in error["message"]
    inline = client.post(
        "/v1/judge", json={"images": [good], "items": [_item(), _item(image_index=None, image=bad)]}
    )
    assert inline.status_code == 400 and error_of(inline)["detail"] == {"item": 1}
    if kind == "pixel_bomb":
        assert "over the limit" in error["message"] or "decompression bomb" in error["message"].lower()
    assert client.post("/v1/judge", json={"images": [good], "items": [_item()]}).status_code == 200


def test_keys_required_when_configured(scenes: Any) -> None:
    settings = Settings(service=ServiceSettings(api_keys=[SecretStr("k-123")]))
    body = {"images": [b64_image(scenes.images[0])], "items": [_item()]}
    with TestClient(create_app_from_settings(settings)) as keyed:
        assert keyed.post("/v1/judge", json=body).status_code == 401
        assert keyed.post("/v1/judge", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert (
            keyed.post("/v1/judge", json=body, headers={"Authorization": "Bearer k-123"}).status_code == 200
        )
        assert keyed.get("/ready").status_code == 200  # probes need no key


def test_metrics_count_model_calls(client: TestClient, scenes: Any) -> None:
    before = client.get("/metrics").text
    client.post("/v1/judge", json={"images": [b64_image(scenes.images[0])], "items": [_item(), _item()]})
    text = client.get("/metrics").text
    assert "giqa_model_items_bucket" in text and "giqa_model_seconds_bucket" in text

    def count(metrics: str) -> float:
        line = next(x for x in metrics.splitlines() if x.startswith("giqa_model_items_count"))
        return float(line.split()[-1])

    assert count(text) == count(before) + 1


def test_not_base64_is_not_mistaken_for_bytes(client: TestClient) -> None:
    # whitespace-free but with characters outside the alphabet: refused, not silently skipped
    response = client.post("/v1/judge", json={"images": [b64(b"x") + "$$"], "items": [_item()]})
    assert response.status_code == 400 and error_of(response)["code"] == "invalid_image"


def test_openapi_documents_the_contract(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    item = spec["components"]["schemas"]["JudgeItem"]
    assert item["properties"]["box"]["type"] == "array" and item["properties"]["box"]["minItems"] == 4
    assert item["additionalProperties"] is False
    assert "400" in spec["paths"]["/v1/judge"]["post"]["responses"]


def test_image_keys_read_from_an_object_store(scenes: Any, tmp_path: Any) -> None:
    from giqa.backends.images import encode_png
    from giqa.infra.storage.local import LocalObjectStore

    store = LocalObjectStore(tmp_path / "objects")
    store.ensure_bucket()
    store.put_bytes("images/a.png", encode_png(scenes.images[0]), content_type="image/png")
    app = create_app_from_settings(Settings(), fetch_object=store.get_bytes)
    with TestClient(app) as keyed:
        by_key = keyed.post("/v1/judge", json={"items": [_item(image_index=None, image_key="images/a.png")]})
        inline = keyed.post(
            "/v1/judge", json={"items": [_item(image_index=None, image=b64_image(scenes.images[0]))]}
        )
        assert by_key.status_code == 200 and by_key.json()["results"] == inline.json()["results"]
        missing = keyed.post(
            "/v1/judge",
            json={
                "items": [_item(), _item(image_index=None, image_key="images/none.png")],
                "images": [b64_image(scenes.images[0])],
            },
        )
        assert missing.status_code == 400 and error_of(missing)["code"] == "image_not_found"
        assert error_of(missing)["detail"] == {"item": 1}
        escaping = keyed.post(
            "/v1/judge", json={"items": [_item(image_index=None, image_key="../etc/passwd")]}
        )
        assert escaping.status_code == 400 and error_of(escaping)["code"] == "bad_request"
