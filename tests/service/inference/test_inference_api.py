"""The inference service's endpoints on the real app and the shipped demo VLM: each happy path, a table of
bad inputs (each a 4xx in the one error shape while the service keeps serving), keys, metrics.

The demo model's answers are poor (its MODEL_CARD.md): these tests check mechanics and contracts.
"""

from __future__ import annotations

import base64
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from giqa.client.contract import AskResponse, AssessResponse, ChatResponse, ModelList, ScoreResponse
from giqa.client.masks import rle_decode
from giqa.grounded_text import strip_coordinates
from giqa.wire import ErrorBody
from inference_helpers import API_KEY, b64, png_bytes

pytestmark = pytest.mark.models

IMAGE = png_bytes()


def error_of(response) -> dict:
    body = ErrorBody.model_validate(response.json())
    assert body.error.request_id == response.headers["x-request-id"]
    return body.error.model_dump()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height with one tiny IDAT: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_assess_multipart_and_json_agree_with_boxes_in_three_forms(inference_client) -> None:
    multipart = inference_client.post("/v1/assess", files={"image": ("a.png", IMAGE, "image/png")})
    assert multipart.status_code == 200, multipart.text
    body = AssessResponse.model_validate(multipart.json())
    as_json = AssessResponse.model_validate(
        inference_client.post("/v1/assess", json={"image": b64(IMAGE)}).json()
    )
    assert as_json.description == body.description  # greedy: the same image gives the same answer
    assert body.model == "giqa-demo-vlm" and body.image_size == [96, 72] and body.grid == [20, 20]
    assert body.text == strip_coordinates(body.description) and "<" not in body.text
    assert body.masks is None and body.timings.total_ms >= body.timings.model_ms > 0
    assert body.objects, body.description  # the demo model always grounds something
    for obj in body.objects:
        for box in obj.boxes:
            x1, y1, x2, y2 = box.norm
            assert 0 <= x1 <= x2 <= 1 and 0 <= y1 <= y2 <= 1
            assert box.pixels == [round(x1 * 96), round(y1 * 72), round(x2 * 96), round(y2 * 72)]
            assert f"<{box.grid[0]}, {box.grid[1]}>" in body.description


@pytest.mark.parametrize("fmt", ["png", "rle"])
def test_assess_masks_cover_the_boxes_of_their_quality_word(inference_client, fmt: str) -> None:
    response = inference_client.post(
        "/v1/assess",
        files={"image": ("a.png", IMAGE, "image/png")},
        data={"mask": "true", "mask_format": fmt},
    )
    body = AssessResponse.model_validate(response.json())
    words = {w for obj in body.objects for w in obj.quality}
    assert body.masks is not None and {m.quality for m in body.masks} == words
    for mask in body.masks:
        if fmt == "png":
            pixels = np.array(Image.open(io.BytesIO(base64.b64decode(mask.png or ""))))
            assert pixels.shape == (72, 96) and set(np.unique(pixels)) <= {0, 255}
            inside = pixels == 255
        else:
            assert mask.rle is not None
            inside = rle_decode(mask.rle)
        assert inside.shape == (72, 96) and inside.mean() == pytest.approx(mask.area)
        for obj in body.objects:
            if mask.quality in obj.quality:
                for box in obj.boxes:
                    x1, y1, x2, y2 = box.pixels
                    assert inside[y1:y2, x1:x2].all()


def test_ask_renders_regions_and_reads_p_yes(inference_client) -> None:
    response = inference_client.post(
        "/v1/ask",
        json={
            "image": b64(IMAGE),
            "question": "Is the green square noisy?",
            "regions": [{"box": [0.1, 0.2, 0.5, 0.6], "phrase": "green square"}],
        },
    )
    assert response.status_code == 200, response.text
    body = AskResponse.model_validate(response.json())
    assert body.question == "Is the [green square](<82, 250>) noisy?"
    assert body.p_yes is not None and 0 <= body.p_yes <= 1 and body.yes == (body.p_yes >= 0.5)
    # the answer's own yes/no word agrees with the probability read at its position (greedy decoding)
    said = [w.strip(".,").lower() for w in body.answer.split() if w.strip(".,").lower() in ("yes", "no")]
    if said:
        assert (said[-1] == "yes") == body.yes
    open_question = AskResponse.model_validate(
        inference_client.post(
            "/v1/ask", files={"image": ("a.png", IMAGE, "image/png")}, data={"question": "What is blurry?"}
        ).json()
    )
    assert open_question.yes is None and open_question.p_yes is None


def test_score_is_the_expected_level_of_normalized_level_probabilities(inference_client) -> None:
    body = ScoreResponse.model_validate(inference_client.post("/v1/score", json={"image": b64(IMAGE)}).json())
    assert list(body.levels) == ["excellent", "good", "fair", "poor", "bad"]
    assert sum(body.levels.values()) == pytest.approx(1, abs=1e-4)
    expected = sum(p * v for p, v in zip(body.levels.values(), (5, 4, 3, 2, 1), strict=True))
    assert body.score == pytest.approx(expected, abs=1e-3) and 1 <= body.score <= 5


