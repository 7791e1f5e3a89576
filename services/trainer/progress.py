"""A training job's progress as its launcher reports it: the metrics JSONL tailed into step, loss and ETA,
and the heartbeat that keeps a job claimed while its inputs are fetched (no child to watch yet).

Every report carries the attempt (:func:`giqa.infra.db.jobs_dal.record_progress`): one refused means the
job was found lost and handed to another attempt, and this launcher must stop.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError

from giqa.infra.db import jobs_dal

log = logging.getLogger("giqa.trainer.runner")


@dataclass
class Tail:
    """Reads the lines appended to a metrics JSONL since the last call (a torn last line waits)."""

    path: Path
    offset: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)

    def read(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        self.offset += end
        new = []
        for line in data[:end].splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict):
                new.append(row)
        self.rows += new
        return new


def progress_of(rows: list[dict[str, Any]], total_steps: int | None) -> dict[str, Any]:
    """Step, total steps, last loss and ETA from metrics rows (those seen so far)."""
    if not rows:
        return {}
    last = rows[-1]
    step = int(last.get("step") or 0)
    total = int(last["max_steps"]) if last.get("max_steps") else total_steps
    losses = [r["loss"] for r in rows if isinstance(r.get("loss"), int | float)]
    out: dict[str, Any] = {"step": step, "total_steps": total, "loss": losses[-1] if losses else None}
    elapsed = last.get("elapsed_s")
    if total and step > 0 and isinstance(elapsed, int | float):
        out["eta_s"] = round(max(0.0, elapsed / step * (total - step)), 1)
    return out


def report(ctx: Any, job_id: str, tail: Tail, total_steps: int | None, attempt: int) -> bool:
    """Progress into the job's row (a heartbeat too); False when the job is no longer running ``attempt``."""
    tail.read()
    values = progress_of(tail.rows, total_steps)
    with ctx.session() as s:
        return jobs_dal.record_progress(s, job_id=job_id, attempt=attempt, **values)


@contextmanager
def heartbeat(ctx: Any, job_id: str, attempt: int) -> Iterator[threading.Event]:
    """A thread reporting every ``jobs.poll_s`` while the body runs (fetching inputs can outlast
    ``jobs.lost_after_s``); the event is set once a report is refused (the job was handed on)."""
    stop, handed_on = threading.Event(), threading.Event()

    def beat() -> None:
        while not stop.wait(ctx.settings.jobs.poll_s):
            try:
                with ctx.session() as s:
                    if not jobs_dal.record_progress(s, job_id=job_id, attempt=attempt):
                        handed_on.set()
                        return
            except OperationalError as exc:  # the database is away for a moment: beat again next time
                log.warning("job %s: heartbeat failed (%s)", job_id, str(exc).splitlines()[0])

    thread = threading.Thread(target=beat, name=f"giqa-heartbeat-{job_id[:8]}", daemon=True)
    thread.start()
    try:
        yield handed_on
    finally:
        stop.set()
        thread.join()
