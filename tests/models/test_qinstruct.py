"""Q-Instruct judge backend on a tiny LLaVA (llava-hf layout, built from configs, random weights)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageFilter

from giqa.backends.qinstruct import (
    SYSTEM_PROMPT,
    QInstructJudge,
    first_token_ids,
    llava15_prompt,
    question_for,
)
from giqa.boxes import Box
from giqa.ports import QualityJudge

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def judge(tiny_llava: Path) -> QInstructJudge:
    return QInstructJudge(tiny_llava, batch_size=3)


@pytest.fixture(scope="module")
def scene() -> tuple[Image.Image, list[Box]]:
    from giqa.synth import generate_scene

    image, record = generate_scene(0, 0)
    return image, [Box(*o.box) for o in record.objects]


def test_prompt_is_llava15_with_the_quality_word(judge: QInstructJudge) -> None:
    prompt = judge.prompt("blurry")
    assert prompt == f"{SYSTEM_PROMPT} USER: <image>\nIs the image quality blurry? ASSISTANT:"
    assert "too dark" in judge.prompt("  too   dark ")
    assert question_for("noisy?") == "Is the image quality noisy?"
    assert llava15_prompt("Q?", system="") == "USER: <image>\nQ? ASSISTANT:"
    with pytest.raises(ValueError):
        question_for("  ")


def test_yes_no_tokens_are_first_tokens_of_each_spelling(judge: QInstructJudge) -> None:
    tok = judge.processor.tokenizer
    assert set(tok.convert_ids_to_tokens(judge.yes_ids)) == {"Yes", " Yes"}
    assert set(tok.convert_ids_to_tokens(judge.no_ids)) == {"No", " No"}
    assert first_token_ids(tok, ("Yes",)) == {tok.convert_tokens_to_ids("Yes")}


def test_p_yes_is_a_probability_from_the_two_logits(
    judge: QInstructJudge, scene: tuple[Image.Image, list[Box]]
) -> None:
    import math

    assert isinstance(judge, QualityJudge) and judge.health().ok
    image, boxes = scene
    result = judge.judge(image, boxes[0], "blurry")
    assert 0.0 <= result.p_yes <= 1.0 and not result.abstained
    d = result.detail
    assert result.p_yes == pytest.approx(1.0 / (1.0 + math.exp(d["logit_no"] - d["logit_yes"])))


def test_batched_equals_one_by_one(judge: QInstructJudge, scene: tuple[Image.Image, list[Box]]) -> None:
    image, boxes = scene
    # different words give prompts of different lengths (left padding) and crops of different sizes
    items = [(image, box, word) for box in boxes for word in ("blurry", "too dark and noisy")]
    batched = judge.judge_batch(items)  # batch_size 3: several chunks, the last one short
    assert len(batched) == len(items)
    for item, got in zip(items, batched, strict=True):
        alone = judge.judge(*item)
        assert got.p_yes == pytest.approx(alone.p_yes, abs=1e-5)
        assert got.detail["logit_yes"] == pytest.approx(alone.detail["logit_yes"], abs=1e-4)


def test_the_crop_decides(judge: QInstructJudge, scene: tuple[Image.Image, list[Box]]) -> None:
    image, boxes = scene
    a = judge.judge(image, boxes[0], "blurry").detail["logit_yes"]
    b = judge.judge(image, boxes[1], "blurry").detail["logit_yes"]
    blurred = image.filter(ImageFilter.GaussianBlur(4))
    c = judge.judge(blurred, boxes[0], "blurry").detail["logit_yes"]
    assert a != pytest.approx(b, abs=1e-6)
    assert a != pytest.approx(c, abs=1e-6)
    # pixels outside the box do not matter: only the crop is shown
    outside = image.copy()
    assert boxes[0].x1 * image.width > 6 or boxes[0].y1 * image.height > 6  # the corner lies outside the box
    outside.paste((0, 0, 0), (0, 0, 4, 4))
    assert judge.judge(outside, boxes[0], "blurry").detail["logit_yes"] == pytest.approx(a, abs=1e-6)


def test_empty_batch_and_bad_path(judge: QInstructJudge, tmp_path: Path) -> None:
    assert judge.judge_batch([]) == []
    with pytest.raises(ValueError, match="crops"):
        judge.judge_crops([Image.new("RGB", (8, 8))], [])
    with pytest.raises(Exception, match="config.json|does not exist"):
        QInstructJudge(tmp_path / "missing")


def test_cli_judge_with_qinstruct(
    tiny_llava: Path, tmp_path: Path, scene: tuple[Image.Image, list[Box]]
) -> None:
    import json

    from typer.testing import CliRunner

    from giqa.cli import app
    from giqa.settings import get_settings

    image, boxes = scene
    path = tmp_path / "scene.png"
    image.save(path)
    get_settings.cache_clear()
    box = [str(v) for v in boxes[0].as_tuple()]
    out = CliRunner().invoke(
        app,
        [
            "judge",
            "--image",
            str(path),
            "--box",
            *box,
            "--quality",
            "noisy",
            "--backend",
            "qinstruct",
            "--model",
            str(tiny_llava),
        ],
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["backend"] == "qinstruct" and 0.0 <= data["p_yes"] <= 1.0
    assert data["detail"]["quality"] == "noisy" and data["detail"]["yes_ids"]
