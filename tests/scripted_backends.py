"""Scripted model ports over GIQA-Synth scenes, for tests of the orchestration (not of the models).

An LLM that answers each scene's ground-truth tags sentence by sentence and one VQA question (and fails on
cue words: GARBAGE -> an output error, DOWN -> unavailable, VQAFAIL -> VQA garbage), and a detector that
returns each phrase's true box plus a jittered copy (so the IQA-Filter and Box-Merge have work to do).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any

from PIL import Image

from giqa.boxes import Box
from giqa.llm.errors import LLMOutputError, LLMUnavailableError
from giqa.ports import Detection, Health
from giqa.synth import SceneRecord
from http_servers import JoinedHTTPServer


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


def serve_scripted_llm(records: dict[str, SceneRecord]) -> tuple[JoinedHTTPServer, str]:
    """An OpenAI-compatible chat server answering as :class:`ScriptedLLM` (deterministic)."""
    llm = ScriptedLLM(records)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def reply(self, body: dict[str, Any], status: int = 200) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self.reply({"data": [{"id": "scripted"}]})

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            schema = (request.get("response_format") or {}).get("schema") or {}
            # the scripted answer of the asked description (a correction turn re-asks the same one)
            messages = [m for m in request["messages"] if m["role"] != "assistant"]
            while len(messages) > 1 and not str(messages[-1]["content"]).startswith("Description: "):
                messages.pop()
            with lock:
                answer = conform(llm.chat_json(messages, schema), schema)
            message = {"role": "assistant", "content": json.dumps(answer)}
            self.reply({"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})

    server = JoinedHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


def conform(answer: Any, schema: dict[str, Any]) -> Any:
    """A Stage-1 answer whose words fit the request's constrained schema (phrases and quality words limited
    to the sentence's own): each value becomes the shortest allowed one that contains it."""
    fields = schema.get("properties", {}).get("tags", {}).get("items", {}).get("properties", {})
    for tag in answer.get("tags", []) if isinstance(answer, dict) else []:
        for name in ("phrase", "quality"):
            allowed = fields.get(name, {}).get("enum")
            if allowed and tag.get(name) not in allowed:
                fits = sorted((a for a in allowed if str(tag.get(name, "")) in a), key=len) or allowed
                tag[name] = fits[0]
    return answer
