"""The playground page at / in a real headless Chromium (Debian's, driven by Playwright): upload an image,
see the description with its boxes drawn over it, the score and an answer. Skips where chromium is absent
(``scripts/ensure_browser.sh`` installs it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from inference_helpers import API_KEY, CHROMIUM, Served, drive_playground

pytestmark = pytest.mark.models


def test_the_playground_shows_boxes_score_and_answer(served: Served, tmp_path: Path) -> None:
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: run scripts/ensure_browser.sh (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="the playwright package (dev extra) is not installed")
    from giqa.synth import generate_scene

    image, _record = generate_scene(0, 3)
    path = tmp_path / "scene.png"
    image.save(path)
    shown = drive_playground(served.url, API_KEY, path, tmp_path / "playground.png")
    assert shown["error"] == "" and shown["console_errors"] == [], shown
    assert shown["model"] == "Model: giqa-demo-vlm"  # /v1/models with the typed key
    assert shown["text"] and "<" not in str(shown["text"]) and shown["objects"] >= 1
    assert shown["boxed_pixels"] > 20, shown  # the first object's box is drawn on the canvas
    assert "/ 5" in str(shown["score"]) and "P(Yes)" in str(shown["answer"])
    assert (tmp_path / "playground.png").stat().st_size > 10_000
