"""giqa.infra.db on the embedded SQLite file, through the real migrations: every data-access function,
idempotency under re-delivery, the state rules, and models == migrations."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from giqa.infra.db import dal, make_engine, make_sessionmaker, session_scope
from giqa.infra.db.dal import NotFoundError, SampleIn
from giqa.infra.db.migrate import current, head, schema_drift, upgrade
from giqa.infra.db.models import SAMPLE_STATES, STAGES, Failure, Sample, StageResult
from giqa.settings import Settings, database_url

pytestmark = pytest.mark.unit

SHA = "ab" * 32


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


def new_run(sessions: sessionmaker[Session], n: int = 3, state: str = "running") -> tuple[str, list[int]]:
    with session_scope(sessions) as s:
        run_id = dal.create_run(s, name="r", config={"grid_n": 20})
        ids = dal.add_samples(
            s, run_id=run_id, samples=[SampleIn(f"k{i}", f"img/{i}.png", f"text {i}") for i in range(n)]
        )
        dal.set_run_state(s, run_id=run_id, state=state)
    return run_id, ids


# ------------------------------------------------------------------------------------ schema, engine


def test_migrations_create_the_models_schema_and_rerun_as_a_no_op(db_url: str) -> None:
    assert current(db_url) == head() == "0003"  # 0001 runs, datasets; 0002 jobs, evaluations; 0003 attempts
    assert schema_drift(db_url) == []
    upgrade(db_url)  # already at head
    assert current(db_url) == "0003"


def test_a_never_migrated_database_has_no_revision(tmp_path: Path) -> None:
    assert current(f"sqlite:///{tmp_path / 'fresh.sqlite3'}") is None


def test_settings_default_is_a_sqlite_file_under_data_dir(tmp_path: Path) -> None:
    url = database_url(Settings(data_dir=tmp_path / "data"))
    assert url == f"sqlite:///{(tmp_path / 'data' / 'giqa.sqlite3').absolute()}"
    upgrade(url)
    assert (tmp_path / "data" / "giqa.sqlite3").is_file()


def test_sqlite_runs_with_foreign_keys_and_wal(engine: Engine) -> None:
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_a_sample_of_a_missing_image_is_refused_by_the_foreign_key(sessions: sessionmaker[Session]) -> None:
    run_id, _ = new_run(sessions)
    with pytest.raises(IntegrityError), session_scope(sessions) as s:
        dal.add_samples(s, run_id=run_id, samples=[SampleIn("x", "x.png", "t", image_id="cd" * 32)])


def test_unsupported_database_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported database"):
        make_engine("mysql://u@h/db")


def test_session_scope_rolls_back_on_error(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(RuntimeError), session_scope(sessions) as s:
        dal.create_run(s, name="lost", config={})
        raise RuntimeError("boom")
    with session_scope(sessions) as s:
        assert dal.list_runs(s) == []


# ------------------------------------------------------------------------------------------ runs


def test_create_get_and_list_runs(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as s:
        first = dal.create_run(s, name="first", config={"a": [1, 2]}, images_prefix="uploads/x/")
    with session_scope(sessions) as s:
        second = dal.create_run(s, name="second", config={})
        dal.add_samples(s, run_id=second, samples=[SampleIn("k", "k.png", "t")])
    with session_scope(sessions) as s:
        run = dal.get_run(s, run_id=first)
        assert run is not None
        assert (run.name, run.state, run.config, run.images_prefix) == (
            "first",
            "pending",
            {"a": [1, 2]},
            "uploads/x/",
        )
        assert run.created_at.tzinfo is not None and run.finished_at is None
        assert run.total == 0 and run.counts == dict.fromkeys(SAMPLE_STATES, 0)
        listed = dal.list_runs(s)
        assert [r.id for r in listed] == [second, first]  # newest first
        assert listed[0].total == 1 and listed[0].counts["pending"] == 1
        assert [r.id for r in dal.list_runs(s, limit=1, offset=1)] == [first]
        assert dal.get_run(s, run_id="nope") is None


def test_run_states_and_errors(sessions: sessionmaker[Session]) -> None:
    run_id, _ = new_run(sessions, n=0)
    with session_scope(sessions) as s:
        dal.set_run_state(s, run_id=run_id, state="failed", error="LLM down")
    with session_scope(sessions) as s:
        run = dal.get_run(s, run_id=run_id)
        assert run is not None and run.state == "failed" and run.error == "LLM down" and run.finished_at
        with pytest.raises(ValueError, match="unknown run state 'finished'"):
            dal.set_run_state(s, run_id=run_id, state="finished")
        with pytest.raises(NotFoundError):
            dal.set_run_state(s, run_id="nope", state="running")


def test_config_that_is_not_json_is_refused_clearly(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as s:
        with pytest.raises(ValueError, match="run config is not storable JSON"):
            dal.create_run(s, name="r", config={"x": math.nan})
        with pytest.raises(ValueError, match="run config is not storable JSON"):
            dal.create_run(s, name="r", config={"x": object()})


# ------------------------------------------------------------------------------- images, samples


def test_add_image_is_idempotent_and_checks_the_id(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as s:
        for _ in range(2):
            dal.add_image(s, sha256=SHA, key=f"images/ab/{SHA}.png", width=4, height=3, nbytes=99, fmt="PNG")
        with pytest.raises(ValueError, match="sha256"):
            dal.add_image(s, sha256="xyz", key="k", width=1, height=1, nbytes=1, fmt="PNG")
    with session_scope(sessions) as s:
        run_id = dal.create_run(s, name="r", config={})
        [sid] = dal.add_samples(s, run_id=run_id, samples=[SampleIn("k", "a.png", "t", image_id=SHA)])
        sample = dal.get_sample(s, sample_id=sid)
        assert (sample.image_id, sample.image_key) == (SHA, f"images/ab/{SHA}.png")


def test_add_samples_is_idempotent_in_input_order(sessions: sessionmaker[Session]) -> None:
    run_id, ids = new_run(sessions, n=3)
    again = [SampleIn("k2", "other.png", "changed"), SampleIn("new", "n.png", "t"), SampleIn("k0", "", "")]
    with session_scope(sessions) as s:
        got = dal.add_samples(s, run_id=run_id, samples=again)
        assert got[0] == ids[2] and got[2] == ids[0] and got[1] not in ids
        kept = dal.get_sample(s, sample_id=ids[2])
        assert (kept.image_ref, kept.description) == ("img/2.png", "text 2")  # the first write stays
        assert s.scalar(select(func.count()).select_from(Sample)) == 4
        with pytest.raises(NotFoundError, match="run nope"):
            dal.add_samples(s, run_id="nope", samples=again)


def test_add_samples_beyond_one_chunk(sessions: sessionmaker[Session]) -> None:
    n = dal.CHUNK * 2 + 7
    run_id, ids = new_run(sessions, n=n)
    assert len(set(ids)) == n and ids == sorted(ids)
    with session_scope(sessions) as s:
        records = list(dal.iter_run_records(s, run_id=run_id, batch=100))
        assert [r.id for r in records] == ids and [r.key for r in records] == [f"k{i}" for i in range(n)]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    keys=st.lists(
        st.text(
            st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), min_size=1, max_size=20
        ),
        max_size=30,
    )
)
def test_add_samples_maps_every_key_to_one_id(sessions: sessionmaker[Session], keys: list[str]) -> None:
    with session_scope(sessions) as s:
        run_id = dal.create_run(s, name="h", config={})
        ids = dal.add_samples(s, run_id=run_id, samples=[SampleIn(k, "i.png", "t") for k in keys])
        again = dal.add_samples(s, run_id=run_id, samples=[SampleIn(k, "j.png", "u") for k in reversed(keys)])
    assert again == list(reversed(ids))
    assert len(set(ids)) == len(set(keys))
    pairs = list(zip(ids, keys, strict=True))
    assert all((a == b) == (ka == kb) for a, ka in pairs for b, kb in pairs)


def test_nul_characters_are_refused_before_the_database_sees_them(sessions: sessionmaker[Session]) -> None:
    run_id, (sid, *_) = new_run(sessions, n=1)
    with session_scope(sessions) as s:
        with pytest.raises(ValueError, match="sample key .* holds a NUL"):
            dal.add_samples(s, run_id=run_id, samples=[SampleIn("a\x00b", "i.png", "t")])
        with pytest.raises(ValueError, match="'k': description"):
            dal.add_samples(s, run_id=run_id, samples=[SampleIn("k", "i.png", "bad\x00text")])
        with pytest.raises(ValueError, match="stage1 payload is not storable JSON: it holds a NUL"):
            dal.upsert_stage(s, sample_id=sid, stage="stage1", payload={"tags": ["a\x00"]}, seconds=0)
        with pytest.raises(ValueError, match="lone surrogate"):
            dal.add_samples(s, run_id=run_id, samples=[SampleIn("\ud800", "i.png", "t")])
        with pytest.raises(ValueError, match="vqa payload is not storable JSON"):
            dal.upsert_stage(s, sample_id=sid, stage="vqa", payload={"q": "\udc00"}, seconds=0)
        with pytest.raises(ValueError, match="run name"):
            dal.create_run(s, name="\x00", config={})


def test_get_sample_of_a_missing_id(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as s, pytest.raises(NotFoundError, match="sample 12345"):
        dal.get_sample(s, sample_id=12345)


# ------------------------------------------------------------------------------- stages, states


def test_claim_runs_pending_and_running_but_not_ended_samples(sessions: sessionmaker[Session]) -> None:
    _, (a, b, c) = new_run(sessions)
    with session_scope(sessions) as s:
        assert dal.claim_sample(s, sample_id=a, stage="stage1")
        assert dal.claim_sample(s, sample_id=a, stage="detect")  # a worker died: delivered again
        dal.finish_sample(s, sample_id=a)
        assert not dal.claim_sample(s, sample_id=a, stage="vqa")  # re-delivered after done: nothing to do
        assert dal.claim_sample(s, sample_id=b, stage="stage1")
        dal.fail_sample(s, sample_id=b, stage="stage1", reason="bad text", retryable=False)
        assert not dal.claim_sample(s, sample_id=b, stage="stage1")
        with pytest.raises(ValueError, match="unknown stage 'stage9'"):
            dal.claim_sample(s, sample_id=c, stage="stage9")
        with pytest.raises(NotFoundError):
            dal.claim_sample(s, sample_id=999, stage="stage1")
    with session_scope(sessions) as s:
        assert dal.get_sample(s, sample_id=a).attempts == 2
        assert dal.get_sample(s, sample_id=a).state == "done"
        assert dal.get_sample(s, sample_id=c).attempts == 0


def test_a_cancelled_or_failed_run_claims_nothing(sessions: sessionmaker[Session]) -> None:
    for state in ("cancelled", "failed"):
        run_id, (a, *_) = new_run(sessions, n=1)
        with session_scope(sessions) as s:
            dal.set_run_state(s, run_id=run_id, state=state)
            assert not dal.claim_sample(s, sample_id=a, stage="stage1")
            assert dal.get_sample(s, sample_id=a).attempts == 0


def test_upsert_stage_twice_stores_one_row_the_last_wins(sessions: sessionmaker[Session]) -> None:
    _, (a, _b, _c) = new_run(sessions)
    with session_scope(sessions) as s:
        dal.upsert_stage(s, sample_id=a, stage="stage1", payload={"tags": ["x"]}, seconds=0.5)
        dal.upsert_stage(s, sample_id=a, stage="stage1", payload={"tags": ["y"]}, seconds=0.7)
        dal.upsert_stage(s, sample_id=a, stage="detect", payload={"boxes": [[0, 0, 1, 1]]}, seconds=1.0)
    with session_scope(sessions) as s:
        assert s.scalar(select(func.count()).select_from(StageResult)) == 2
        assert dal.stage_payload(s, sample_id=a, stage="stage1") == {"tags": ["y"]}
        assert dal.stage_payload(s, sample_id=a, stage="vqa") is None
        sample = dal.get_sample(s, sample_id=a)
        assert sample.payloads == {"stage1": {"tags": ["y"]}, "detect": {"boxes": [[0, 0, 1, 1]]}}
        assert sample.stage == "detect"
        dal.upsert_stage(s, sample_id=a, stage="stage1", payload={"tags": ["z"]}, seconds=0.1)  # late
        assert dal.get_sample(s, sample_id=a).stage == "detect"  # never back
        with pytest.raises(NotFoundError):
            dal.upsert_stage(s, sample_id=999, stage="stage1", payload={}, seconds=0)
        with pytest.raises(ValueError, match="judge payload is not storable JSON"):
            dal.upsert_stage(s, sample_id=a, stage="judge", payload={"p": math.inf}, seconds=0)


def test_failures_keep_history_and_retry_resets_only_failed(sessions: sessionmaker[Session]) -> None:
    run_id, (a, b, c) = new_run(sessions)
    with session_scope(sessions) as s:
        dal.fail_sample(s, sample_id=a, stage="detect", reason="detector down (503)", retryable=True)
        dal.fail_sample(s, sample_id=b, stage="stage1", reason="image is not an image", retryable=False)
        dal.finish_sample(s, sample_id=c)
    with session_scope(sessions) as s:
        assert dal.failed_samples(s, run_id=run_id) == [a, b]
        assert dal.failed_samples(s, run_id=run_id, retryable_only=True) == [a]
        assert dal.reset_samples(s, sample_ids=[a, c]) == 1  # c is done: left alone
    with session_scope(sessions) as s:
        assert dal.get_sample(s, sample_id=a).state == "pending"
        assert dal.claim_sample(s, sample_id=a, stage="detect")
        dal.fail_sample(s, sample_id=a, stage="judge", reason="bad crop", retryable=False)
    with session_scope(sessions) as s:
        assert dal.failed_samples(s, run_id=run_id, retryable_only=True) == []  # the latest failure counts
        assert s.scalar(select(func.count()).select_from(Failure).where(Failure.sample_id == a)) == 2
        progress = dal.run_progress(s, run_id=run_id)
    assert progress.total == 3
    assert progress.by_state == {"pending": 0, "running": 0, "done": 1, "failed": 2}
    assert [(f.sample_key, f.stage, f.retryable) for f in progress.failures] == [
        ("k0", "judge", False),
        ("k1", "stage1", False),
        ("k0", "detect", True),
    ]
    assert progress.failures[0].reason == "bad crop" and progress.failures[0].created_at.tzinfo


def test_run_progress_counts_stage_results(sessions: sessionmaker[Session]) -> None:
    run_id, (a, b, _) = new_run(sessions)
    with session_scope(sessions) as s:
        for sid in (a, b):
            dal.upsert_stage(s, sample_id=sid, stage="stage1", payload={}, seconds=0.1)
        dal.upsert_stage(s, sample_id=a, stage="detect", payload={}, seconds=0.1)
        progress = dal.run_progress(s, run_id=run_id)
        assert progress.by_stage == {"stage1": 2, "detect": 1, "judge": 0, "assemble": 0, "vqa": 0}
        assert list(progress.by_stage) == list(STAGES)
        empty = dal.run_progress(s, run_id="nope")
        assert empty.total == 0 and empty.failures == []


# ----------------------------------------------------------------------------------------- export


def test_export_begins_once_when_every_sample_has_ended(sessions: sessionmaker[Session]) -> None:
    run_id, (a, b, c) = new_run(sessions)
    with session_scope(sessions) as s:
        dal.finish_sample(s, sample_id=a)
        dal.fail_sample(s, sample_id=b, stage="vqa", reason="x", retryable=False)
    with session_scope(sessions) as s:
        assert not dal.try_begin_export(s, run_id=run_id)  # c is pending
        dal.claim_sample(s, sample_id=c, stage="stage1")
    with session_scope(sessions) as s:
        assert not dal.try_begin_export(s, run_id=run_id)  # c is running
        dal.finish_sample(s, sample_id=c)
    with session_scope(sessions) as s:
        assert dal.try_begin_export(s, run_id=run_id)
    with session_scope(sessions) as s:
        assert not dal.try_begin_export(s, run_id=run_id)  # already exporting
        run = dal.get_run(s, run_id=run_id)
        assert run is not None and run.state == "exporting"


def test_export_needs_a_running_run(sessions: sessionmaker[Session]) -> None:
    run_id, _ = new_run(sessions, n=0, state="pending")
    with session_scope(sessions) as s:
        assert not dal.try_begin_export(s, run_id=run_id)
        dal.set_run_state(s, run_id=run_id, state="running")
        assert dal.try_begin_export(s, run_id=run_id)  # an empty run exports at once
        assert not dal.try_begin_export(s, run_id="nope")


def test_concurrent_export_on_sqlite_has_one_winner(sessions: sessionmaker[Session]) -> None:
    run_id, _ = new_run(sessions, n=0)
    wins: list[bool] = []
    barrier = threading.Barrier(4)

    def attempt() -> None:
        barrier.wait()
        with session_scope(sessions) as s:
            wins.append(dal.try_begin_export(s, run_id=run_id))

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == [False, False, False, True]


def test_record_dataset_is_an_upsert_and_ends_the_run(sessions: sessionmaker[Session]) -> None:
    run_id, _ = new_run(sessions, n=0)
    with session_scope(sessions) as s:
        dal.record_dataset(s, run_id=run_id, key="datasets/r/train.json", val_key=None, stats={"n": 1})
        dal.record_dataset(s, run_id=run_id, key="datasets/r/train.json", val_key="v.json", stats={"n": 2})
        with pytest.raises(NotFoundError):
            dal.record_dataset(s, run_id="nope", key="k", val_key=None, stats={})
    with session_scope(sessions) as s:
        run = dal.get_run(s, run_id=run_id)
        assert run is not None and run.state == "done" and run.dataset_key == "datasets/r/train.json"
        assert run.finished_at is not None
        from giqa.infra.db.models import Dataset

        rows = s.scalars(select(Dataset)).all()
        assert [(d.val_key, d.stats) for d in rows] == [("v.json", {"n": 2})]


def test_iter_run_records_carries_payloads_and_image_keys(sessions: sessionmaker[Session]) -> None:
    run_id, (a, b, c) = new_run(sessions)
    with session_scope(sessions) as s:
        dal.upsert_stage(s, sample_id=b, stage="vqa", payload={"qa": [1]}, seconds=0.2)
        dal.upsert_stage(s, sample_id=b, stage="stage1", payload={"tags": []}, seconds=0.2)
        records = list(dal.iter_run_records(s, run_id=run_id, batch=2))
        assert [r.id for r in records] == [a, b, c]
        assert list(records[1].payloads) == ["stage1", "vqa"]  # pipeline order
        assert records[0].payloads == {} and records[0].image_key is None
        assert list(dal.iter_run_records(s, run_id="nope")) == []


# -------------------------------------------------------------------------------------------- CLI


def test_cli_upgrade_and_current(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from giqa.cli import app

    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    runner = CliRunner()
    before = runner.invoke(app, ["db", "current", "--url", url])
    assert before.exit_code == 0 and before.output.startswith(f"none (newest is {head()}")
    done = runner.invoke(app, ["db", "upgrade", "--url", url])
    assert done.exit_code == 0 and f"revision {head()}" in done.output
    after = runner.invoke(app, ["db", "current", "--url", url])
    assert after.output.strip() == f"{head()} (up to date)"
    bad = runner.invoke(app, ["db", "current", "--url", "mysql://x"])
    assert bad.exit_code == 2 and "--url: database URL must start with" in bad.output
    down = runner.invoke(app, ["db", "upgrade", "--url", "postgresql://postgres:secret@127.0.0.1:1/x"])
    assert down.exit_code == 3 and "cannot use the database" in down.output and "secret" not in down.output


def test_concurrent_writers_on_sqlite_wait_for_each_other(sessions: sessionmaker[Session]) -> None:
    """Threads (the embedded setup's in-process workers) writing at once queue on SQLite's write lock
    instead of failing with 'database is locked'."""
    run_id, ids = new_run(sessions, n=20)
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def work(mine: list[int]) -> None:
        barrier.wait()
        try:
            for sid in mine:
                with session_scope(sessions) as s:
                    dal.claim_sample(s, sample_id=sid, stage="stage1")
                with session_scope(sessions) as s:  # reads, then writes: the case SQLite fails at once
                    dal.upsert_stage(s, sample_id=sid, stage="stage1", payload={"n": sid}, seconds=0.0)
                    dal.run_progress(s, run_id=run_id)
                    dal.upsert_stage(s, sample_id=sid, stage="detect", payload={"n": sid}, seconds=0.0)
                with session_scope(sessions) as s:
                    dal.finish_sample(s, sample_id=sid)
                with session_scope(sessions) as s:
                    dal.try_begin_export(s, run_id=run_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(ids[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with session_scope(sessions) as s:
        run = dal.get_run(s, run_id=run_id)
        assert run is not None and run.state == "exporting" and run.counts["done"] == 20
