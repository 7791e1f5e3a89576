"""Scripted model ports over GIQA-Synth scenes, for tests of the orchestration (not of the models).

An LLM that answers each scene's ground-truth tags sentence by sentence and one VQA question (and fails on
cue words: GARBAGE -> an output error, DOWN -> unavailable, VQAFAIL -> VQA garbage), and a detector that
returns each phrase's true box plus a jittered copy (so the IQA-Filter and Box-Merge have work to do).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL import Image

from giqa.boxes import Box
from giqa.llm.errors import LLMOutputError, LLMUnavailableError
from giqa.ports import Detection, Health
from giqa.synth import SceneRecord


class ScriptedLLM:
    """Answers Stage 1 with the true tags of the asked sentence and VQA with one question; fails on cue
    words."""

    model_name = "scripted"

    def __init__(self, records: dict[str, SceneRecord]) -> None:
        self.by_description = {r.description: r for r in records.values()}
        self.calls = 0

    def health(self) -> Health:
        return Health(True)

    def chat(self, messages: Sequence[dict[str, Any]], **_: Any) -> str:
        return ""

    def chat_json(self, messages: Sequence[dict[str, Any]], schema: dict[str, Any], **_: Any) -> Any:
        self.calls += 1
        text = messages[-1]["content"].removeprefix("Description: ").split("\n")[0]
        if "GARBAGE" in text:
            raise LLMOutputError("chat_json: no valid answer in 3 tries; last problem: not JSON", raw="<<")
        if "DOWN" in text:
            raise LLMUnavailableError("chat_json: http://x/v1 failed 3 times; last error: ConnectError")
        record = next(r for d, r in self.by_description.items() if text in d)
        if schema["title"] == "quality_tags":  # Stage 1 asks sentence by sentence
            return {"tags": [t.model_dump() for t in record.tags if t.phrase.lower() in text.lower()]}
        if "VQAFAIL" in record.description:
            raise LLMOutputError("vqa garbage")
        first = record.tags[0]
        return {
            "qa": [{"type": "yes_no", "question": f"Is the {first.phrase} {first.quality}?", "answer": "No"}]
        }


class TruthDetector:
    def __init__(self, records: dict[str, SceneRecord]) -> None:
        self.boxes = {o.phrase: Box(*o.box) for r in records.values() for o in r.objects}

    def health(self) -> Health:
        return Health(True)

    def detect(self, image: Image.Image, phrases: Sequence[str]) -> list[list[Detection]]:
        out = []
        for phrase in phrases:
            box = self.boxes[phrase]
            jitter = Box(
                box.x1, box.y1, min(1.0, box.x2 + 0.01), box.y2
            )  # covers the box: Box-Merge folds it
            out.append([Detection(box, 0.9, phrase), Detection(jitter, 0.5, phrase)])
        return out

    def detect_batch(self, images: Sequence[Image.Image], phrases: Sequence[Sequence[str]]) -> Any:
        return [self.detect(i, p) for i, p in zip(images, phrases, strict=True)]
