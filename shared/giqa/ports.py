"""Narrow ports for every model role (DESIGN §2). Pipeline and evaluator code depends on these only;
the composition root (CLI or service start-up) picks an in-process backend or an HTTP client.

Each port is 2–4 methods plus ``health()``. Images cross the ports as PIL images; boxes as
:class:`giqa.boxes.Box` (normalized).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from PIL import Image

from giqa.boxes import Box

Message = dict[str, Any]  # an OpenAI chat message: {"role": ..., "content": ...}


@dataclass(frozen=True, slots=True)
class Detection:
    """One detected box for one phrase, with the detector's confidence."""

    box: Box
    score: float
    label: str = ""


@dataclass(frozen=True, slots=True)
class Judgement:
    """A quality judge's answer to "Is the image quality <word>?" on one crop.

    ``p_yes`` is P(Yes) / (P(Yes) + P(No)) from the next-token distribution (or a calibrated measurement);
    ``abstained`` marks a judge that cannot answer (then ``p_yes`` is 0.5, so the IQA-Filter keeps the box)
    and ``reason`` says why in one line (an unknown word, a crop too small to measure, a measurement that
    cannot separate); ``detail["abstain"]`` holds the same as a short code where the judge gives one.
    """

    p_yes: float
    abstained: bool = False
    detail: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    @property
    def keep(self) -> bool:
        return self.p_yes >= 0.5


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    detail: str = ""


@runtime_checkable
class ChatLLM(Protocol):
    """An OpenAI-compatible chat model with structured (JSON-schema) output."""

    @property
    def model_name(self) -> str: ...

    def chat(
        self, messages: Sequence[Message], *, temperature: float = 0.0, max_tokens: int = 512
    ) -> str: ...

    def chat_json(
        self,
        messages: Sequence[Message],
        schema: dict[str, Any],
        *,
        temperature: float = 0.0,
        max_tokens: int = 512,
    ) -> Any: ...

    def health(self) -> Health: ...


@runtime_checkable
class Detector(Protocol):
    """Open-vocabulary detection (Grounding DINO): boxes for each phrase in each image."""

    def detect(self, image: Image.Image, phrases: Sequence[str]) -> list[list[Detection]]: ...

    def detect_batch(
        self, images: Sequence[Image.Image], phrases: Sequence[Sequence[str]]
    ) -> list[list[list[Detection]]]: ...

    def health(self) -> Health: ...


@runtime_checkable
class QualityJudge(Protocol):
    """Answers "Is the image quality <quality>?" for crops (Stage 3's IQA-Filter)."""

    def judge(self, image: Image.Image, box: Box, quality: str) -> Judgement: ...

    def judge_batch(self, items: Sequence[tuple[Image.Image, Box, str]]) -> list[Judgement]: ...

    def health(self) -> Health: ...


@runtime_checkable
class GroundedVLM(Protocol):
    """The grounded-IQA model itself: answers a question about an image with grounded text."""

    @property
    def model_name(self) -> str: ...

    def answer(self, image: Image.Image, question: str, *, max_new_tokens: int = 256) -> str: ...

    def answer_batch(
        self, items: Sequence[tuple[Image.Image, str]], *, max_new_tokens: int = 256
    ) -> list[str]: ...

    def health(self) -> Health: ...
