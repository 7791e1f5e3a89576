"""The classical quality judge: word parsing, measurements that move the right way, abstention, params."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageFilter

from giqa.backends.classical import ClassicalJudge, Curve, load_params, parse_quality
from giqa.backends.classical_measure import measure
from giqa.backends.classical_photos import HELDOUT
from giqa.boxes import Box
from giqa.pipeline import RefineConfig, refine_tag
from giqa.ports import Detection
from giqa.schemas import Tag

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
        ("too dark", [("too dark", ("dark",), False)]),
        ("a bit too dark", [("too dark", ("dark",), False)]),
        ("washed out", [("washed out", ("bright",), False)]),
        ("low-contrast", [("low contrast", ("low_contrast",), False)]),
        ("pixelated", [("pixelated", ("pixelated", "blocky"), False)]),
        ("JPEG artifacts", [("jpeg artifacts", ("blocky",), False)]),
        ("too bright", [("too bright", ("bright",), False)]),
        ("bright", [("bright", ("dark",), True)]),
        ("sharp", [("sharp", ("blur", "blocky", "pixelated"), True)]),
        ("not sharp", [("sharp", ("blur", "blocky", "pixelated"), False)]),
        ("in focus", [("in focus", ("blur",), True)]),
        ("not noisy", [("noisy", ("noise",), True)]),
        ("clear", [("clear", ("blur", "noise", "low_contrast", "blocky", "pixelated"), True)]),
        ("very noisy and dark", [("noisy", ("noise",), False), ("dark", ("dark",), False)]),
    ],
)
def test_parse_quality(text: str, expected: list) -> None:
    terms, unknown = parse_quality(text)
    assert [(t.word, t.classes, t.negate) for t in terms] == expected
    assert unknown == []


def test_unknown_words_abstain_with_a_reason(judge: ClassicalJudge) -> None:
    image = _image(_scene())
    for word in ("beautiful", "artistic", "well composed", "", "???"):
        result = judge.judge(image, WHOLE, word)
        assert result.abstained and result.p_yes == 0.5 and result.keep
        assert result.detail["abstain"] == "unknown_word" and "no quality word" in result.reason


@pytest.mark.parametrize(
    "box",
    [Box(0.5, 0.5, 0.5, 0.5), Box(0.99, 0.99, 1.0, 1.0), Box(0.0, 0.4, 1.0, 0.41), Box(0.2, 0.2, 0.26, 0.9)],
    ids=["point", "corner pixel", "thin strip", "7 px wide"],
)
def test_crops_too_small_abstain_with_a_reason(judge: ClassicalJudge, box: Box) -> None:
    image = _image(_scene())  # 128 px: 0.06 of it is 7 px
    result = judge.judge(image, box, "blurry")
    assert result.abstained and result.p_yes == 0.5 and result.keep
    assert result.detail["abstain"] == "crop_too_small" and "too small" in result.reason
    assert all(np.isfinite(v) for v in measure(image, box).values())  # measuring it does not fail either


def _logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return float(np.log(p / (1 - p)))


def _constant(p: float) -> dict:  # type: ignore[type-arg]
    """A curve that answers ``p`` whatever it measures."""
    z = float(np.log(p / (1 - p)))
    return Curve(("mean",), (0.0,), (1.0,), (0.0,), z).to_dict()


@pytest.mark.parametrize(
    ("p", "word", "expected"),
    [
        ({"blur": 0.9}, "blurry", True),
        ({"blur": 0.1}, "blurry", False),
        ({"blur": 0.5}, "blurry", None),
        ({"blur": 0.9}, "in focus", False),
        ({"blur": 0.1}, "in focus", True),
        # a positive word: one defect surely present is enough for No; Yes needs every defect surely absent
        ({"blur": 0.9, "blocky": 0.5, "pixelated": 0.5}, "sharp", False),
        ({"blur": 0.1, "blocky": 0.5, "pixelated": 0.1}, "sharp", None),
        ({"blur": 0.1, "blocky": 0.1, "pixelated": 0.1}, "sharp", True),
        # a word of several defect classes: any one surely present says Yes
        ({"blocky": 0.5, "pixelated": 0.95}, "pixelated", True),
        ({"blocky": 0.5, "pixelated": 0.05}, "blocky", None),
        # "X and Y": only the confident terms count
        ({"blur": 0.9, "noise": 0.5}, "blurry and noisy", True),
        ({"blur": 0.5, "noise": 0.5}, "blurry and noisy", None),
    ],
)
def test_bands_decide_confident_answers_and_abstentions(p: dict, word: str, expected: bool | None) -> None:  # type: ignore[type-arg]
    classes = ("blur", "noise", "dark", "bright", "low_contrast", "blocky", "pixelated")
    params = {
        "classes": {c: _constant(p.get(c, 0.05)) for c in classes},
        "bands": {c: [0.2, 0.8] for c in classes},
    }
    result = ClassicalJudge(params).judge(_image(_scene()), WHOLE, word)
    if expected is None:
        assert result.abstained and result.p_yes == 0.5 and result.detail["abstain"] == "uncertain"
        assert "cannot tell" in result.reason
    else:
        assert not result.abstained and result.keep is expected
        assert result.detail["p_raw"] == pytest.approx(np.mean(list(result.detail["terms"].values())))


def test_partly_known_text_uses_the_known_part(judge: ClassicalJudge) -> None:
    image = _image(_scene())
    result = judge.judge(image, WHOLE, "blurry and artistic")
    assert result.detail["unknown"] == ["artistic"] and result.detail.get("abstain") != "unknown_word"
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
        p_clean = judge.judge(clean, WHOLE, word).detail["p_raw"]
        p_bad = judge.judge(degraded, WHOLE, word).detail["p_raw"]
        # this toy image is neither a photo nor GIQA-Synth: ask for a clear move of the raw curve (odds up
        # at least e-fold), not for a confident answer
        assert _logit(p_bad) > _logit(p_clean) + 1.0, (word, p_clean, p_bad)


def test_positive_word_is_negation_of_its_defect(judge: ClassicalJudge) -> None:
    image = _image(_scene())
    blurry = judge.judge(image, WHOLE, "blurry").detail["p_raw"]
    assert judge.judge(image, WHOLE, "in focus").detail["p_raw"] == pytest.approx(1.0 - blurry)
    assert judge.judge(image, WHOLE, "not blurry").detail["p_raw"] == pytest.approx(1.0 - blurry)


def test_p_yes_in_unit_interval_and_batch_matches(judge: ClassicalJudge) -> None:
    image = _image(_scene())
    items = [(image, WHOLE, w) for w in ("blurry", "noisy", "clear", "dark", "blocky")]
    batch = judge.judge_batch(items)
    for (img, box, word), result in zip(items, batch, strict=True):
        assert 0.0 <= result.p_yes <= 1.0
        assert result.p_yes == judge.judge(img, box, word).p_yes


def test_shipped_params_record_their_command_and_every_class() -> None:
    data = load_params()
    assert data["command"].startswith("python -m giqa.backends.classical_calibration")
    classes = {"blur", "noise", "dark", "bright", "low_contrast", "blocky", "pixelated"}
    assert set(data["classes"]) == classes and set(data["bands"]) == classes
    for lo, hi in data["bands"].values():
        assert lo < 0.5 < hi  # a band never makes p >= 0.5 a confident No or p < 0.5 a confident Yes
    assert data["real"]["photos"] and not set(data["real"]["photos"]) & set(HELDOUT)
    assert ClassicalJudge().health().ok


def test_whole_image_box_is_judged(judge: ClassicalJudge) -> None:
    result = judge.judge(_image(_scene()), Box(0.0, 0.0, 1.0, 1.0), "blurry")
    assert 0.0 <= result.p_yes <= 1.0 and 0.0 <= result.detail["p_raw"] <= 1.0


def test_abstention_is_recorded_in_the_stage3_audit(judge: ClassicalJudge) -> None:
    image = _image(_scene())
    boxes = [Box(0.2, 0.2, 0.8, 0.8), Box(0.5, 0.5, 0.52, 0.52)]  # the second is 2 px wide
    tag = Tag(phrase="square", quality="artistic", effect="negative")
    refined = refine_tag(image, tag, [Detection(b, 0.9) for b in boxes], judge, RefineConfig())
    assert refined.kept == boxes  # no evidence drops nothing
    audit = refined.to_dict()["judgements"]
    assert [j["abstained"] for j in audit] == [True, True]
    assert all("no quality word" in j["reason"] for j in audit)
    tag = Tag(phrase="square", quality="blurry", effect="negative")
    audit = refine_tag(image, tag, [Detection(b, 0.9) for b in boxes], judge, RefineConfig()).to_dict()
    assert audit["judgements"][1]["abstained"] and "too small" in audit["judgements"][1]["reason"]


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


# Words of the pipeline's vocabularies that name a defect these measurements cannot see: they abstain
NOT_MEASURED = {
    "banding",
    "chromatic aberration",
    "distorted",
    "distortion",
    "oversaturated",
    "moire",
    "posterized",
}


def test_every_word_the_pipeline_meets_is_known_with_its_polarity() -> None:
    from giqa.pipeline.lexicon import NEGATIVE_QUALITY, POSITIVE_QUALITY
    from giqa.synth.words import CLAIMS, NEGATIVE_WORDS, POSITIVE_WORDS

    negative = (
        set(NEGATIVE_QUALITY) | {w for ws in NEGATIVE_WORDS.values() for w in ws} | set(CLAIMS.values())
    )
    positive = set(POSITIVE_QUALITY) | set(POSITIVE_WORDS)
    for word in sorted(negative | positive):
        terms, unknown = parse_quality(word)
        if word in NOT_MEASURED:
            assert not terms and unknown, word
            continue
        assert len(terms) == 1 and not unknown, word
        assert terms[0].negate is (word in positive), word