def test_models_and_chat_completions(inference_client) -> None:
    models = ModelList.model_validate(inference_client.get("/v1/models").json())
    assert [m.id for m in models.data] == ["giqa-demo-vlm"]
    message = {
        "role": "user",
        "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(IMAGE)}},
            {"type": "text", "text": "Is the image blurry?"},
        ],
    }
    response = inference_client.post(
        "/v1/chat/completions", json={"model": "giqa-demo-vlm", "messages": [message], "max_tokens": 3}
    )
    assert response.status_code == 200, response.text
    body = ChatResponse.model_validate(response.json())
    assert body.choices[0].finish_reason == "length" and body.usage.completion_tokens == 3
    ask = AskResponse.model_validate(
        inference_client.post(
            "/v1/ask", json={"image": b64(IMAGE), "question": "Is the image blurry?"}
        ).json()
    )
    full = ChatResponse.model_validate(
        inference_client.post(
            "/v1/chat/completions", json={"model": "giqa-demo-vlm", "messages": [message]}
        ).json()
    )
    assert full.choices[0].message.content == ask.answer  # one model, one greedy answer


BOMB = png_header_only(30_000, 30_000)  # 900 M pixels claimed in 100 bytes
BIG = png_header_only(3_000, 2_000)  # 6 M pixels: over this service's 4 M limit
GOOD_JSON = {"image": b64(IMAGE), "question": "Is the image blurry?"}


