"""The printed Table 5 row and the comparison chart."""

from __future__ import annotations

from pathlib import Path

import pytest

from giqa.evaluation.compare import chart_values, compare_chart
from giqa.evaluation.table import format_summary, format_table

pytestmark = pytest.mark.unit

# Grounding-IQA (mPLUG-Owl2-7B) of the paper's Table 5, and a general model without boxes.
OURS = {
    "des": {"miou": 0.5955, "tag_recall": 0.5474, "bleu4": 22.87, "llm_score": 63.0},
    "vqa": {"miou": 0.6031, "tag_recall": 0.7372, "acc_y": 0.8444, "acc_w": 0.5875, "acc_total": 0.7417},
    "judge": {
        "enabled": True,
        "model": "m",
        "prompt_hash": "abc",
        "calls": 3,
        "cache_hits": 1,
        "failures": 0,
    },
    "counts": {
        "bench_items": 250,
        "des_items": 100,
        "yes_no_items": 90,
        "wwh_items": 60,
        "predictions_used": 250,
    },
}
GENERAL = {
    "des": {"miou": None, "tag_recall": None, "bleu4": 2.82, "llm_score": 47.0},
    "vqa": {"miou": None, "tag_recall": None, "acc_y": 0.4444, "acc_w": 0.5167, "acc_total": 0.4733},
    "judge": {"enabled": False},
    "counts": {"null_reasons": {"des.miou": "no response to an item with objects holds a readable box"}},
}


def test_table_5_layout_and_na() -> None:
    text = format_table([("Grounding-IQA (mPLUG-Owl2-7B)", OURS), ("LLaVA-v1.5-7B", GENERAL)])
    lines = text.splitlines()
    assert "GIQA-DES" in lines[0] and "GIQA-VQA" in lines[0]
    assert lines[1].split("|")[1].split() == ["mIoU", "Tag-Recall", "BLEU@4", "LLM-Score"]
    header_vqa = lines[1].split("|")[2]
    for name in ("mIoU", "Tag-Recall", "Acc (Y)", "Acc (W)", "Acc (Total)"):
        assert name in header_vqa
    ours = lines[3].split("|")
    assert ours[1].split() == ["0.5955", "0.5474", "22.87", "63.00"]
    assert ours[2].split() == ["0.6031", "0.7372", "0.8444", "0.5875", "0.7417"]
    general = lines[4].split("|")
    assert general[1].split() == ["N/A", "N/A", "2.82", "47.00"]
    assert len({len(line) for line in lines[1:]} - {len(lines[2])}) <= 1  # columns line up


def test_summary_says_why_metrics_are_na() -> None:
    assert "N/A des.miou: no response" in format_summary(GENERAL)
    assert "judge: none" in format_summary(GENERAL)
    assert "judge: m prompt abc (3 calls, 1 cached, 0 failed)" in format_summary(OURS)


def test_chart_values_are_on_0_to_1_with_none_for_na() -> None:
    assert chart_values(OURS)[2] == pytest.approx(0.2287)
    assert chart_values(GENERAL)[0] is None


@pytest.mark.parametrize("kind", ["radar", "bars"])
def test_compare_chart_writes_a_png(tmp_path: Path, kind: str) -> None:
    out = compare_chart([("ours", OURS), ("general", GENERAL)], tmp_path / f"c_{kind}.png", kind=kind)  # type: ignore[arg-type]
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    from PIL import Image

    with Image.open(out) as img:
        assert img.size[0] >= 600


def test_compare_refuses_nothing_and_unknown_kinds(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        compare_chart([], tmp_path / "x.png")
    with pytest.raises(ValueError):
        compare_chart([("a", OURS)], tmp_path / "x.png", kind="pie")  # type: ignore[arg-type]
