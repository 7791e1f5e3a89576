"""``giqa eval --html``: one page with the metric table and each item's truth and predicted boxes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from giqa.cli import app
from giqa.evaluation.html_report import GT_COLOUR, PRED_COLOUR, QUESTION_COLOUR

from .conftest import BENCH, write_jsonl

pytestmark = pytest.mark.unit


def _images(root: Path) -> None:
    for item in BENCH:
        path = root / item["image"]
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 30), (90, 90, 90)).save(path)


def _eval_page(bench: Path, preds: Path, page: Path, *extra: str) -> str:
    """Run ``giqa eval --no-judge --html page`` and return the page."""
    out = page.parent / "r.json"
    args = ["eval", "--bench", str(bench), "--predictions", str(preds), "--out", str(out), "--no-judge"]
    result = CliRunner().invoke(app, [*args, "--quiet", "--html", str(page), *extra])
    assert result.exit_code == 0, result.output
    return page.read_text(encoding="utf-8")


def test_page_shows_metrics_truth_prediction_and_question_boxes(bench_file: Path, tmp_path: Path) -> None:
    _images(bench_file.parent)
    preds = write_jsonl(
        tmp_path / "m.jsonl",
        [
            {"id": "d1", "response": "The [red circle](<0.10, 0.10, 0.40, 0.50>) is blurry."},
            {"id": "y1", "response": "Yes."},
        ],
    )
    page = tmp_path / "out" / "page.html"
    text = _eval_page(bench_file, preds, page, "--html-limit", "3")
    assert "GIQA-Bench metrics" in text and "Tag-Recall" in text
    assert text.count("<section>") == 3  # the limit
    first = text.split("<section>")[1]
    # d1: two truth boxes and the one predicted box, each a rect of its colour; images are embedded
    assert len(re.findall(f'stroke="{GT_COLOUR}"', first)) == 2
    assert len(re.findall(f'stroke="{PRED_COLOUR}"', first)) == 1
    assert "data:image/png;base64," in first
    third = text.split("<section>")[3]  # y1: a referring question, its box dashed
    assert f'stroke="{QUESTION_COLOUR}" stroke-width="2" stroke-dasharray' in third
    assert "(no answer)" in text.split("<section>")[2]  # d2 was not answered
    assert not list(page.parent.glob(".*tmp*"))


def test_page_escapes_model_text(bench_file: Path, tmp_path: Path) -> None:
    _images(bench_file.parent)
    preds = write_jsonl(tmp_path / "m.jsonl", [{"id": "d1", "response": "<script>alert(1)</script>"}])
    assert "<script>" not in _eval_page(bench_file, preds, tmp_path / "p.html")
