"""The predictions runner around failures: checked before any model work, nothing written until an answer
exists, an --overwrite that fails keeps the old file, a resume that starts on a fresh line.

The model is a scripted :class:`giqa.ports.GroundedVLM` (answers or fails on cue); the runner, the bench
reader and the files are the real code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from PIL import Image

from giqa.files import OutputPathError
from giqa.llm.errors import LLMUnavailableError
from giqa.ports import Health
from giqa.predict.runner import PredictError, plan_predictions, run_plan, run_predictions

pytestmark = pytest.mark.unit


class ScriptedVLM:
    """Answers "Yes." to every question; raises once ``fail_at`` batches have been answered."""

    model_name = "scripted"

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at
        self.batches = 0

    def health(self) -> Health:
        return Health(True)

    def answer(self, image: Image.Image, question: str, *, max_new_tokens: int = 256) -> str:
        return self.answer_batch([(image, question)])[0]

    def answer_batch(
        self, items: Sequence[tuple[Image.Image, str]], *, max_new_tokens: int = 256
    ) -> list[str]:
        if self.fail_at is not None and self.batches >= self.fail_at:
            raise LLMUnavailableError("chat: http://x/v1 failed 4 times; last error: ConnectError")
        self.batches += 1
        return ["Yes." for _ in items]


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    Image.new("RGB", (16, 16)).save(tmp_path / "images" / "a.png")
    rows = [
        {"id": f"q{i}", "task": "vqa", "qtype": "yes_no", "mode": "none", "image": "images/a.png",
         "question": "Is the image dark?", "answer": "Yes."}
        for i in range(5)
    ]  # fmt: skip
    path = tmp_path / "bench.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


def test_a_model_that_fails_before_any_answer_leaves_no_file(bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.jsonl"
    with pytest.raises(LLMUnavailableError):
        run_predictions(bench, ScriptedVLM(fail_at=0), out, batch_size=2, progress=False)
    assert not out.exists()


def test_answers_before_a_failure_stay_and_resume_goes_on(bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.jsonl"
    with pytest.raises(LLMUnavailableError):
        run_predictions(bench, ScriptedVLM(fail_at=1), out, batch_size=2, progress=False)
    assert ids(out) == ["q0", "q1"]
    done = run_predictions(bench, ScriptedVLM(), out, batch_size=2, resume=True, progress=False)
    assert (done.already_done, done.answered) == (2, 3) and ids(out) == ["q0", "q1", "q2", "q3", "q4"]


def test_a_failed_overwrite_keeps_the_old_answers(bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.jsonl"
    out.write_text('{"id": "q0", "response": "old"}\n')
    with pytest.raises(LLMUnavailableError):
        run_predictions(bench, ScriptedVLM(fail_at=0), out, overwrite=True, progress=False)
    assert out.read_text() == '{"id": "q0", "response": "old"}\n'
    run_predictions(bench, ScriptedVLM(), out, overwrite=True, progress=False)
    assert ids(out) == [f"q{i}" for i in range(5)]


def test_an_empty_output_left_by_a_crash_does_not_block_a_rerun(bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.jsonl"
    out.write_bytes(b"")
    assert run_predictions(bench, ScriptedVLM(), out, progress=False).answered == 5


def test_resume_cuts_a_torn_line_and_a_missing_newline(bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.jsonl"
    out.write_bytes(b'{"id": "q0", "response": "a"}\n{"id": "q1", "response": "b"}')  # no final newline
    run_predictions(bench, ScriptedVLM(), out, resume=True, progress=False)
    assert ids(out) == ["q0", "q1", "q2", "q3", "q4"]
    out.write_bytes(b'{"id": "q0", "response": "a"}\n{"id": "q1", "resp')  # torn by a crash
    run_predictions(bench, ScriptedVLM(), out, resume=True, progress=False)
    assert ids(out) == ["q0", "q1", "q2", "q3", "q4"]


def test_the_plan_checks_everything_and_writes_nothing(bench: Path, tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    with pytest.raises(OutputPathError, match="is a folder"):
        plan_predictions(bench, tmp_path / "folder")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(bench.read_text().replace("images/a.png", "images/gone.png", 1))
    with pytest.raises(PredictError, match="1 bench image"):
        plan_predictions(bad, tmp_path / "p.jsonl")
    plan = plan_predictions(bench, tmp_path / "new" / "p.jsonl", limit=3)
    assert [it.id for it in plan.todo] == ["q0", "q1", "q2"] and not (tmp_path / "new").exists()
    run_plan(plan, ScriptedVLM(), progress=False)
    assert ids(tmp_path / "new" / "p.jsonl") == ["q0", "q1", "q2"]
