"""Stage 3 for one tag: IQA-Filter then Box-Merge (paper §3.2 and Alg. 1, DESIGN §3.5).

- IQA-Filter runs only when the tag has more than one box. Every crop is asked "Is the image quality <Tq>?"
  (one batched judge call); a box is kept when ``p_yes >= keep_threshold`` (0.5). Every ``p_yes`` is stored.
  A judge that abstains (unknown word, crop too small, a measurement that cannot separate) answers 0.5, so
  the box is kept, never dropped on no evidence; the audit record carries ``abstained`` and its ``reason``.
  When every box is rejected the tag keeps none and is recorded as ungrounded **(decided)**.
- A single box is kept without asking (the detector was prompted with Tr, nothing to disambiguate).
- Without a judge (``judge=None``) the filter is skipped and recorded as such, so a run without a quality
  model still produces grounded data and its audit says why nothing was filtered.
- Box-Merge (:mod:`giqa.pipeline.merge`) then folds the kept boxes.

Pure over the ports: no model is loaded here, the judge is handed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from giqa.boxes import Box
from giqa.pipeline.merge import (
    DEFAULT_AREA_THRESHOLD,
    DEFAULT_OVERLAP_THRESHOLD,
    MergeStep,
    merge_boxes_traced,
)
from giqa.ports import Detection, Judgement, QualityJudge
from giqa.schemas import Tag

DROP_NO_DETECTION = "no_detection"
DROP_ALL_REJECTED = "iqa_filter_rejected_all"


@dataclass(frozen=True, slots=True)
class RefineConfig:
    keep_threshold: float = 0.5
    area_threshold: float = DEFAULT_AREA_THRESHOLD
    overlap_threshold: float = DEFAULT_OVERLAP_THRESHOLD

    def __post_init__(self) -> None:
        for name in ("keep_threshold", "area_threshold", "overlap_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"RefineConfig.{name} must be in [0, 1], got {value!r}")


@dataclass(slots=True)
class RefinedTag:
    """Everything Stage 3 decided for one tag, in the order it happened (the audit record)."""

    tag: Tag
    raw: list[Detection]
    judgements: list[Judgement | None]  # one per raw detection; None where the filter did not ask
    kept: list[Box]
    merged: list[Box]
    merges: list[MergeStep] = field(default_factory=list)
    dropped_reason: str | None = None
    filter_applied: bool = False

    @property
    def grounded(self) -> bool:
        return bool(self.merged)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tag": self.tag.model_dump(mode="json"),
            "raw": [{"box": d.box.as_list(), "score": d.score, "label": d.label} for d in self.raw],
            "judgements": [
                None
                if j is None
                else {
                    "p_yes": j.p_yes,
                    "abstained": j.abstained,
                    "reason": j.reason,
                    "detail": dict(j.detail),
                }
                for j in self.judgements
            ],
            "filter_applied": self.filter_applied,
            "kept": [b.as_list() for b in self.kept],
            "merged": [b.as_list() for b in self.merged],
            "merges": [m.to_dict() for m in self.merges],
            "dropped_reason": self.dropped_reason,
        }


def refine_tag(
    image: Image.Image | None,
    tag: Tag,
    detections: Sequence[Detection],
    judge: QualityJudge | None,
    config: RefineConfig | None = None,
) -> RefinedTag:
    """IQA-Filter (when the tag has several boxes and a judge is given) then Box-Merge, for one tag.

    ``image`` may be None only when no judge will look at it (no judge, or at most one box): replaying
    recorded Stage-2 outputs without the pixels.
    """
    config = config or RefineConfig()
    raw = list(detections)
    if not raw:
        return RefinedTag(tag, raw, [], [], [], dropped_reason=DROP_NO_DETECTION)

    judgements: list[Judgement | None] = [None] * len(raw)
    filter_applied = len(raw) > 1 and judge is not None
    if filter_applied:
        assert judge is not None
        if image is None:
            raise ValueError(f"the IQA-Filter needs the image to judge {len(raw)} boxes of {tag.phrase!r}")
        answers = judge.judge_batch([(image, d.box, tag.quality) for d in raw])
        if len(answers) != len(raw):
            raise RuntimeError(f"judge returned {len(answers)} judgements for {len(raw)} boxes")
        judgements = list(answers)
        kept = [d.box for d, j in zip(raw, answers, strict=True) if j.p_yes >= config.keep_threshold]
    else:
        kept = [d.box for d in raw]

    if not kept:
        return RefinedTag(tag, raw, judgements, [], [], [], DROP_ALL_REJECTED, filter_applied)
    merged, steps = merge_boxes_traced(kept, config.area_threshold, config.overlap_threshold)
    return RefinedTag(tag, raw, judgements, kept, merged, steps, None, filter_applied)
