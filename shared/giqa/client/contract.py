"""The inference service's wire contract (``/v1/assess``, ``/v1/ask``, ``/v1/score`` and the OpenAI-compatible
``/v1/chat/completions``): strict pydantic models, shared by the service (``services/inference``) and the
client apps install (:mod:`giqa.client`), so both sides validate the same shapes.

It lives in the installed package, not in ``services/``, because downstream apps get :mod:`giqa.client` from
the wheel; ``services/inference/contract.py`` re-exports it as the service's contract module.

Requests forbid unknown fields and bound every size (a typo in a field name is an error, not a default);
boxes are normalized ``[x1, y1, x2, y2]`` in [0, 1] with ``x1 <= x2`` and ``y1 <= y2`` (DESIGN §3.1).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from giqa.boxes import Box, BoxError

MAX_QUESTION_CHARS = 2000
MAX_REGIONS = 16
LEVELS: tuple[tuple[str, int], ...] = (("excellent", 5), ("good", 4), ("fair", 3), ("poor", 2), ("bad", 1))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------------------------------------ requests

Base64Image = Annotated[
    str | None,
    Field(None, min_length=1, description="the image file (JPEG, PNG, WebP, ...) as base64 or a data: URL"),
]
ImageKey = Annotated[
    str | None,
    Field(
        None,
        min_length=1,
        max_length=1024,
        description="instead of image: the key of an image in the object store (under images/ or uploads/)",
    ),
]
MaxNewTokens = Annotated[int | None, Field(None, ge=1, le=4096, description="cap on generated tokens")]


class Region(_Strict):
    """A region the question refers to: rendered into the question in the grounded format."""

    box: list[float] = Field(min_length=4, max_length=4, description="normalized [x1, y1, x2, y2]")
    phrase: str = Field("the region", min_length=1, max_length=200, description="what the region is")

    @field_validator("box")
    @classmethod
    def _valid_box(cls, value: list[float]) -> list[float]:
        try:
            return Box(*value).as_list()
        except BoxError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("phrase")
    @classmethod
    def _plain_phrase(cls, value: str) -> str:
        if any(ch in value for ch in "[]()<>\n\r") or not value.strip():
            raise ValueError("a region phrase is plain words (no brackets, parentheses or line breaks)")
        return value.strip()


class _ImageInput(_Strict):
    """The image of a request: the file itself (base64) or a key in the object store, exactly one."""

    image: Base64Image = None
    image_key: ImageKey = None

    @model_validator(mode="after")
    def _one_image(self) -> _ImageInput:
        if (self.image is None) == (self.image_key is None):
            raise ValueError("send exactly one of image (the file) and image_key (an object-store key)")
        return self


class AssessRequest(_ImageInput):
    mask: bool = Field(False, description="also return a mask per quality word of the flagged regions")
    mask_format: Literal["png", "rle"] = Field("png", description="masks as base64 PNG or run-length")
    max_new_tokens: MaxNewTokens = None


class AskRequest(_ImageInput):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    regions: list[Region] = Field(default_factory=list, max_length=MAX_REGIONS)
    max_new_tokens: MaxNewTokens = None


class ScoreRequest(_ImageInput):
    pass


# ----------------------------------------------------------------------------------------------- responses


class Timings(_Strict):
    queue_ms: float = Field(description="waiting for a batch slot")
    model_ms: float = Field(description="the model call(s), shared with the rest of the batch")
    total_ms: float = Field(description="decode, queue, model and formatting")
    batch_size: int = Field(description="requests in the (last) model call this request rode in")


class BoxOut(_Strict):
    norm: list[float] = Field(description="[x1, y1, x2, y2] in [0, 1]")
    pixels: list[int] = Field(description="[x1, y1, x2, y2] in pixels of the image as sent (EXIF-oriented)")
    grid: list[int] = Field(description="[top-left cell, bottom-right cell] on the n x m grid")


class GroundedObject(_Strict):
    phrase: str
    quality: list[str] = Field(description="quality words said of it in its sentence (e.g. 'blurry')")
    polarity: Literal["positive", "negative"] | None = Field(
        description="negative: the words say it hurts the image (a region to fix)"
    )
    boxes: list[BoxOut]


class Rle(_Strict):
    size: list[int] = Field(description="[height, width]")
    counts: list[int] = Field(description="row-major run lengths, alternating 0s and 1s, starting with 0s")


class Mask(_Strict):
    quality: str = Field(description="the quality word whose regions the mask covers")
    polarity: Literal["positive", "negative"] | None
    format: Literal["png", "rle"]
    png: str | None = Field(None, description="base64 8-bit grayscale PNG, 255 inside, image size")
    rle: Rle | None = None
    area: float = Field(description="share of the image the mask covers")


class AssessResponse(_Strict):
    model: str
    question: str = Field(description="the GIQA-DES question the model was asked")
    description: str = Field(description="the grounded description: [phrase](<a, b>) mentions")
    text: str = Field(description="the description with the coordinates stripped, for people")
    objects: list[GroundedObject]
    masks: list[Mask] | None = None
    problems: list[str] = Field(description="mentions the model wrote that could not be read")
    image_size: list[int] = Field(description="[width, height]")
    grid: list[int] = Field(description="[n, m]")
    timings: Timings


class AskResponse(_Strict):
    model: str
    question: str = Field(description="the question as the model saw it (regions rendered in)")
    answer: str
    text: str
    objects: list[GroundedObject]
    yes: bool | None = Field(description="for a yes/no question: P(Yes) >= 0.5; else null")
    p_yes: float | None = Field(description="P(Yes) / (P(Yes) + P(No)) where the answer says yes or no")
    timings: Timings


class ScoreResponse(_Strict):
    model: str
    score: float = Field(ge=1, le=5, description="sum of level value x its probability (Q-Align)")
    levels: dict[str, float] = Field(description="probability of each level word, normalized over the five")
    timings: Timings


# ----------------------------------------------------------------------------------- OpenAI-compatible chat


class ImageURL(_Strict):
    url: str = Field(min_length=1, description="a data:image/...;base64 URL (remote URLs are refused)")
    detail: Literal["auto", "low", "high"] | None = None


class TextPart(_Strict):
    type: Literal["text"]
    text: str = Field(max_length=MAX_QUESTION_CHARS)


class ImagePart(_Strict):
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ChatMessage(_Strict):
    role: Literal["system", "user", "assistant"]
    content: str | list[ContentPart] = Field(max_length=MAX_QUESTION_CHARS)
    name: str | None = Field(None, max_length=64)


class ChatRequest(_Strict):
    """The subset of OpenAI's chat-completions request a greedy single-image VLM can honour."""

    model: str = Field(max_length=200)
    messages: list[ChatMessage] = Field(min_length=1, max_length=32)
    max_tokens: int | None = Field(None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(None, ge=1, le=4096)
    temperature: float | None = Field(None, ge=0, le=2, description="decoding is greedy whatever it is")
    top_p: float | None = Field(None, gt=0, le=1)
    n: int | None = Field(None, ge=1, le=1, description="one choice only")
    stream: bool | None = Field(None, description="streaming is not offered: false or absent")
    seed: int | None = None
    user: str | None = Field(None, max_length=200)
    logprobs: bool | None = Field(None, description="with max_tokens=1: the next token's log-probabilities")
    top_logprobs: int | None = Field(None, ge=0, le=20, description="how many alternatives (needs logprobs)")
    continue_final_message: bool | None = Field(
        None, description="vLLM's: continue a final assistant message (with logprobs and max_tokens=1)"
    )
    add_generation_prompt: bool | None = Field(None, description="vLLM's; false with continue_final_message")


class ChatAnswer(_Strict):
    role: Literal["assistant"] = "assistant"
    content: str


class TopLogprob(_Strict):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(_Strict):
    token: str
    logprob: float
    bytes: list[int] | None = None
    top_logprobs: list[TopLogprob]


class ChatLogprobs(_Strict):
    content: list[TokenLogprob]


class ChatChoice(_Strict):
    index: int
    message: ChatAnswer
    finish_reason: Literal["stop", "length"]
    logprobs: ChatLogprobs | None = None


class Usage(_Strict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatResponse(_Strict):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class ModelCard(_Strict):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "giqa"


class ModelList(_Strict):
    object: Literal["list"] = "list"
    data: list[ModelCard]


__all__ = [
    "LEVELS",
    "MAX_QUESTION_CHARS",
    "MAX_REGIONS",
    "AskRequest",
    "AskResponse",
    "AssessRequest",
    "AssessResponse",
    "BoxOut",
    "ChatAnswer",
    "ChatChoice",
    "ChatLogprobs",
    "ChatMessage",
    "ChatRequest",
    "ChatResponse",
    "GroundedObject",
    "ImagePart",
    "ImageURL",
    "Mask",
    "ModelCard",
    "ModelList",
    "Region",
    "Rle",
    "ScoreRequest",
    "ScoreResponse",
    "TextPart",
    "TokenLogprob",
    "TopLogprob",
    "Timings",
    "Usage",
]
