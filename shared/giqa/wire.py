"""Wire contracts shared by every HTTP service and its clients (DESIGN §6): pydantic models beside
:mod:`giqa.schemas`: the one JSON error shape every service shares, and the detect and judge contracts of
the detector and iqa_filter services and their HTTP clients (:mod:`giqa.backends.remote`).

Every failure a service answers (a 4xx for bad input, a 5xx for a backend fault, a 503 when overloaded)
has the body ``{"error": {"code": ..., "message": ..., "detail": ..., "request_id": ...}}``: ``code`` is a
stable machine-readable word (``bad_request``, ``invalid_image``, ``payload_too_large``, ``unauthorized``,
``not_found``, ``overloaded``, ``timeout``, ``backend_error``, ``internal``), ``message`` one sentence for
people, ``detail`` optional structure (e.g. the fields that failed validation).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from giqa.schemas import NormBox


class ErrorInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="stable machine-readable error code")
    message: str = Field(description="what was wrong, in one sentence")
    detail: Any = Field(None, description="optional structure, e.g. the request fields that failed")
    request_id: str = Field("", description="the X-Request-ID of the request, for the logs")


class ErrorBody(BaseModel):
    """The one error shape every service answers with."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorInfo


class HealthBody(BaseModel):
    status: str = Field(description="'ok' or 'unavailable'")
    service: str
    detail: str = ""


# ------------------------------------------------------------------------------ detector and iqa_filter
#
# The detector (``POST /v1/detect``) and iqa_filter (``POST /v1/judge``) services are internal: JSON with
# images as base64 (PNG from our clients; any format Pillow reads is accepted) or as object-store keys,
# not multipart uploads. A request is bounded in items, phrases and phrase length below, and in bytes by
# the service's body limit (``service.max_body_bytes``); the clients (:mod:`giqa.backends.remote`) split
# larger work into requests that fit.

MAX_DETECT_ITEMS = 64
MAX_PHRASES = 32
MAX_PHRASE_CHARS = 200
MAX_JUDGE_ITEMS = 256
MAX_JUDGE_IMAGES = 64
MAX_QUALITY_CHARS = 200
MAX_KEY_CHARS = 1024

# A normalized box on the wire: [x1, y1, x2, y2], validated by giqa.boxes (finite, in [0, 1], ordered).
WireBox = Annotated[
    NormBox,
    WithJsonSchema(
        {
            "type": "array",
            "items": {"type": "number", "minimum": 0, "maximum": 1},
            "minItems": 4,
            "maxItems": 4,
            "description": "normalized [x1, y1, x2, y2]",
        }
    ),
]
Phrase = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PHRASE_CHARS)]
# No minimum length: an empty image reaches the image checks, whose 400 names the item ("... is empty").
Base64Image = Annotated[str, Field(description="image file bytes (PNG, JPEG, ...), base64")]
ObjectKey = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_KEY_CHARS),
    Field(description="object-store key of the image (only where the service has a store)"),
]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _exactly_one(where: str, **given: object) -> None:
    named = [name for name, value in given.items() if value is not None]
    if len(named) != 1:
        options = " or ".join(given)
        raise ValueError(f"{where} needs exactly one of {options}, got {len(named)} ({', '.join(named)})")


class DetectItem(_Wire):
    """One image and the phrases to find in it: the image inline (base64) or by object-store key."""

    image: Base64Image | None = None
    image_key: ObjectKey | None = None
    phrases: list[Phrase] = Field(min_length=1, max_length=MAX_PHRASES)

    @field_validator("phrases")
    @classmethod
    def _not_blank(cls, phrases: list[str]) -> list[str]:
        for k, phrase in enumerate(phrases):
            if not phrase.strip():
                raise ValueError(f"phrase {k} is blank")
        return phrases

    @model_validator(mode="after")
    def _one_image(self) -> DetectItem:
        _exactly_one("an item", image=self.image, image_key=self.image_key)
        return self


class DetectRequest(_Wire):
    """``POST /v1/detect``: boxes for each phrase in each image; thresholds override the service's."""

    items: list[DetectItem] = Field(min_length=1, max_length=MAX_DETECT_ITEMS)
    box_threshold: float | None = Field(None, ge=0, le=1)
    text_threshold: float | None = Field(None, ge=0, le=1)


class DetectionOut(_Wire):
    box: WireBox
    score: float = Field(ge=0, le=1)
    label: str = ""


class DetectResponse(_Wire):
    """``results[i][j]``: the detections of item ``i``'s phrase ``j``, best first."""

    results: list[list[list[DetectionOut]]]
    model: str = Field(description="the detector the service runs")
    seconds: float = Field(description="model time of this request")


class JudgeItem(_Wire):
    """One crop question: "Is the image quality <quality>?" about ``box`` of an image.

    The image is given exactly one way: ``image_index`` into the request's ``images`` (send an image once
    for all its boxes: what the clients do), ``image`` inline (base64), or ``image_key`` (object store).
    """

    image_index: int | None = Field(None, ge=0, lt=MAX_JUDGE_IMAGES)
    image: Base64Image | None = None
    image_key: ObjectKey | None = None
    box: WireBox = Field(
        description="normalized box; a zero-area box (a detector's box clipped to a line) is accepted and "
        "answered as in-process judges answer it (the classical judge abstains: crop_too_small)"
    )
    quality: str = Field(min_length=1, max_length=MAX_QUALITY_CHARS, description="quality word(s) Tq")

    @model_validator(mode="after")
    def _one_image(self) -> JudgeItem:
        _exactly_one("an item", image_index=self.image_index, image=self.image, image_key=self.image_key)
        return self


class JudgeRequest(_Wire):
    """``POST /v1/judge``: many crop questions; ``images`` holds images the items point at by index."""

    images: list[Base64Image] = Field(default_factory=list, max_length=MAX_JUDGE_IMAGES)
    items: list[JudgeItem] = Field(min_length=1, max_length=MAX_JUDGE_ITEMS)

    @model_validator(mode="after")
    def _indices_exist(self) -> JudgeRequest:
        for k, item in enumerate(self.items):
            if item.image_index is not None and item.image_index >= len(self.images):
                raise ValueError(
                    f"items[{k}].image_index is {item.image_index} but the request has "
                    f"{len(self.images)} images"
                )
        return self


class JudgementOut(_Wire):
    p_yes: float = Field(ge=0, le=1)
    abstained: bool = False
    reason: str = ""
    detail: dict[str, Any] = Field(default_factory=dict)


class JudgeResponse(_Wire):
    """``results[k]``: the answer to item ``k``."""

    results: list[JudgementOut]
    model: str = Field(description="the judge the service runs")
    seconds: float = Field(description="model time of this request")
