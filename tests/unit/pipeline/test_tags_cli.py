"""``giqa tags`` and ``giqa annotate`` on human text: the README example, and one length limit for both.

The commands are the real ones (typer, settings, validation, the clause rules, the orchestrator and the
export); only the model roles are stand-ins, so no server starts: an LLM that answers like the embedded
135M model often does (the first candidate object only) and backends that must never be reached.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from giqa.cli import annotate as annotate_module
from giqa.cli import app
from giqa.settings import get_settings

pytestmark = pytest.mark.unit

runner = CliRunner()
README_EXAMPLE = "The red circle is blurry, the blue square is sharp."


class FirstCandidateLLM:
    model_name = "scripted"

    def __init__(self) -> None:
        self.calls = 0

    def chat_json(self, messages: Sequence[dict[str, Any]], schema: dict[str, Any], **_: Any) -> Any:
        self.calls += 1
        item = schema["properties"]["tags"]["items"]["properties"]
        if "enum" not in item["phrase"]:
            return {"tags": []}
        return {"tags": [{"phrase": item["phrase"]["enum"][0], "quality": "x", "effect": "negative"}]}


class Unreachable:
    """A detector/judge the over-long sample must never reach."""

    def health(self) -> Any:
        raise AssertionError("backend used")

    def detect(self, *_: Any) -> Any:
        raise AssertionError("detector called for a refused description")

    def judge_batch(self, *_: Any) -> Any:
        raise AssertionError("judge called for a refused description")


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[FirstCandidateLLM]:
    scripted = FirstCandidateLLM()

    @contextlib.contextmanager
    def chat_llm(_settings: Any, _url: str | None) -> Iterator[FirstCandidateLLM]:
        yield scripted

    monkeypatch.setattr(annotate_module, "chat_llm", chat_llm)
    monkeypatch.setenv("GIQA_ANNOTATE__MAX_DESCRIPTION_CHARS", "120")
    get_settings.cache_clear()
    yield scripted
    get_settings.cache_clear()


def test_readme_example_tags_both_objects(llm: FirstCandidateLLM) -> None:
    result = runner.invoke(app, ["tags", "--description", README_EXAMPLE])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [(t["phrase"], t["quality"], t["effect"]) for t in out["tags"]] == [
        ("red circle", "blurry", "negative"),
        ("blue square", "sharp", "positive"),
    ]
    assert llm.calls == 2  # one request per clause


@pytest.mark.parametrize(("length", "refused"), [(120, False), (121, True), (100_000, True)])
def test_tags_refuses_a_description_over_the_limit(
    llm: FirstCandidateLLM, length: int, refused: bool
) -> None:
    description = ("The red circle is blurry. " * 4000)[: length - 1] + "."
    result = runner.invoke(app, ["tags", "--description", description])
    if not refused:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert message == (
        f"error: description has {length:,} characters, over the limit of 120 "
        "(setting annotate.max_description_chars)"
    )
    assert "\n" not in message and "Traceback" not in result.output
    assert llm.calls == 0  # refused before any model call


def test_annotate_records_an_over_long_description_as_a_failed_sample(
    llm: FirstCandidateLLM, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from giqa.backends import factory

    monkeypatch.setattr(factory, "make_detector", lambda *_a, **_k: Unreachable())
    monkeypatch.setattr(factory, "make_judge", lambda *_a, **_k: Unreachable())
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (32, 32)).save(images / "a.png")
    descriptions = tmp_path / "in.jsonl"
    long_text = "The red circle is blurry. " * 10
    descriptions.write_text(json.dumps({"image": "a.png", "description": long_text}) + "\n")
    out = tmp_path / "out"
    args = ["annotate", "--images", str(images), "--descriptions", str(descriptions), "--out", str(out)]
    result = runner.invoke(app, [*args, "--detector", str(tmp_path)])
    assert result.exit_code == 1, result.output  # the run ends normally; no sample was annotated
    assert "annotated 1 samples (1 failed, 0 skipped as done)" in result.stdout
    (record,) = [json.loads(line) for line in (out / "audit.jsonl").read_text().splitlines()]
    assert record["status"] == "failed" and record["failure"]["stage"] == "input"
    assert record["failure"]["reason"] == (
        f"in.jsonl line 1: description has {len(long_text):,} characters, over the limit of 120"
    )
    assert llm.calls == 0
