"""Does the embedded judge separate right answers from wrong ones? Ground truth vs shuffled answers.

Slow (about 3 s per judge call on 2 cores). It asserts only what holds for any judge (valid integer scores,
nothing failing silently) and reports the separation in pytest's warnings summary: the mean score of each
side and the AUC (the chance that a right answer outscores a wrong one; 0.5 = no separation). SmolLM2-135M
measured AUC 0.500: it rates every answer 4. The measurement applies to any judge client (e.g. vLLM, Llama-3).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from giqa.cli import app
from giqa.evaluation.judge import Judge, JudgeRequest
from giqa.metrics.text import plain_text

pytestmark = [pytest.mark.llm, pytest.mark.slow]

N_DES, N_WWH = 8, 6


def auc(right: list[int], wrong: list[int]) -> float:
    pairs = [(a, b) for a in right for b in wrong]
    return (sum(a > b for a, b in pairs) + 0.5 * sum(a == b for a, b in pairs)) / len(pairs)


def test_auc_helper() -> None:
    assert auc([4, 4], [0, 0]) == 1.0 and auc([2], [2]) == 0.5 and auc([0], [4]) == 0.0


def test_ground_truth_vs_shuffled(llm_client: object, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["synth", "bench", "--seed", "0", "--out", str(tmp_path), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "bench.jsonl").read_text().splitlines()]
    groups = {
        "des": [r for r in rows if r["task"] == "des"][:N_DES],
        "vqa": [r for r in rows if r["task"] == "vqa" and r["qtype"] != "yes_no"][:N_WWH],
    }
    judge = Judge(llm_client, concurrency=2)  # type: ignore[arg-type]
    for kind, items in groups.items():
        wrong = (
            items[1:] + items[:1]
        )  # each item gets its neighbour's answer: fluent, but about another image

        def request(item: dict, response: str, kind: str = kind) -> JudgeRequest:
            q, ref = plain_text(item["question"]), plain_text(item["answer"])
            return JudgeRequest(kind, q, ref, plain_text(response))  # type: ignore[arg-type]

        right = [r.score for r in judge.score_many([request(r, r["answer"]) for r in items], progress=False)]
        pairs = zip(items, wrong, strict=True)
        shuffled = [
            r.score for r in judge.score_many([request(r, w["answer"]) for r, w in pairs], progress=False)
        ]
        assert all(isinstance(s, int) and 0 <= s <= 4 for s in right + shuffled)
        # shown in pytest's warnings summary: the figure this test exists to measure
        warnings.warn(
            f"{judge.model} {kind}: ground truth mean {sum(right) / len(items):.2f}, shuffled mean "
            f"{sum(shuffled) / len(items):.2f}, AUC {auc(right, shuffled):.3f}",
            stacklevel=1,
        )
    assert judge.info()["failures"] == 0
