"""The judge against the real embedded SmolLM2-135M server: what is robust about a 135M judge.

Its scores carry little meaning (see the evaluator's report: it rates almost everything 4), so these tests
assert the contract, not the quality: integers 0..4 through structured output, every item scored, the
judge's identity in the report, and a second run answered from the cache without one LLM call.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from giqa.cli import app
from giqa.evaluation.cache import JudgeCache
from giqa.evaluation.judge import Judge, JudgeRequest, Prompts

pytestmark = pytest.mark.llm

BENCH = [
    {
        "id": "d1",
        "task": "des",
        "mode": "grounding",
        "image": "i.png",
        "question": "Assess the quality of this image.",
        "answer": "The [red circle](<0.10, 0.10, 0.40, 0.50>) is blurry; the rest of the image is sharp.",
        "objects": [{"phrase": "red circle", "box": [0.1, 0.1, 0.4, 0.5]}],
    },
    {
        "id": "w1",
        "task": "vqa",
        "qtype": "why",
        "mode": "referring",
        "image": "i.png",
        "question": "Why is the [red circle](<0.10, 0.10, 0.40, 0.50>) of low quality?",
        "answer": "Because it is blurry.",
        "objects": [],
    },
    {
        "id": "y1",
        "task": "vqa",
        "qtype": "yes_no",
        "mode": "referring",
        "image": "i.png",
        "question": "Is the [red circle](<0.10, 0.10, 0.40, 0.50>) sharp?",
        "answer": "No.",
        "objects": [],
    },
]
PREDICTIONS = [
    {"id": "d1", "response": "The [red circle](<0.1, 0.1, 0.4, 0.5>) looks blurry, the background is sharp."},
    {"id": "w1", "response": "It is out of focus."},
    {"id": "y1", "response": "No."},
]


def test_scores_are_integers_and_cached(llm_client: object, tmp_path: Path) -> None:
    requests = [
        JudgeRequest("des", "Assess the quality.", "The red circle is blurry.", "The red circle is blurry."),
        JudgeRequest(
            "des", "Assess the quality.", "The red circle is blurry.", "The sky is bright and noisy."
        ),
        JudgeRequest("vqa", "Why is it of low quality?", "Because it is blurry.", "It is out of focus."),
    ]
    judge = Judge(llm_client, cache=JudgeCache(tmp_path), concurrency=2)  # type: ignore[arg-type]
    first = judge.score_many(requests, progress=False)
    assert all(isinstance(r.score, int) and 0 <= r.score <= 4 for r in first)
    assert judge.info()["failures"] == sum(1 for r in first if r.error) and judge.info()["calls"] >= 3
    again = Judge(llm_client, cache=JudgeCache(tmp_path), concurrency=2)  # type: ignore[arg-type]
    second = again.score_many(requests, progress=False)
    scored = [r for r in first if not r.error]
    assert again.info()["calls"] == len(first) - len(scored)  # only failures (never cached) are asked again
    assert [r.score for r in second if r.cached] == [r.score for r in scored]


def test_eval_cli_with_the_judge_url_then_from_cache(llm_server: object, tmp_path: Path) -> None:
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps(r) + "\n" for r in BENCH))
    preds = tmp_path / "pred.jsonl"
    preds.write_text("".join(json.dumps(r) + "\n" for r in PREDICTIONS))
    url = llm_server.url  # type: ignore[attr-defined]

    def run(out: Path) -> dict:
        args = ["eval", "--bench", str(bench), "--predictions", str(preds), "--out", str(out), "--quiet"]
        args += ["--judge-url", url, "--judge-dialect", "json_object", "--cache-dir", str(tmp_path / "cache")]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        return json.loads(out.read_text())

    first = run(tmp_path / "r1.json")
    assert first["judge"]["enabled"] and first["judge"]["prompt_hash"] == Prompts.load().hash
    assert first["judge"]["url"] == url and first["judge"]["model"]
    assert first["des"]["llm_score"] in {0.0, 25.0, 50.0, 75.0, 100.0}  # one description: 25 x an integer
    assert first["vqa"]["acc_w"] in {0.0, 0.25, 0.5, 0.75, 1.0}
    assert first["vqa"]["acc_y"] == 1.0
    assert first["vqa"]["acc_total"] == pytest.approx((1.0 + first["vqa"]["acc_w"]) / 2)
    second = run(tmp_path / "r2.json")
    if first["judge"]["failures"] == 0:
        assert second["judge"]["calls"] == 0 and second["judge"]["cache_hits"] == 2
    assert (second["des"], second["vqa"]) == (first["des"], first["vqa"])
