"""``giqa judge`` with the classical backend: JSON out, clear errors for bad input (exit code 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image, ImageFilter
from typer.testing import CliRunner

from giqa.cli import app
from giqa.settings import get_settings

pytestmark = pytest.mark.unit


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    from giqa.synth import generate_scene

    image, _ = generate_scene(0, 0)
    sharp = tmp_path / "sharp.png"
    image.save(sharp)
    blurred = tmp_path / "blurred.png"
    image.filter(ImageFilter.GaussianBlur(3)).save(blurred)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return {"sharp": sharp, "blurred": blurred, "bad": bad, "missing": tmp_path / "missing.png"}


def run(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(app, list(args), env=env)
    finally:
        get_settings.cache_clear()


def test_judge_prints_p_yes(images: dict[str, Path]) -> None:
    args = ["--box", "0", "0", "1", "1", "--quality", "blurry", "--backend", "classical"]
    sharp = run("judge", "--image", str(images["sharp"]), *args)
    blurred = run("judge", "--image", str(images["blurred"]), *args)
    assert sharp.exit_code == 0, sharp.output
    a, b = json.loads(sharp.stdout), json.loads(blurred.stdout)
    assert a["backend"] == "classical" and a["box"] == [0.0, 0.0, 1.0, 1.0] and a["quality"] == "blurry"
    assert 0.0 <= a["p_yes"] <= 1.0 and b["detail"]["p_raw"] > a["detail"]["p_raw"]
    assert isinstance(a["abstained"], bool) and isinstance(a["reason"], str)
    assert b["keep"] is (b["p_yes"] >= 0.5)


@pytest.mark.parametrize(
    ("box", "quality", "message"),
    [
        (
            ["0.1", "0.1", "0.6", "0.6"],
            "lovely",
            "no quality word the classical judge can measure in 'lovely'",
        ),
        (["0.1", "0.1", "0.6", "0.6"], "very", "no quality word"),
        (["0.5", "0.5", "0.501", "0.9"], "blurry", "too small to measure"),
    ],
    ids=["unknown word", "only a modifier", "box under 8 px"],
)
def test_what_the_judge_cannot_measure_is_a_clear_error(images, box, quality, message) -> None:  # type: ignore[no-untyped-def]
    out = run(
        "judge",
        "--image",
        str(images["sharp"]),
        "--box",
        *box,
        "--quality",
        quality,
        "--backend",
        "classical",
    )
    assert out.exit_code == 2 and out.stdout == ""
    assert message in out.stderr and "Traceback" not in out.output
    assert len(out.stderr.strip().splitlines()) == 1


def test_help_lists_the_words_it_knows() -> None:
    out = run("judge", "--help")
    assert out.exit_code == 0
    text = " ".join(out.stdout.split())
    for word in ("blurry", "noisy", "underexposed", "overexposed", "blocky", "pixelated", "sharp", "clear"):
        assert word in text, word


@pytest.mark.parametrize(
    ("image", "box", "extra", "env", "message"),
    [
        ("missing", ["0", "0", "1", "1"], [], None, "image not found"),
        ("bad", ["0", "0", "1", "1"], [], None, "cannot read"),
        ("sharp", ["0.5", "0", "0.2", "1"], [], None, "inverted"),
        ("sharp", ["0", "0", "1", "1.5"], [], None, "outside [0, 1]"),
        ("sharp", ["0.2", "0.2", "0.2", "0.2"], [], None, "no area"),
        ("sharp", ["0", "0", "1", "1"], [], {"GIQA_PIPELINE__MAX_IMAGE_PIXELS": "1000"}, "over the limit"),
        ("sharp", ["0", "0", "1", "1"], ["--backend", "qinstruct"], None, "needs a model"),
    ],
    ids=["missing", "corrupt", "inverted box", "box out of range", "empty box", "oversized", "no model"],
)
def test_bad_input_fails_clearly(images, image, box, extra, env, message) -> None:  # type: ignore[no-untyped-def]
    out = run("judge", "--image", str(images[image]), "--box", *box, "--quality", "blurry", *extra, env=env)
    assert out.exit_code == 2
    assert message in out.stderr and "Traceback" not in out.output
    assert out.stdout == ""


def test_detect_refuses_a_missing_model_folder(images: dict[str, Path], tmp_path: Path) -> None:
    # with nothing configured `giqa detect` uses the shipped demo detector (tests/models/test_train_detector)
    env = {"GIQA_PIPELINE__DETECTOR_MODEL": str(tmp_path / "no-such-gdino")}
    out = run("detect", "--image", str(images["sharp"]), "--phrase", "red circle", env=env)
    assert (
        out.exit_code == 2 and "no Grounding DINO checkpoint" in out.stderr and "Traceback" not in out.output
    )


def test_pixel_limit_is_checked_before_decoding(tmp_path: Path) -> None:
    from giqa.backends.images import ImageError, load_image

    big = tmp_path / "big.png"
    Image.new("RGB", (300, 300)).save(big)
    with pytest.raises(ImageError, match="over the limit"):
        load_image(big, max_pixels=300 * 299)
    assert load_image(big, max_pixels=300 * 300).size == (300, 300)
