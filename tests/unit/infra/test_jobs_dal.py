"""giqa.infra.db.jobs_dal on the embedded SQLite file through the real migrations (0003): jobs, their
state rules and cancel, progress, attempts and lost jobs, checkpoints by name, evaluations. The same tests
run against Postgres in ``tests/integration/test_jobs_postgres.py``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from giqa.infra.db import jobs_dal, make_engine, make_sessionmaker, session_scope
from giqa.infra.db.dal import NotFoundError
from giqa.infra.db.jobs_dal import ConflictError
from giqa.infra.db.migrate import head, schema_drift, upgrade

pytestmark = pytest.mark.unit


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'db' / 'giqa.sqlite3'}"
    upgrade(url)
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


def new_job(sessions: sessionmaker[Session], **kw: object) -> str:
    args = {
        "name": "tiny run",
        "launcher": "local",
        "config": {"max_steps": 4, "preset": "tiny"},
        "dataset_ref": "key:uploads/x/llava.json",
        "images_prefix": "uploads/x",
        "base_model": "tiny",
        "total_steps": 4,
    } | kw
    with session_scope(sessions) as s:
        return jobs_dal.create_job(s, **args)  # type: ignore[arg-type]


def test_migration_0003_is_head_and_matches_the_models(db_url: str) -> None:
    assert head() == "0003"
    assert schema_drift(db_url) == []


def test_a_job_is_created_pending_with_a_default_checkpoint_name(sessions: sessionmaker[Session]) -> None:
    job_id = new_job(sessions)
    with session_scope(sessions) as s:
        job = jobs_dal.get_job(s, job_id=job_id)
        assert jobs_dal.get_job(s, job_id="nope") is None
    assert job is not None and job.state == "pending" and job.step == 0 and job.total_steps == 4
    assert job.checkpoint_name == f"tiny-run-{job_id[:12]}"
    assert job.created_at.tzinfo is not None and job.checkpoints == []


def test_bad_job_fields_are_refused(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(ValueError, match="unknown launcher"):
        new_job(sessions, launcher="slurm")
    with pytest.raises(ValueError, match="NUL"):
        new_job(sessions, name="a\x00b")
    with pytest.raises(ValueError, match="not storable JSON"):
        new_job(sessions, config={"lr": float("nan")})


def test_claim_runs_once_and_not_after_a_cancel(sessions: sessionmaker[Session]) -> None:
    job_id, other = new_job(sessions), new_job(sessions)
    with session_scope(sessions) as s:
        assert jobs_dal.claim_job(s, job_id=job_id) is True
        assert jobs_dal.claim_job(s, job_id=job_id) is False  # a task delivered twice
        cancelled = jobs_dal.request_cancel(s, job_id=other)  # pending: ends at once
        assert cancelled.state == "cancelled" and cancelled.finished_at is not None
        assert jobs_dal.claim_job(s, job_id=other) is False
        with pytest.raises(NotFoundError):
            jobs_dal.claim_job(s, job_id="0" * 32)


def test_cancel_of_a_running_job_is_a_flag_for_its_launcher(sessions: sessionmaker[Session]) -> None:
    job_id = new_job(sessions)
    with session_scope(sessions) as s:
        jobs_dal.claim_job(s, job_id=job_id)
        assert jobs_dal.cancel_requested(s, job_id=job_id) is False
        view = jobs_dal.request_cancel(s, job_id=job_id)
        assert view.state == "running" and view.cancel_requested
        assert jobs_dal.cancel_requested(s, job_id=job_id) is True
        assert jobs_dal.finish_job(s, job_id=job_id, state="cancelled", error="cancelled") is True
        assert jobs_dal.finish_job(s, job_id=job_id, state="succeeded") is False  # a final state stays
        with pytest.raises(ConflictError, match="has ended"):
            jobs_dal.request_cancel(s, job_id=job_id)
        with pytest.raises(NotFoundError):
            jobs_dal.request_cancel(s, job_id="0" * 32)
        assert jobs_dal.get_job(s, job_id=job_id).state == "cancelled"  # type: ignore[union-attr]
        with pytest.raises(ValueError, match="final job state"):
            jobs_dal.finish_job(s, job_id=job_id, state="running")


def test_progress_keeps_fields_not_given_and_only_while_running(sessions: sessionmaker[Session]) -> None:
    job_id = new_job(sessions)
    with session_scope(sessions) as s:
        jobs_dal.record_progress(s, job_id=job_id, step=1)  # pending: ignored
        assert jobs_dal.get_job(s, job_id=job_id).step == 0  # type: ignore[union-attr]
        jobs_dal.claim_job(s, job_id=job_id)
        jobs_dal.set_job_process(s, job_id=job_id, pid=4242)
        jobs_dal.record_progress(s, job_id=job_id, step=2, total_steps=8, loss=3.5, eta_s=12.0)
        jobs_dal.record_progress(s, job_id=job_id, step=3)
        job = jobs_dal.get_job(s, job_id=job_id)
    assert job is not None
    assert (job.step, job.total_steps, job.loss, job.eta_s, job.pid) == (3, 8, 3.5, 12.0, 4242)
    assert job.heartbeat_at is not None and job.started_at is not None


def _age(sessions: sessionmaker[Session], job_id: str, hours: float = 1.0) -> None:
    with session_scope(sessions) as s:
        s.get(jobs_dal.Job, job_id).heartbeat_at = datetime.now(UTC) - timedelta(hours=hours)  # type: ignore[union-attr]


def _sweep(sessions: sessionmaker[Session], max_attempts: int = 2) -> jobs_dal.LostJobs:
    with session_scope(sessions) as s:
        stale = datetime.now(UTC) - timedelta(minutes=5)
        return jobs_dal.requeue_lost_jobs(s, stale_before=stale, max_attempts=max_attempts)


def test_a_lost_job_is_requeued_until_its_attempts_run_out_then_failed(
    sessions: sessionmaker[Session],
) -> None:
    fresh, lost = new_job(sessions), new_job(sessions)
    with session_scope(sessions) as s:
        jobs_dal.claim_job(s, job_id=fresh)
        jobs_dal.claim_job(s, job_id=lost)
        jobs_dal.set_job_process(s, job_id=lost, pid=4242)
        first_start = jobs_dal.get_job(s, job_id=lost).started_at  # type: ignore[union-attr]
    _age(sessions, lost)
    assert _sweep(sessions) == jobs_dal.LostJobs(requeued=[lost], failed=[])
    assert _sweep(sessions) == jobs_dal.LostJobs(requeued=[], failed=[])  # pending now: nothing to do
    with session_scope(sessions) as s:
        view = jobs_dal.get_job(s, job_id=lost)
        assert view is not None and (view.state, view.attempts, view.pid) == ("pending", 1, None)
        assert "attempt 1 of 2 lost" in (view.error or "") and "resume" in (view.error or "")
        assert jobs_dal.claim_job(s, job_id=lost) is True  # the task sent again
        view = jobs_dal.get_job(s, job_id=lost)
        assert view is not None and view.attempts == 2 and view.started_at == first_start
    _age(sessions, lost)
    assert _sweep(sessions) == jobs_dal.LostJobs(requeued=[], failed=[lost])
    with session_scope(sessions) as s:
        view = jobs_dal.get_job(s, job_id=lost)
        assert view is not None and view.state == "failed" and "after 2 attempts" in (view.error or "")
        assert jobs_dal.get_job(s, job_id=fresh).state == "running"  # type: ignore[union-attr]


def test_a_lost_kubernetes_job_is_failed_not_requeued(sessions: sessionmaker[Session]) -> None:
    job_id = new_job(sessions, launcher="kubernetes")
    with session_scope(sessions) as s:
        jobs_dal.claim_job(s, job_id=job_id)
    _age(sessions, job_id)
    assert _sweep(sessions, max_attempts=5) == jobs_dal.LostJobs(requeued=[], failed=[job_id])
    with session_scope(sessions) as s:
        assert "kubernetes launcher does not requeue" in (jobs_dal.get_job(s, job_id=job_id).error or "")  # type: ignore[union-attr]


def test_a_requeued_job_that_could_not_be_sent_is_lost_again(sessions: sessionmaker[Session]) -> None:
    job_id = new_job(sessions)
    with session_scope(sessions) as s:
        jobs_dal.claim_job(s, job_id=job_id)
    _age(sessions, job_id)
    assert _sweep(sessions).requeued == [job_id]
    with session_scope(sessions) as s:
        jobs_dal.unqueue_job(s, job_id=job_id)  # the broker was away
        assert jobs_dal.get_job(s, job_id=job_id).state == "running"  # type: ignore[union-attr]
    assert _sweep(sessions).requeued == [job_id]  # the next sweep tries again, attempts unchanged
    with session_scope(sessions) as s:
        assert jobs_dal.get_job(s, job_id=job_id).attempts == 1  # type: ignore[union-attr]


def test_a_report_of_an_attempt_that_was_handed_on_is_refused(sessions: sessionmaker[Session]) -> None:
    job_id = new_job(sessions)
    with session_scope(sessions) as s:
        jobs_dal.claim_job(s, job_id=job_id)
        assert jobs_dal.record_progress(s, job_id=job_id, attempt=1, step=2) is True
        assert jobs_dal.next_attempt(s, job_id=job_id, attempt=1, max_attempts=2) == 2  # a killed child
        assert jobs_dal.record_progress(s, job_id=job_id, attempt=1, step=3) is False  # the old attempt
        assert jobs_dal.record_progress(s, job_id=job_id, attempt=2, step=3) is True
        assert jobs_dal.next_attempt(s, job_id=job_id, attempt=2, max_attempts=2) is None  # none left
        assert jobs_dal.next_attempt(s, job_id=job_id, attempt=1, max_attempts=9) is None  # not its attempt
        view = jobs_dal.get_job(s, job_id=job_id)
    assert view is not None and (view.attempts, view.step) == (2, 3)


def test_jobs_list_newest_first_by_state(sessions: sessionmaker[Session]) -> None:
    first, second = new_job(sessions), new_job(sessions)
    with session_scope(sessions) as s:
        jobs_dal.claim_job(s, job_id=first)
        assert [j.id for j in jobs_dal.list_jobs(s)] == [second, first]
        assert [j.id for j in jobs_dal.list_jobs(s, state="running")] == [first]
        counts = jobs_dal.count_jobs(s)
        assert counts == {"pending": 1, "running": 1, "succeeded": 0, "failed": 0, "cancelled": 0}
        with pytest.raises(ValueError, match="unknown job state"):
            jobs_dal.list_jobs(s, state="done")


def test_checkpoints_by_name_one_owner(sessions: sessionmaker[Session]) -> None:
    job_id, other = new_job(sessions), new_job(sessions)
    with session_scope(sessions) as s:
        view = jobs_dal.register_checkpoint(
            s, name="tiny-1", job_id=job_id, key_prefix="checkpoints/tiny-1/", step=4, metrics={"loss": 2.0}
        )
        again = jobs_dal.register_checkpoint(  # the same job registering again (a task run twice) updates
            s, name="tiny-1", job_id=job_id, key_prefix="checkpoints/tiny-1/", step=5, metrics={"loss": 1.5}
        )
        assert view.step == 4 and again.step == 5
        with pytest.raises(ConflictError, match="taken by job"):
            jobs_dal.register_checkpoint(
                s, name="tiny-1", job_id=other, key_prefix="checkpoints/x/", step=1, metrics={}
            )
        with pytest.raises(ValueError, match="end in '/'"):
            jobs_dal.register_checkpoint(s, name="y", key_prefix="checkpoints/y", step=1, metrics={})
        jobs_dal.register_checkpoint(
            s, name="imported", key_prefix="checkpoints/imported/", step=0, metrics={}
        )
        found = jobs_dal.get_checkpoint(s, name="tiny-1")
        assert found is not None and found.metrics == {"loss": 1.5} and found.job_id == job_id
        assert jobs_dal.get_checkpoint(s, name="nope") is None
        assert [c.name for c in jobs_dal.list_checkpoints(s)] == ["imported", "tiny-1"]
        assert [c.name for c in jobs_dal.get_job(s, job_id=job_id).checkpoints] == ["tiny-1"]  # type: ignore[union-attr]
        assert [c.name for c in jobs_dal.list_jobs(s)[1].checkpoints] == ["tiny-1"]


def test_evaluations_claim_finish_and_fail(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as s:
        eval_id = jobs_dal.create_evaluation(
            s,
            name="demo",
            bench_key="benches/b/bench.jsonl",
            model_kind="checkpoint",
            model_ref="tiny-1",
            options={"limit": 3},
        )
        failing = jobs_dal.create_evaluation(
            s, name="bad", bench_key="b.jsonl", model_kind="url", model_ref="http://x/v1", options={}
        )
        with pytest.raises(ValueError, match="unknown model kind"):
            jobs_dal.create_evaluation(
                s, name="x", bench_key="b", model_kind="file", model_ref="x", options={}
            )
    with session_scope(sessions) as s:
        jobs_dal.set_evaluation_model(s, eval_id=eval_id, model_ref="tiny-2")
        assert jobs_dal.get_evaluation(s, eval_id=eval_id).model_ref == "tiny-2"  # type: ignore[union-attr]
        assert jobs_dal.claim_evaluation(s, eval_id=eval_id) is True
        with pytest.raises(NotFoundError, match="not pending"):
            jobs_dal.set_evaluation_model(s, eval_id=eval_id, model_ref="late")
        assert jobs_dal.claim_evaluation(s, eval_id=eval_id) is False
        report = {"des": {"bleu4": 1.0}, "vqa": {"acc_y": None}}
        jobs_dal.finish_evaluation(
            s,
            eval_id=eval_id,
            report=report,
            report_key="reports/a/report.json",
            items_key="reports/a/items.jsonl",
            chart_key="reports/a/chart.png",
            predictions_key=None,
        )
        jobs_dal.fail_evaluation(s, eval_id=failing, error="the model URL does not answer")
        jobs_dal.fail_evaluation(s, eval_id=eval_id, error="late")  # a final state stays
        done = jobs_dal.get_evaluation(s, eval_id=eval_id)
        bad = jobs_dal.get_evaluation(s, eval_id=failing)
        assert [v.id for v in jobs_dal.list_evaluations(s)] == [failing, eval_id]
        assert [v.id for v in jobs_dal.list_evaluations(s, ids=[eval_id])] == [eval_id]
        assert jobs_dal.count_evaluations(s) == {
            "pending": 0, "running": 0, "succeeded": 1, "failed": 1, "cancelled": 0
        }  # fmt: skip
        with pytest.raises(NotFoundError):
            jobs_dal.claim_evaluation(s, eval_id="0" * 32)
    assert done is not None and done.state == "succeeded" and done.report == report and done.error is None
    assert bad is not None and bad.state == "failed" and bad.error == "the model URL does not answer"
