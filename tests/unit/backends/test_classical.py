"""The classical quality judge: word parsing, measurements that move the right way, abstention, params."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageFilter

from giqa.backends.classical import ClassicalJudge, Curve, load_params, parse_quality
from giqa.backends.classical_measure import measure
from giqa.boxes import Box

pytestmark = pytest.mark.unit

WHOLE = Box(0.25, 0.25, 0.75, 0.75)


@pytest.fixture(scope="module")
def judge() -> ClassicalJudge:
    return ClassicalJudge()


def _scene(seed: int = 0) -> np.ndarray:
    """A 128×128 image: mid-grey textured background with a bright-edged patterned square in the middle."""
    rng = np.random.default_rng(seed)
    img = np.full((128, 128, 3), 110.0) + rng.normal(0, 2, (128, 128, 1))
    yy, xx = np.mgrid[0:64, 0:64]
    pattern = np.where(((yy // 8) + (xx // 8)) % 2 == 0, 220.0, 40.0)
    img[32:96, 32:96] = np.stack([pattern, pattern * 0.6, pattern * 0.3], axis=-1)
    return np.clip(img, 0, 255)


def _image(array: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8), "RGB")


def _local(array: np.ndarray, fn) -> Image.Image:  # type: ignore[no-untyped-def]
    """Apply ``fn`` to the middle square only (plus a 3 px spill, like GIQA-Synth)."""
    out = array.copy()
    out[29:99, 29:99] = fn(out[29:99, 29:99])
    return _image(out)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("blurry", [("blurry", ("blur",), False)]),
        ("slightly blurry", [("blurry", ("blur",), False)]),
        ("Out-of-focus", [("out of focus", ("blur",), False)]),
        ("motion-blurred", [("motion blurred", ("blur",), False)]),
        ("too dark", [("dark", ("dark",), False)]),
        ("washed out", [("washed out", ("bright",), False)]),
        ("low-contrast", [("low contrast", ("low_contrast",), False)]),
        ("pixelated", [("pixelated", ("blocky",), False)]),
        ("sharp", [("sharp", ("blur",), True)]),
        ("not sharp", [("sharp", ("blur",), False)]),
        ("not noisy", [("noisy", ("noise",), True)]),
        ("clear", [("clear", ("blur", "noise", "low_contrast", "blocky"), True)]),
        ("very noisy and dark", [("noisy", ("noise",), False), ("dark", ("dark",), False)]),
    ],
)
def test_parse_quality(text: str, expected: list) -> None:
    terms, unknown = parse_quality(text)
    assert [(t.word, t.classes, t.negate) for t in terms] == expected
    assert unknown == []


def test_unknown_words_abstain(judge: ClassicalJudge) -> None:
    image = _image(_scene())
    for word in ("beautiful", "artistic", "well composed"):
        result = judge.judge(image, WHOLE, word)
        assert result.abstained and result.p_yes == 0.5 and result.keep
        assert result.detail["unknown"]


def test_partly_known_text_uses_the_known_part(judge: ClassicalJudge) -> None:
    image = _image(_scene())
    result = judge.judge(image, WHOLE, "blurry and artistic")
    assert not result.abstained and result.detail["unknown"] == ["artistic"]
    assert result.p_yes == pytest.approx(judge.judge(image, WHOLE, "blurry").p_yes)


def test_defects_raise_their_own_word(judge: ClassicalJudge) -> None:
    base = _scene()
    rng = np.random.default_rng(1)
    clean = _image(base)
    blurred = _image(base)
    blurred.paste(clean.crop((29, 29, 99, 99)).filter(ImageFilter.GaussianBlur(3)), (29, 29))
    cases = {
        "blurry": blurred,
        "noisy": _local(base, lambda a: a + rng.normal(0, 40, a.shape)),
        "dark": _local(base, lambda a: (a / 255.0) ** 1.5 * 255 * 0.2),
        "overexposed": _local(base, lambda a: a * 2.5 + 60),
        "low contrast": _local(base, lambda a: a.mean(axis=(0, 1)) + (a - a.mean(axis=(0, 1))) * 0.15),
    }
    for word, degraded in cases.items():
        p_clean = judge.judge(clean, WHOLE, word).p_yes
        p_bad = judge.judge(degraded, WHOLE, word).p_yes
        # this toy image is not GIQA-Synth (where the curves were fitted): ask for a clear move, not a 0.5
        assert p_bad > p_clean + 0.25, (word, p_clean, p_bad)


def test_positive_word_is_negation_of_its_defect(judge: ClassicalJudge) -> None:
    image = _image(_scene())
    blurry = judge.judge(image, WHOLE, "blurry").p_yes
    assert judge.judge(image, WHOLE, "sharp").p_yes == pytest.approx(1.0 - blurry)
    assert judge.judge(image, WHOLE, "not blurry").p_yes == pytest.approx(1.0 - blurry)


def test_p_yes_in_unit_interval_and_batch_matches(judge: ClassicalJudge) -> None:
    image = _image(_scene())
    items = [(image, WHOLE, w) for w in ("blurry", "noisy", "clear", "dark", "blocky")]
    batch = judge.judge_batch(items)
    for (img, box, word), result in zip(items, batch, strict=True):
        assert 0.0 <= result.p_yes <= 1.0
        assert result.p_yes == judge.judge(img, box, word).p_yes


@pytest.mark.parametrize(
    "box",
    [Box(0.5, 0.5, 0.5, 0.5), Box(0.0, 0.0, 1.0, 1.0), Box(0.99, 0.99, 1.0, 1.0), Box(0.0, 0.4, 1.0, 0.41)],
    ids=["point", "whole image", "corner pixel", "thin strip"],
)
def test_degenerate_boxes_still_measure(judge: ClassicalJudge, box: Box) -> None:
    image = _image(_scene())
    values = measure(image, box)
    assert all(np.isfinite(v) for v in values.values())
    assert 0.0 <= judge.judge(image, box, "blurry").p_yes <= 1.0


def test_shipped_params_record_their_command_and_every_class() -> None:
    data = load_params()
    assert data["command"].startswith("python -m giqa.backends.classical_calibration")
    assert set(data["classes"]) == {"blur", "noise", "dark", "bright", "low_contrast", "blocky"}
    assert ClassicalJudge().health().ok


def test_curve_round_trip_and_missing_class_is_unhealthy(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = load_params()
    curve = Curve.from_dict(data["classes"]["blur"])
    assert Curve.from_dict(curve.to_dict()) == curve
    partial = {"classes": {"blur": curve.to_dict()}}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(partial))
    judge = ClassicalJudge(path)
    assert not judge.health().ok
    # a word whose class has no curve abstains instead of failing
    assert judge.judge(_image(_scene()), WHOLE, "noisy").abstained
