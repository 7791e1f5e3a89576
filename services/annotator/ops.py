"""The operator page's data: recent runs (progress per stage, latest failures), training jobs, evaluations.

Read straight from the database the annotator shares with the trainer and evaluator (``dal`` and
``jobs_dal``), so the page needs no other service's URL. One JSON object, polled by ``static/ops.js``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from giqa.infra.db import dal, jobs_dal
from services.annotator.tasks import CHAIN

FAILURES_SHOWN = 5


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def summary(context: Any, *, limit: int = 20) -> dict[str, Any]:
    """``{"stages", "runs", "jobs", "evaluations"}``: the pipeline's stages, then each list newest first."""
    with context.session() as s:
        runs = []
        for run in dal.list_runs(s, limit=limit):
            progress = dal.run_progress(s, run_id=run.id, failures_limit=FAILURES_SHOWN)
            runs.append(
                {
                    "id": run.id,
                    "name": run.name,
                    "state": run.state,
                    "created_at": _iso(run.created_at),
                    "finished_at": _iso(run.finished_at),
                    "error": run.error,
                    "total": progress.total,
                    "by_state": progress.by_state,
                    "by_stage": progress.by_stage,
                    "failures": [
                        {
                            "sample_key": f.sample_key,
                            "stage": f.stage,
                            "reason": f.reason,
                            "retryable": f.retryable,
                            "at": _iso(f.created_at),
                        }
                        for f in progress.failures
                    ],
                }
            )
        jobs = [
            {
                "id": j.id,
                "name": j.name,
                "state": j.state,
                "launcher": j.launcher,
                "step": j.step,
                "total_steps": j.total_steps,
                "loss": j.loss,
                "eta_s": j.eta_s,
                "checkpoint_name": j.checkpoint_name,
                "checkpoints": [c.name for c in j.checkpoints],
                "error": j.error,
                "created_at": _iso(j.created_at),
                "finished_at": _iso(j.finished_at),
            }
            for j in jobs_dal.list_jobs(s, limit=limit)
        ]
        evaluations = [
            {
                "id": e.id,
                "name": e.name,
                "state": e.state,
                "model_kind": e.model_kind,
                "model_ref": e.model_ref,
                "bench_key": e.bench_key,
                "metrics": _headline(e.report),
                "error": e.error,
                "created_at": _iso(e.created_at),
                "finished_at": _iso(e.finished_at),
            }
            for e in jobs_dal.list_evaluations(s, limit=limit)
        ]
    # the stages a run goes through, in order (the judge runs inside assemble: no results of its own)
    return {"stages": list(CHAIN), "runs": runs, "jobs": jobs, "evaluations": evaluations}


def _headline(report: dict[str, Any] | None) -> dict[str, float]:
    """The report's top-level numbers (its scores), for one line on the page."""
    if not report:
        return {}
    found: dict[str, float] = {}
    for key, value in report.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            found[key] = float(value)
        elif isinstance(value, dict):
            for inner, number in value.items():
                if isinstance(number, int | float) and not isinstance(number, bool) and len(found) < 8:
                    found[f"{key}.{inner}"] = float(number)
    return dict(list(found.items())[:8])
