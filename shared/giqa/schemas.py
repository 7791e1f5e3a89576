"""Data contracts (DESIGN §3.3–3.4): tags, grounded objects, samples, bench items, predictions, exports.

Every file the system writes or reads goes through these models, so a malformed line is refused with
a message that names the field instead of failing somewhere downstream.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from giqa.boxes import Box, BoxError, as_box

Task = Literal["des", "vqa"]
QType = Literal["yes_no", "what", "why", "how"]
Mode = Literal["referring", "grounding", "none"]
Effect = Literal["positive", "negative", "no impact"]

TASKS: tuple[Task, ...] = ("des", "vqa")
QTYPES: tuple[QType, ...] = ("yes_no", "what", "why", "how")
MODES: tuple[Mode, ...] = ("referring", "grounding", "none")
EFFECTS: tuple[Effect, ...] = ("positive", "negative", "no impact")


def _to_box(value: Any) -> Box:
    try:
        return as_box(value)
    except BoxError as exc:
        raise ValueError(str(exc)) from exc


# A normalized box that reads from [x1, y1, x2, y2] (or a Box) and writes back as a list of 4 floats.
NormBox = Annotated[Box, BeforeValidator(_to_box), PlainSerializer(lambda b: b.as_list(), return_type=list)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, arbitrary_types_allowed=True)


class Tag(_Model):
    """Stage-1 output for one key object: the phrase Tr, its quality Tq and its effect Te."""

    phrase: str = Field(min_length=1, description="Tr: the object's description phrase, a span of the text")
    quality: str = Field(min_length=1, description="Tq: the object's quality, e.g. 'blurry'")
    effect: Effect = Field(description="Te: the object's effect on the overall quality")

    @field_validator("phrase", "quality")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise ValueError("must not be blank")
        return value


class GroundedObject(_Model):
    """A key object with its boxes (several boxes for one phrase are allowed, e.g. 'candles')."""

    phrase: str = Field(min_length=1)
    boxes: list[NormBox] = Field(min_length=1)
    quality: str | None = None
    effect: Effect | None = None


class BenchObject(_Model):
    """A ground-truth (phrase, box) pair of a bench item: one box per entry (DESIGN §3.4)."""

    phrase: str = Field(min_length=1)
    box: NormBox


class Sample(_Model):
    """One training sample ``{image, question, answer}`` plus its kind (DESIGN §3.3)."""

    id: str = Field(min_length=1)
    image: str = Field(min_length=1, description="image path or object key")
    task: Task
    qtype: QType | None = None
    mode: Mode = "none"
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    objects: list[GroundedObject] = Field(default_factory=list)

    @model_validator(mode="after")
    def _kind_is_consistent(self) -> Sample:
        _check_kind(self.task, self.qtype, self.mode)
        return self


class BenchItem(_Model):
    """One line of a GIQA-Bench JSONL file; ``image`` is relative to the bench file.

    (decided) A VQA item without a mode (or mode ``none``) is a whole-image question, as Q-Bench-style sets
    bring ("Is the image noisy?"): it has no boxes, and Acc(Y)/Acc(W) score it like any other.
    """

    id: str = Field(min_length=1)
    task: Task
    qtype: QType | None = None
    mode: Mode | None = None
    image: str = Field(min_length=1)
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    objects: list[BenchObject] = Field(default_factory=list)

    @model_validator(mode="after")
    def _kind_is_consistent(self) -> BenchItem:
        _check_kind(self.task, self.qtype, self.mode or "none", whole_image_vqa=True)
        if self.task == "vqa" and self.qtype == "yes_no":
            word = self.answer.strip().rstrip(".").lower()
            if word not in ("yes", "no"):
                raise ValueError(f"a yes_no item's answer must be 'Yes.' or 'No.', got {self.answer!r}")
        return self


class Prediction(_Model):
    """One line of a predictions JSONL file: the model's raw text for a bench item."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1)
    response: str


def _check_kind(task: str, qtype: str | None, mode: str, *, whole_image_vqa: bool = False) -> None:
    if task == "des":
        if qtype is not None:
            raise ValueError(f"a des sample has no qtype, got {qtype!r}")
        if mode not in ("none", "grounding"):
            raise ValueError(f"a des sample's mode is 'none' or 'grounding', got {mode!r}")
    else:
        if qtype is None:
            raise ValueError("a vqa sample needs a qtype (yes_no, what, why or how)")
        if mode == "none" and not whole_image_vqa:
            raise ValueError("a vqa sample's mode is 'referring' or 'grounding'")


# ------------------------------------------------------------------------------------ LLaVA export


class Turn(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    from_: Literal["human", "gpt"] = Field(alias="from")
    value: str


class LlavaRecord(BaseModel):
    """The LLaVA conversation format the LLaVA and Q-Instruct training scripts read unchanged."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    id: str
    image: str
    conversations: list[Turn] = Field(min_length=2)
    task: Task
    qtype: QType | None = None
    mode: Mode = "none"

    @field_validator("conversations")
    @classmethod
    def _image_token_first(cls, turns: list[Turn]) -> list[Turn]:
        if turns[0].from_ != "human" or "<image>" not in turns[0].value:
            raise ValueError("the first turn must be the human's and carry the <image> token")
        return turns

    def dump(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json")


IMAGE_TOKEN = "<image>"


def to_llava(sample: Sample) -> LlavaRecord:
    """A sample as one LLaVA conversation record: ``<image>\\n`` + question, then the answer."""
    return LlavaRecord(
        id=sample.id,
        image=sample.image,
        conversations=[
            Turn.model_validate({"from": "human", "value": f"{IMAGE_TOKEN}\n{sample.question}"}),
            Turn.model_validate({"from": "gpt", "value": sample.answer}),
        ],
        task=sample.task,
        qtype=sample.qtype,
        mode=sample.mode,
    )


def from_llava(record: dict[str, Any]) -> tuple[str, str, str]:
    """(image, question, answer) of a LLaVA record's first exchange, the ``<image>`` token removed."""
    parsed = LlavaRecord.model_validate(record) if "task" in record else None
    turns = parsed.conversations if parsed else [Turn.model_validate(t) for t in record["conversations"]]
    if len(turns) < 2:
        raise ValueError("a LLaVA record needs a human turn and a gpt turn")
    question = turns[0].value.replace(IMAGE_TOKEN, "").strip()
    image = parsed.image if parsed else str(record["image"])
    return image, question, turns[1].value
