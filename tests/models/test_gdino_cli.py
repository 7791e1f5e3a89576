"""``giqa detect`` on a tiny Grounding DINO: JSON boxes per phrase, threshold flag, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from giqa.cli import app
from giqa.settings import get_settings

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from giqa.models.tiny_gdino import build_tiny_grounding_dino

    return build_tiny_grounding_dino(tmp_path_factory.mktemp("gdino-cli") / "tiny", seed=1)


def run(*args: str):  # type: ignore[no-untyped-def]
    get_settings.cache_clear()
    return CliRunner().invoke(app, list(args))


def test_detect_prints_boxes_per_phrase(model: Path, tmp_path: Path) -> None:
    from giqa.synth import generate_scene

    image = tmp_path / "scene.png"
    generate_scene(0, 3)[0].save(image)
    out = run(
        "detect",
        "--image",
        str(image),
        "--phrase",
        "red circle",
        "--phrase",
        "blue star",
        "--model",
        str(model),
        "--threshold",
        "0.0",
        "--text-threshold",
        "0.0",
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert [p["phrase"] for p in data["phrases"]] == ["red circle", "blue star"]
    assert data["box_threshold"] == 0.0 and data["size"] == [128, 128]
    for entry in data["phrases"]:
        assert entry["detections"]
        for det in entry["detections"]:
            x1, y1, x2, y2 = det["box"]
            assert 0.0 <= x1 <= x2 <= 1.0 and 0.0 <= y1 <= y2 <= 1.0 and 0.0 <= det["score"] <= 1.0
    strict = json.loads(
        run(
            "detect",
            "--image",
            str(image),
            "--phrase",
            "red circle",
            "--model",
            str(model),
            "--threshold",
            "1.0",
        ).stdout
    )
    assert len(strict["phrases"][0]["detections"]) <= len(data["phrases"][0]["detections"])


def test_detect_bad_input(model: Path, tmp_path: Path) -> None:
    missing = run("detect", "--image", str(tmp_path / "nope.png"), "--phrase", "x", "--model", str(model))
    assert missing.exit_code == 2 and "image not found" in missing.stderr
    image = tmp_path / "i.png"
    from PIL import Image

    Image.new("RGB", (32, 32)).save(image)
    no_model = run("detect", "--image", str(image), "--phrase", "x", "--model", str(tmp_path))
    assert no_model.exit_code == 2 and "cannot load the detector" in no_model.stderr
    blank = run("detect", "--image", str(image), "--phrase", "  ", "--model", str(model))
    assert blank.exit_code == 2 and "non-empty --phrase" in blank.stderr
