"""Stage 1 with the real embedded SmolLM2-135M on human text: the README example and part of the fixture."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from giqa.pipeline.tags import extract_tags

pytestmark = pytest.mark.llm

ROOT = Path(__file__).resolve().parents[2]


def load_bench() -> Any:
    spec = importlib.util.spec_from_file_location("stage1_bench", ROOT / "bench" / "stage1_quality.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("stage1_bench", module)
    spec.loader.exec_module(module)
    return module


def test_readme_example_tags_both_clauses(llm_client) -> None:
    result = extract_tags(llm_client, "The red circle is blurry, the blue square is sharp.")
    assert [(t.phrase, t.effect) for t in result.tags] == [
        ("red circle", "negative"),
        ("blue square", "positive"),
    ]


def test_human_fixture_precision_and_recall_with_the_model(llm_client) -> None:
    bench = load_bench()
    items = [i for i in bench.fixture_items(bench.FIXTURE) if i.split == "blind"][:10]
    scores = []
    for item in items:
        result = extract_tags(llm_client, item.description)
        scores.append(bench.score(item, [(t.phrase, t.quality, t.effect) for t in result.tags]))
        for tag in result.tags:
            assert tag.phrase in item.description and tag.quality in item.description
    row = bench.table_row("blind[:10]", scores, 0.0, 0)
    assert row["precision"] >= 0.8 and row["recall"] >= 0.8, row
