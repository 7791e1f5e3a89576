"""A small hand-written bench (2 DES, 2 yes/no, 2 what/why/how) and the real MiniLM similarity."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from giqa.evaluation.judge import SCORE_SCHEMA
from giqa.metrics.similarity import MiniLMSimilarity
from giqa.ports import Health

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


class ScriptedLLM:
    """Answers chat_json from a script (a list of replies, or exceptions to raise), recording calls."""

    def __init__(self, replies: Sequence[Any], *, delay_s: float = 0.0, name: str = "scripted") -> None:
        self.replies = list(replies)
        self.calls: list[list[dict[str, Any]]] = []
        self.delay_s = delay_s
        self.name = name
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    @property
    def model_name(self) -> str:
        return self.name

    def chat(self, messages: Any, *, temperature: float = 0.0, max_tokens: int = 512) -> str:
        raise NotImplementedError

    def chat_json(
        self, messages: Any, schema: dict[str, Any], *, temperature: float = 0.0, max_tokens: int = 512
    ) -> Any:
        assert schema == SCORE_SCHEMA and temperature == 0.0
        with self._lock:
            self.calls.append(list(messages))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            reply = self.replies.pop(0) if self.replies else {"score": 2}
        time.sleep(self.delay_s)
        with self._lock:
            self.in_flight -= 1
        if isinstance(reply, Exception):
            raise reply
        return reply

    def health(self) -> Health:
        return Health(True)
