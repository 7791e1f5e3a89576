"""GIQA-Synth records: what the generator writes for each scene (one JSON line of ``annotations.jsonl``).

Other stages (the annotation pipeline, the evaluator) read these names, so they are a contract: objects
with their exact boxes and degradations, the description with its Stage-1 tags, the GIQA-DES answer with
grounded mentions, and GIQA-VQA items whose answers are correct by construction.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from giqa.schemas import BenchObject, Effect, Mode, QType, Tag

DegradationKind = Literal["blur", "motion_blur", "noise", "low_light", "overexposure", "jpeg", "low_contrast"]
DEGRADATION_KINDS: tuple[DegradationKind, ...] = (
    "blur",
    "motion_blur",
    "noise",
    "low_light",
    "overexposure",
    "jpeg",
    "low_contrast",
)

# What an object is in the scene's story: degraded; clean (maybe praised, maybe not mentioned);
# the clean one of the hard case's look-alike pair ("two of a kind, only one degraded").
Role = Literal["degraded", "clean", "twin_degraded", "twin_clean"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Degradation(_Model):
    """One degradation and its strength: 0 would be invisible, 1 the strongest the generator makes."""

    kind: DegradationKind
    severity: float = Field(ge=0.0, le=1.0)


class SynthObject(_Model):
    id: int = Field(ge=0)
    category: str = Field(min_length=1, description="shape name, e.g. 'circle'")
    colour: str = Field(min_length=1)
    size: Literal["small", "medium", "large"]
    phrase: str = Field(min_length=1, description="how the description names it, e.g. 'red circle'")
    box: list[float] = Field(min_length=4, max_length=4, description="normalized x1, y1, x2, y2")
    box_px: list[int] = Field(min_length=4, max_length=4, description="pixel corners, x2/y2 exclusive")
    degradations: list[Degradation] = Field(default_factory=list)
    quality: str | None = Field(None, description="the quality words the description uses for it")
    effect: Effect | None = None
    mentioned: bool = False
    role: Role = "clean"

    @property
    def degraded(self) -> bool:
        return bool(self.degradations)


class SynthQA(_Model):
    """One GIQA-VQA item; ``objects`` are the boxes its ANSWER contains (empty for yes/no and referring)."""

    qtype: QType
    mode: Mode
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    objects: list[BenchObject] = Field(default_factory=list)
    about: list[int] = Field(default_factory=list, description="ids of the objects the item is about")

    @model_validator(mode="after")
    def _yes_no_answer(self) -> SynthQA:
        if self.qtype == "yes_no" and self.answer not in ("Yes.", "No."):
            raise ValueError(f"a yes_no answer is 'Yes.' or 'No.', got {self.answer!r}")
        if self.mode == "none":
            raise ValueError("a VQA item is referring or grounding")
        return self


class SceneRecord(_Model):
    id: str = Field(min_length=1)
    image: str = Field(min_length=1, description="image path relative to the annotations file")
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    seed: int
    index: int = Field(ge=0)
    background: str
    global_degradations: list[Degradation] = Field(default_factory=list)
    objects: list[SynthObject]
    description: str = Field(min_length=1)
    verdict: Literal["poor", "fair", "good"]
    tags: list[Tag]
    des_question: str = Field(min_length=1)
    des_answer: str = Field(min_length=1)
    vqa: list[SynthQA] = Field(default_factory=list)
    hard_case: bool = False

    def object(self, object_id: int) -> SynthObject:
        for obj in self.objects:
            if obj.id == object_id:
                return obj
        raise KeyError(f"scene {self.id} has no object {object_id}")
