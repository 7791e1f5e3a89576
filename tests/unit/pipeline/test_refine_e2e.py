"""Stages 3–4 end to end on GIQA-Synth with ground-truth tags and a detection test double.

The double (bench/stage34_e2e.py) returns each tag's true box jittered or split into fragments, the
look-alike's box, and random distractors; Stage 3 (classical judge, Box-Merge) and Stage 4 (fusion) run for
real and the fused answers are parsed back and scored against the true boxes.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from giqa.backends.classical import ClassicalJudge
from giqa.synth import SynthConfig, generate_scene

pytestmark = pytest.mark.unit

BENCH = Path(__file__).resolve().parents[3] / "bench" / "stage34_e2e.py"


@pytest.fixture(scope="module")
def e2e():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("stage34_e2e", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["stage34_e2e"] = module
    spec.loader.exec_module(module)
    return module


def test_filter_and_merge_improve_the_fused_answers(e2e) -> None:  # type: ignore[no-untyped-def]
    judge = ClassicalJudge()
    double = e2e.DetectorDouble(seed=5)
    scores = {v: e2e.Score() for v in e2e.VARIANTS}
    for index in range(40):
        image, record = generate_scene(5, index, SynthConfig())
        e2e.run_scene(image, record, double, judge, scores)  # also checks strip_coordinates(answer) == text

    def miou(name: str) -> float:
        return sum(scores[name].ious) / len(scores[name].ious)

    def precision(name: str) -> float:
        return scores[name].correct_boxes / scores[name].boxes

    assert scores["oracle"].answers == 40 and scores["oracle"].tags > 40
    assert miou("oracle") > 0.75 and precision("oracle") == 1.0  # the grid's ceiling
    assert miou("merge only") > miou("raw") + 0.02  # fragments folded back into whole objects
    assert miou("filter + merge") > miou("raw")
    assert precision("filter + merge") > precision("raw") + 0.2  # look-alikes and distractors dropped
    assert precision("filter + merge") > precision("merge only")
    assert scores["filter + merge"].boxes < scores["raw"].boxes


def test_double_returns_truth_lookalike_and_distractors(e2e) -> None:  # type: ignore[no-untyped-def]
    from giqa.boxes import as_box, iou

    config = SynthConfig(p_hard_case=1.0)
    image, record = generate_scene(5, 0, config)
    twin = next(o for o in record.objects if o.role == "twin_degraded")
    other = next(o for o in record.objects if o.role == "twin_clean")
    double = e2e.DetectorDouble(seed=0, p_fragment=0.0, p_distractor=1.0)
    detections = double.detections(record, twin.id)
    assert len(detections) == 3
    assert iou(detections[0].box, as_box(twin.box)) > 0.6
    assert iou(detections[1].box, as_box(other.box)) > 0.6
    assert double.detections(record, twin.id) == detections  # deterministic per (seed, scene, object)
