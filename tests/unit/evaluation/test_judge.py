"""The judge without a server: prompt snapshots (a prompt never drifts silently), score parsing, cache,
retries and concurrency, using a scripted ChatLLM stand-in for the server (the judge is the part under test).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from giqa.evaluation.cache import JudgeCache, cache_key
from giqa.evaluation.judge import Judge, JudgeRequest, Prompts, read_score

from .conftest import ScriptedLLM

pytestmark = pytest.mark.unit

SNAPSHOTS = Path(__file__).parent / "snapshots"


def rendered(kind: str) -> str:
    messages = Prompts.load().render(
        kind,  # type: ignore[arg-type]
        question="Why is the image quality low?",
        reference="Because the sky is noisy.",
        response="The sky has a lot of noise.",
    )
    return "\n----\n".join(f"[{m['role']}]\n{m['content']}" for m in messages) + "\n"


# A changed prompt file fails here: rewrite the snapshots and prompt_hash.txt on purpose, knowing that scores
# from the old prompt no longer compare with the new ones.
@pytest.mark.parametrize("kind", ["des", "vqa"])
def test_rendered_prompts_match_their_snapshots(kind: str) -> None:
    snapshot = SNAPSHOTS / f"judge_{kind}.txt"
    assert rendered(kind) == snapshot.read_text(encoding="utf-8"), (
        f"the {kind} judge prompt changed; if on purpose, rewrite {snapshot} (old scores no longer compare)"
    )


def test_prompt_hash_is_pinned() -> None:
    assert Prompts.load().hash == (SNAPSHOTS / "prompt_hash.txt").read_text().strip()


def test_prompt_hash_changes_with_any_part() -> None:
    p = Prompts.load()
    assert Prompts(p.system + " ", p.des, p.vqa).hash != p.hash
    assert Prompts(p.system, p.des, p.vqa + "x").kind_hash("des") == p.kind_hash("des")
    assert Prompts(p.system, p.des, p.vqa + "x").kind_hash("vqa") != p.kind_hash("vqa")


def test_inputs_with_dollars_and_braces_are_filled_in_verbatim() -> None:
    messages = Prompts.load().render("des", question="q", reference="costs $5 {x}", response="${oops}")
    assert "costs $5 {x}" in messages[1]["content"] and "${oops}" in messages[1]["content"]


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ({"score": 3}, 3),
        ({"score": "4"}, 4),
        ({"score": 2.0}, 2),
        ('{"score": 0}', 0),
        ({"score": 5}, None),
        ({"score": -1}, None),
        ({"score": 2.5}, None),
        ({"score": True}, None),
        ({"rating": 3}, None),
        ("three", None),
        (None, None),
        ([3], None),
    ],
)
def test_read_score(reply: Any, score: int | None) -> None:
    assert read_score(reply) == score


REQ = JudgeRequest("vqa", "Why is the image quality low?", "Because the sky is noisy.", "The sky is noisy.")


def test_cache_makes_rescoring_free(tmp_path: Path) -> None:
    llm = ScriptedLLM([{"score": 3}])
    judge = Judge(llm, cache=JudgeCache(tmp_path))
    assert judge.score(REQ).score == 3
    again = Judge(ScriptedLLM([]), cache=JudgeCache(tmp_path))  # a new process, same cache folder
    result = again.score(REQ)
    assert result.score == 3 and result.cached and result.attempts == 0
    assert again.info()["calls"] == 0 and again.info()["cache_hits"] == 1


def test_cache_key_separates_models_prompts_and_inputs(tmp_path: Path) -> None:
    cache = JudgeCache(tmp_path)
    Judge(ScriptedLLM([{"score": 4}], name="judge-a"), cache=cache).score(REQ)
    other_model = ScriptedLLM([{"score": 1}], name="judge-b")
    assert Judge(other_model, cache=cache).score(REQ).score == 1 and len(other_model.calls) == 1
    other_input = ScriptedLLM([{"score": 0}], name="judge-a")
    changed = JudgeRequest(REQ.kind, REQ.question, REQ.reference, "Something else.")
    assert Judge(other_input, cache=cache).score(changed).score == 0
    assert cache_key("m", "p", {"a": "1"}) != cache_key("m", "q", {"a": "1"})


def test_garbage_is_retried_with_a_correction(tmp_path: Path) -> None:
    llm = ScriptedLLM([{"score": 9}, {"score": 4}])
    result = Judge(llm, retries=1).score(REQ)
    assert result.score == 4 and result.attempts == 2
    assert "not valid" in llm.calls[1][-1]["content"]
    assert llm.calls[1][-2] == {"role": "assistant", "content": '{"score": 9}'}


def test_a_judge_that_keeps_failing_scores_zero_and_is_counted(tmp_path: Path) -> None:
    llm = ScriptedLLM([RuntimeError("server said no"), {"nope": 1}])
    judge = Judge(llm, retries=1, cache=JudgeCache(tmp_path))
    result = judge.score(REQ)
    assert result.score == 0 and result.error and "not a score" in result.error
    assert judge.info()["failures"] == 1
    assert len(JudgeCache(tmp_path)) == 0  # a failure is not cached: the next run asks again


def test_concurrency_is_bounded_and_order_kept() -> None:
    replies = [{"score": i % 5} for i in range(12)]
    llm = ScriptedLLM(replies, delay_s=0.02)
    requests = [JudgeRequest("des", "q", f"ref {i}", f"resp {i}") for i in range(12)]
    results = Judge(llm, concurrency=3).score_many(requests, progress=False)
    assert 1 < llm.max_in_flight <= 3
    # the scripted replies are handed out in call order; each request got exactly one
    assert sorted(r.score for r in results) == sorted(i % 5 for i in range(12))


def test_report_info_names_model_and_prompt(tmp_path: Path) -> None:
    info = Judge(ScriptedLLM([]), model_id="llama.cpp/x.gguf", url="http://h/v1").info()
    assert info["model"] == "llama.cpp/x.gguf" and info["prompt_hash"] == Prompts.load().hash
    assert info["temperature"] == 0.0 and info["url"] == "http://h/v1"


def test_a_stop_signal_does_not_wait_for_the_queued_requests() -> None:
    """SIGTERM mid-bench: only the requests in flight finish, the queue is dropped (the server can stop)."""
    import os
    import signal
    import threading
    import time

    from giqa.llm.signals import exit_on_signals

    llm = ScriptedLLM([], delay_s=0.05)
    requests = [JudgeRequest("des", "q", f"ref {i}", f"resp {i}") for i in range(200)]  # ~5 s in 2 lanes
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM))
    started = time.perf_counter()
    with pytest.raises(SystemExit) as stopped, exit_on_signals():
        timer.start()
        Judge(llm, concurrency=2).score_many(requests, progress=False)
    timer.join()
    assert stopped.value.code == 143
    assert time.perf_counter() - started < 2.0
    assert len(llm.calls) < 40
