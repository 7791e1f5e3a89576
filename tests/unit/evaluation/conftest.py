"""A small hand-written bench (2 DES, 2 yes/no, 2 what/why/how) and the real MiniLM similarity."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from giqa.metrics.similarity import MiniLMSimilarity

RED = [0.1, 0.1, 0.4, 0.5]
SKY = [0.0, 0.0, 1.0, 0.3]
CANDLE_1 = [0.6, 0.5, 0.7, 0.9]
CANDLE_2 = [0.8, 0.5, 0.9, 0.9]

BENCH: list[dict[str, Any]] = [
    {
        "id": "d1",
        "task": "des",
        "mode": "grounding",
        "image": "img/d1.png",
        "question": "Assess the quality of this image and point out where the key objects affecting it are.",
        "answer": "The overall quality is fair. The [red circle](<0.10, 0.10, 0.40, 0.50>) is blurry, "
        "while the [sky](<0.00, 0.00, 1.00, 0.30>) is clean and sharp.",
        "objects": [{"phrase": "red circle", "box": RED}, {"phrase": "sky", "box": SKY}],
    },
    {
        "id": "d2",
        "task": "des",
        "mode": "grounding",
        "image": "img/d2.png",
        "question": "Describe the image quality in detail.",
        "answer": "The image is dark and noisy. "
        "The [candles](<0.60, 0.50, 0.70, 0.90>, <0.80, 0.50, 0.90, 0.90>) are overexposed.",
        "objects": [{"phrase": "candles", "box": CANDLE_1}, {"phrase": "candles", "box": CANDLE_2}],
    },
    {
        "id": "y1",
        "task": "vqa",
        "qtype": "yes_no",
        "mode": "referring",
        "image": "img/d1.png",
        "question": "Is the [red circle](<0.10, 0.10, 0.40, 0.50>) blurry?",
        "answer": "Yes.",
        "objects": [],
    },
    {
        "id": "y2",
        "task": "vqa",
        "qtype": "yes_no",
        "mode": "referring",
        "image": "img/d1.png",
        "question": "Is the [sky](<0.00, 0.00, 1.00, 0.30>) noisy?",
        "answer": "No.",
        "objects": [],
    },
    {
        "id": "w1",
        "task": "vqa",
        "qtype": "what",
        "mode": "grounding",
        "image": "img/d1.png",
        "question": "What is the most degraded object?",
        "answer": "The [red circle](<0.10, 0.10, 0.40, 0.50>).",
        "objects": [{"phrase": "red circle", "box": RED}],
    },
    {
        "id": "w2",
        "task": "vqa",
        "qtype": "why",
        "mode": "referring",
        "image": "img/d2.png",
        "question": "Why is the image quality low?",
        "answer": "Because it is dark and noisy.",
        "objects": [],
    },
]


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8"
    )
    return path


@pytest.fixture()
def bench_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "bench.jsonl", BENCH)


@pytest.fixture(scope="session")
def minilm() -> MiniLMSimilarity:
    return MiniLMSimilarity()
