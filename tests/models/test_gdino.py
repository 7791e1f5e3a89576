"""Grounding DINO detector backend on a tiny model built from configs (MiniLM text side, random rest).

The weights are random, so the boxes mean nothing; what is checked is the real code path: shapes,
normalization to the original image, thresholds, NMS, batching, bad input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from giqa.backends.gdino import GroundingDinoDetector, nms, prompt_for, select_detections
from giqa.boxes import iou
from giqa.ports import Detector

pytestmark = pytest.mark.models

PHRASES = ["red circle", "the small blue square", "green star", "a yellow ring on the left", "cat"]


@pytest.fixture(scope="module")
def gdino_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from giqa.models.tiny_gdino import build_tiny_grounding_dino

    return build_tiny_grounding_dino(tmp_path_factory.mktemp("gdino") / "tiny", seed=0)


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    from giqa.synth import generate_scene

    first = generate_scene(0, 0)[0]
    second = generate_scene(0, 1)[0]
    wide = generate_scene(0, 2)[0].resize((160, 96))
    return [first, second, wide]


def make(path: Path, **kwargs: object) -> GroundingDinoDetector:
    options: dict[str, object] = {
        "box_threshold": 0.0,
        "text_threshold": 0.0,
        "nms_iou": None,
        "max_detections": 100,
    }
    options.update(kwargs)
    return GroundingDinoDetector(path, **options)  # type: ignore[arg-type]


def test_output_shapes_and_normalization(gdino_path: Path, images: list[Image.Image]) -> None:
    detector = make(gdino_path, max_detections=7)
    assert isinstance(detector, Detector) and detector.health().ok
    result = detector.detect(images[2], PHRASES[:3])
    assert len(result) == 3
    for phrase, detections in zip(PHRASES[:3], result, strict=True):
        assert 1 <= len(detections) <= 7
        scores = [d.score for d in detections]
        assert scores == sorted(scores, reverse=True)
        for d in detections:
            assert d.label == phrase and 0.0 <= d.score <= 1.0
            assert 0.0 <= d.box.x1 <= d.box.x2 <= 1.0 and 0.0 <= d.box.y1 <= d.box.y2 <= 1.0


def test_boxes_are_normalized_corners_of_the_predicted_centres() -> None:
    # the model predicts (cx, cy, w, h) relative to the unpadded image; the backend turns that into clipped
    # normalized corners, so boxes do not depend on the image's pixel size
    probs = np.array([[0.9, 0.8, 0.1], [0.95, 0.2, 0.1], [0.3, 0.2, 0.1], [0.7, 0.7, 0.9]])
    pred = np.array([[0.5, 0.5, 0.2, 0.4], [0.05, 0.9, 0.3, 0.4], [0.5, 0.5, 0.1, 0.1], [0.5, 0.5, 0.2, 0.4]])
    mask = np.array([True, True, False])  # the third token is "." or a special token
    got = select_detections(
        probs, pred, mask, "x", box_threshold=0.5, text_threshold=0.5, nms_iou=None, max_detections=10
    )
    # query 1: best 0.95 but mean 0.575 passes; query 2 fails the box threshold; query 3's 0.9 is off-phrase
    assert [d.score for d in got] == pytest.approx([0.95, 0.9, 0.7])
    assert got[0].box.as_tuple() == pytest.approx((0.0, 0.7, 0.2, 1.0))  # clipped at the edges
    assert got[1].box.as_tuple() == pytest.approx((0.4, 0.3, 0.6, 0.7))
    strict_text = select_detections(
        probs, pred, mask, "x", box_threshold=0.5, text_threshold=0.8, nms_iou=None, max_detections=10
    )
    assert [d.score for d in strict_text] == pytest.approx([0.9])
    deduped = select_detections(
        probs, pred, mask, "x", box_threshold=0.5, text_threshold=0.5, nms_iou=0.5, max_detections=10
    )
    assert [d.score for d in deduped] == pytest.approx([0.95, 0.9])  # query 4 duplicates query 1's box
    assert (
        select_detections(
            probs,
            pred,
            np.zeros(3, bool),
            "x",
            box_threshold=0,
            text_threshold=0,
            nms_iou=None,
            max_detections=5,
        )
        == []
    )


def test_image_size_does_not_change_the_scale_of_boxes(gdino_path: Path, images: list[Image.Image]) -> None:
    detector = make(gdino_path)
    for image in (
        images[0],
        images[2],
        images[0].resize((300, 120)),
        images[0].resize((20, 400)),
        images[0].resize((8, 8)),
    ):
        for d in detector.detect(image, ["red circle"])[0]:
            assert 0.0 <= d.box.x1 <= d.box.x2 <= 1.0 and 0.0 <= d.box.y1 <= d.box.y2 <= 1.0
            assert d.box.area > 0


def test_higher_box_threshold_never_returns_more(gdino_path: Path, images: list[Image.Image]) -> None:
    detector = make(gdino_path)
    counts = []
    previous: set[tuple[float, ...]] | None = None
    for threshold in (0.0, 0.5, 0.95, 0.999, 1.0):
        detector.box_threshold = threshold
        detections = detector.detect(images[0], ["red circle"])[0]
        assert all(d.score >= threshold for d in detections)
        boxes = {d.box.as_tuple() for d in detections}
        if previous is not None:
            assert boxes <= previous
        previous = boxes
        counts.append(len(boxes))
    assert counts == sorted(counts, reverse=True)
    assert counts[0] > counts[-1]


def test_text_threshold_is_honoured(gdino_path: Path, images: list[Image.Image]) -> None:
    detector = make(gdino_path)
    counts = []
    for threshold in (0.0, 0.5, 0.9, 1.0):
        detector.text_threshold = threshold
        counts.append(len(detector.detect(images[1], ["a yellow ring on the left"])[0]))
    assert counts == sorted(counts, reverse=True)


def test_batched_equals_one_by_one(gdino_path: Path, images: list[Image.Image]) -> None:
    detector = make(gdino_path, max_detections=10, nms_iou=0.7, batch_size=4)
    phrases = [PHRASES[:2], [PHRASES[3]], [PHRASES[0], PHRASES[4], PHRASES[2]]]
    batched = detector.detect_batch(images, phrases)
    for image, image_phrases, got in zip(images, phrases, batched, strict=True):
        for phrase, dets in zip(image_phrases, got, strict=True):
            alone = detector.detect(image, [phrase])[0]
            assert len(alone) == len(dets)
            for a, b in zip(alone, dets, strict=True):
                assert a.box.as_tuple() == pytest.approx(b.box.as_tuple(), abs=1e-4)
                assert a.score == pytest.approx(b.score, abs=1e-4)


def test_nms_and_max_detections(gdino_path: Path, images: list[Image.Image]) -> None:
    detector = make(gdino_path, nms_iou=0.3, max_detections=3)
    detections = detector.detect(images[0], ["green star"])[0]
    assert len(detections) <= 3
    for i, a in enumerate(detections):
        for b in detections[i + 1 :]:
            assert iou(a.box, b.box) <= 0.3 + 1e-9


def test_bad_input(gdino_path: Path, images: list[Image.Image], tmp_path: Path) -> None:
    detector = make(gdino_path)
    assert detector.detect(images[0], []) == []
    assert detector.detect_batch([], []) == []
    with pytest.raises(ValueError, match="empty phrase"):
        detector.detect(images[0], ["  "])
    with pytest.raises(ValueError, match="phrase lists"):
        detector.detect_batch(images, [["x"]])
    with pytest.raises(FileNotFoundError, match="config.json"):
        GroundingDinoDetector(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        GroundingDinoDetector(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="offline"):  # a hub id absent from the cache: no download
        GroundingDinoDetector("giqa-test/not-a-cached-model")
    with pytest.raises(ValueError, match="box_threshold"):
        GroundingDinoDetector(gdino_path, box_threshold=1.5)
    assert detector.detect(images[0].convert("L"), ["red circle"])[0]  # grey input is converted


def test_prompt_and_nms_helpers() -> None:
    assert prompt_for("  The Red   Circle. ") == "the red circle."
    boxes = np.array([[0, 0, 0.5, 0.5], [0.01, 0, 0.5, 0.5], [0.6, 0.6, 1, 1]])
    assert nms(boxes, np.array([0.5, 0.9, 0.1]), 0.5) == [1, 2]


def test_tiny_builder_refuses_a_size_groupnorm_cannot_run(tmp_path: Path) -> None:
    from giqa.models.tiny_gdino import MIN_IMAGE_SIZE, build_tiny_grounding_dino

    with pytest.raises(ValueError, match="GroupNorm"):
        build_tiny_grounding_dino(tmp_path / "tiny", image_size=MIN_IMAGE_SIZE - 32)
    assert not (tmp_path / "tiny").exists()