@pytest.mark.parametrize(
    ("case", "kwargs", "status", "code", "fragment"),
    [
        ("zero-byte", {"files": {"image": ("a.png", b"", "image/png")}}, 400, "invalid_image", "empty"),
        (
            "non-image",
            {"files": {"image": ("a.txt", b"hello, not an image", "text/plain")}},
            400,
            "invalid_image",
            "cannot read the image",
        ),
        (
            "corrupt",
            {"files": {"image": ("a.png", IMAGE[:16] + bytes(200), "image/png")}},
            400,
            "invalid_image",
            "cannot read the image",
        ),
        (
            "truncated",
            {"files": {"image": ("a.png", IMAGE[: len(IMAGE) // 2], "image/png")}},
            400,
            "invalid_image",
            "corrupt or truncated",
        ),
        (
            "pixel bomb",
            {"files": {"image": ("a.png", BOMB, "image/png")}},
            413,
            "payload_too_large",
            "cannot read the image",
        ),
        (
            "over the pixel limit",
            {"json": {"image": b64(BIG)}},
            413,
            "payload_too_large",
            "3000x2000 = 6,000,000 pixels",
        ),
        (
            "oversized body",
            {"json": {"image": "A" * (3 * 1024 * 1024)}},
            413,
            "payload_too_large",
            "over the limit",
        ),
        ("bad base64", {"json": {"image": "not base64!"}}, 400, "invalid_image", "base64"),
        ("missing image (json)", {"json": {"mask": True}}, 422, "bad_request", "exactly one of image"),
        (
            "image and image_key",
            {"json": {"image": b64(IMAGE), "image_key": "images/x.png"}},
            422,
            "bad_request",
            "exactly one of image",
        ),
        (
            "missing image (multipart)",
            {"data": {"mask": "true"}},
            422,
            "bad_request",
            "image: Field required",
        ),
        (
            "stored key not found",
            {"json": {"image_key": "uploads/run-1/none.png"}},
            404,
            "not_found",
            "no object 'uploads/run-1/none.png'",
        ),
        (
            "key outside images/uploads",
            {"json": {"image_key": "checkpoints/c1/model.safetensors"}},
            400,
            "bad_request",
            "must name an image under images/ or uploads/",
        ),
        ("key with ..", {"json": {"image_key": "images/../checkpoints/x"}}, 400, "bad_request", "'..' part"),
        (
            "missing image (multipart)",
            {"data": {"mask": "true"}, "files": {"other": ("x", b"x", "text/plain")}},
            400,
            "bad_request",
            "unexpected file field",
        ),
        ("unknown field", {"json": {"image": b64(IMAGE), "masks": True}}, 422, "bad_request", "masks"),
        (
            "not json",
            {"content": b"{nope", "headers": {"content-type": "application/json"}},
            400,
            "bad_request",
            "not valid JSON",
        ),
        (
            "wrong content type",
            {"content": IMAGE, "headers": {"content-type": "image/png"}},
            415,
            "unsupported_media_type",
            "multipart/form-data",
        ),
        (
            "wrong key",
            {"json": {"image": b64(IMAGE)}, "headers": {"Authorization": "Bearer nope"}},
            401,
            "unauthorized",
            "not valid",
        ),
        (
            "no key",
            {"json": {"image": b64(IMAGE)}, "headers": {"Authorization": ""}},
            401,
            "unauthorized",
            "Bearer",
        ),
    ],
)
def test_bad_assess_inputs_get_a_clear_4xx(inference_client, case, kwargs, status, code, fragment) -> None:
    response = inference_client.post("/v1/assess", **kwargs)
    assert response.status_code == status, (case, response.text)
    error = error_of(response)
    assert error["code"] == code and fragment in error["message"], (case, error)


@pytest.mark.parametrize(
    ("case", "payload", "fragment"),
    [
        ("box out of range", GOOD_JSON | {"regions": [{"box": [0.2, 0.2, 1.5, 0.9]}]}, "outside [0, 1]"),
        ("inverted box", GOOD_JSON | {"regions": [{"box": [0.6, 0.2, 0.4, 0.9]}]}, "inverted"),
        ("three numbers", GOOD_JSON | {"regions": [{"box": [0.1, 0.2, 0.3]}]}, "at least 4"),
        (
            "bracket in phrase",
            GOOD_JSON | {"regions": [{"box": [0, 0, 1, 1], "phrase": "a]b"}]},
            "plain words",
        ),
        ("missing question", {"image": b64(IMAGE)}, "question: Field required"),
        ("empty question", GOOD_JSON | {"question": ""}, "question"),
        ("too many regions", GOOD_JSON | {"regions": [{"box": [0, 0, 1, 1]}] * 17}, "regions"),
        ("max_new_tokens 0", GOOD_JSON | {"max_new_tokens": 0}, "max_new_tokens"),
    ],
)
def test_bad_ask_fields_get_422(inference_client, case, payload, fragment) -> None:
    response = inference_client.post("/v1/ask", json=payload)
    assert response.status_code == 422, (case, response.text)
    error = error_of(response)
    assert error["code"] == "bad_request" and fragment in error["message"], (case, error)


@pytest.mark.parametrize(
    ("case", "change", "status", "fragment"),
    [
        ("remote url", {"url": "http://example.com/a.png"}, 400, "data: URL"),
        ("no image", None, 400, "exactly one image"),
        ("unknown model", {"model": "gpt-x"}, 404, "not served here"),
        ("stream", {"stream": True}, 400, "streaming"),
        ("logprobs of many tokens", {"logprobs": True, "max_tokens": 5}, 400, "max_tokens=1 only"),
        ("top_logprobs over 20", {"logprobs": True, "top_logprobs": 21}, 422, "top_logprobs"),
        (
            "continue without assistant",
            {
                "logprobs": True,
                "max_tokens": 1,
                "continue_final_message": True,
                "add_generation_prompt": False,
            },
            400,
            "final assistant message",
        ),
        (
            "continue with generation prompt",
            {"logprobs": True, "max_tokens": 1, "continue_final_message": True},
            400,
            "cannot both be true",
        ),
    ],
)
def test_bad_chat_requests(inference_client, case, change, status, fragment) -> None:
    parts: list[dict] = [{"type": "text", "text": "Is it blurry?"}]
    url = (change or {}).get("url", "data:image/png;base64," + b64(IMAGE))
    if change is not None:
        parts.insert(0, {"type": "image_url", "image_url": {"url": url}})
    body = {"model": "giqa-demo-vlm", "messages": [{"role": "user", "content": parts}]}
    body |= {k: v for k, v in (change or {}).items() if k != "url"}
    response = inference_client.post("/v1/chat/completions", json=body)
    assert response.status_code == status, (case, response.text)
    assert fragment in error_of(response)["message"]


def test_the_service_keeps_serving_and_counts_batches(inference_client) -> None:
    for _ in range(3):
        inference_client.post("/v1/assess", files={"image": ("a.png", b"", "image/png")})
    assert inference_client.post("/v1/score", json={"image": b64(IMAGE)}).status_code == 200
    metrics = inference_client.get("/metrics").text
    assert 'giqa_inference_batch_size_count{kind="words"}' in metrics
    assert "giqa_inference_queue_depth 0.0" in metrics
    assert 'giqa_http_errors_total{code="invalid_image"}' in metrics
    assert inference_client.get("/ready").json()["status"] == "ok"
    page = inference_client.get("/", headers={"Authorization": ""})
    assert page.status_code == 200 and "playground" in page.text  # the page itself needs no key
    assert API_KEY not in metrics


def test_an_image_in_the_object_store_is_read_by_key(inference_client) -> None:
    from giqa.infra.storage import make_store, put_image

    settings = inference_client.app.state.inference.settings
    ref = put_image(make_store(settings), IMAGE)
    by_key = inference_client.post("/v1/assess", json={"image_key": ref.key})
    assert by_key.status_code == 200, by_key.text
    direct = inference_client.post("/v1/assess", json={"image": b64(IMAGE)}).json()
    assert by_key.json()["description"] == direct["description"]
    form = inference_client.post("/v1/score", data={"image_key": ref.key})  # multipart form field
    assert form.status_code == 200 and 1 <= form.json()["score"] <= 5
