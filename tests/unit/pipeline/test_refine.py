"""Stage 3 for one tag: when the IQA-Filter asks, what it keeps, what it records, then Box-Merge."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from PIL import Image

from giqa.boxes import Box
from giqa.pipeline import RefineConfig, refine_tag
from giqa.pipeline.refine import DROP_ALL_REJECTED, DROP_NO_DETECTION
from giqa.ports import Detection, Health, Judgement
from giqa.schemas import Tag

pytestmark = pytest.mark.unit

IMAGE = Image.new("RGB", (64, 64), (128, 128, 128))
TAG = Tag(phrase="red circle", quality="blurry", effect="negative")


class TableJudge:
    """A judge that answers from a table keyed by box (the judge is not what these tests check)."""

    name = "table"

    def __init__(self, answers: dict[Box, float]) -> None:
        self.answers = answers
        self.calls: list[list[tuple[Box, str]]] = []

    def judge(self, image: Image.Image, box: Box, quality: str) -> Judgement:
        return self.judge_batch([(image, box, quality)])[0]

    def judge_batch(self, items: Sequence[tuple[Image.Image, Box, str]]) -> list[Judgement]:
        self.calls.append([(b, q) for _, b, q in items])
        return [Judgement(self.answers[b]) for _, b, _ in items]

    def health(self) -> Health:
        return Health(True)


A = Box(0.1, 0.1, 0.3, 0.3)
B = Box(0.6, 0.6, 0.8, 0.8)
C = Box(0.3, 0.1, 0.4, 0.2)  # small, touches A


def dets(*boxes: Box) -> list[Detection]:
    return [Detection(b, 0.9 - 0.1 * i, TAG.phrase) for i, b in enumerate(boxes)]


def test_no_detection_is_recorded() -> None:
    out = refine_tag(IMAGE, TAG, [], TableJudge({}), RefineConfig())
    assert out.dropped_reason == DROP_NO_DETECTION and out.merged == [] and not out.grounded


def test_single_box_is_not_judged() -> None:
    judge = TableJudge({A: 0.0})
    out = refine_tag(IMAGE, TAG, dets(A), judge, RefineConfig())
    assert judge.calls == [] and out.kept == [A] and out.merged == [A]
    assert out.judgements == [None] and not out.filter_applied


def test_filter_keeps_yes_and_drops_no_with_probabilities_stored() -> None:
    judge = TableJudge({A: 0.8, B: 0.2})
    out = refine_tag(IMAGE, TAG, dets(A, B), judge, RefineConfig())
    assert judge.calls == [[(A, "blurry"), (B, "blurry")]]  # one batched call, the tag's quality word
    assert out.kept == [A] and out.merged == [A]
    assert [j.p_yes for j in out.judgements if j] == [0.8, 0.2]
    assert out.filter_applied and out.dropped_reason is None


def test_keep_threshold_is_inclusive() -> None:
    out = refine_tag(IMAGE, TAG, dets(A, B), TableJudge({A: 0.5, B: 0.4999}), RefineConfig())
    assert out.kept == [A]
    out = refine_tag(
        IMAGE, TAG, dets(A, B), TableJudge({A: 0.5, B: 0.4999}), RefineConfig(keep_threshold=0.4)
    )
    assert out.kept == [A, B]


def test_all_rejected_tag_is_ungrounded() -> None:
    out = refine_tag(IMAGE, TAG, dets(A, B), TableJudge({A: 0.1, B: 0.3}), RefineConfig())
    assert out.kept == [] and out.merged == [] and out.dropped_reason == DROP_ALL_REJECTED
    assert out.to_dict()["dropped_reason"] == DROP_ALL_REJECTED


def test_without_judge_filter_is_skipped_and_merge_runs() -> None:
    out = refine_tag(IMAGE, TAG, dets(A, C, B), None, RefineConfig())
    assert not out.filter_applied and out.judgements == [None, None, None]
    assert out.merged == [Box(0.1, 0.1, 0.4, 0.3), B]
    assert len(out.merges) == 1 and out.merges[0].reason == "small_touch"


def test_merge_runs_after_filter_on_kept_boxes_only() -> None:
    out = refine_tag(IMAGE, TAG, dets(A, C, B), TableJudge({A: 0.9, C: 0.9, B: 0.1}), RefineConfig())
    assert out.kept == [A, C] and out.merged == [Box(0.1, 0.1, 0.4, 0.3)]


def test_merge_thresholds_come_from_config() -> None:
    out = refine_tag(IMAGE, TAG, dets(A, C), None, RefineConfig(area_threshold=0.0))
    assert out.merged == [A, C]


def test_to_dict_is_json_able() -> None:
    import json

    out = refine_tag(IMAGE, TAG, dets(A, C, B), TableJudge({A: 0.9, C: 0.9, B: 0.1}), RefineConfig())
    data = json.loads(json.dumps(out.to_dict()))
    assert data["tag"]["phrase"] == "red circle"
    assert data["raw"][0]["box"] == A.as_list() and data["judgements"][2]["p_yes"] == 0.1
    assert data["merges"][0]["result"] == [0.1, 0.1, 0.4, 0.3]


def test_judge_returning_wrong_count_is_an_error() -> None:
    class Short(TableJudge):
        def judge_batch(self, items):  # type: ignore[override]
            return []

    with pytest.raises(RuntimeError, match="judgements"):
        refine_tag(IMAGE, TAG, dets(A, B), Short({}), RefineConfig())


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        RefineConfig(keep_threshold=1.5)


def test_image_is_only_needed_when_the_filter_looks() -> None:
    assert refine_tag(None, TAG, dets(A, C), None, RefineConfig()).merged == [Box(0.1, 0.1, 0.4, 0.3)]
    assert refine_tag(None, TAG, dets(A), TableJudge({A: 0.0}), RefineConfig()).kept == [A]
    with pytest.raises(ValueError, match="needs the image"):
        refine_tag(None, TAG, dets(A, B), TableJudge({A: 0.9, B: 0.1}), RefineConfig())
