"""One training job run to its end: inputs fetched, ``giqa train`` as a child, progress into Postgres, the
final model into object storage, registered by name.

The same code runs in a ``train`` worker (the local launcher: the child is ``giqa train`` under
:mod:`giqa.training.launch`, which dies with the worker) and in node 0 of a Kubernetes job (the child is
``torchrun``; :mod:`services.trainer.pod`). Steps:

1. claim the job (pending → running, one attempt more; a task delivered again, or a job cancelled while
   queued, does nothing);
2. fetch the inputs into the job folder: the LLaVA JSON (a store key, or an annotation run's
   ``train.json``) and its images (``<images_prefix>/<image path>``, or a run's stored images by sample),
   and the base model when it is a store prefix (``key:checkpoints/<name>/``) or a registered checkpoint
   (``checkpoint:<name>``), reporting a heartbeat meanwhile (:func:`~services.trainer.progress.heartbeat`);
   write ``config.yaml`` (the submitted fields plus the folders, and ``resume`` from the second attempt on);
3. start the child, then every ``jobs.poll_s``: read the new lines of ``metrics.jsonl`` (step, loss,
   ETA = elapsed / step × steps left), write them to the job's row (a heartbeat too), and look for a
   cancel; a cancel sends SIGTERM to the child's process group, SIGKILL after ``jobs.cancel_grace_s``.
   A report refused because the job moved on (found lost while this worker was cut off, and handed to
   another) stops the child and leaves the job to its new attempt;
4. on exit 0: ``final/`` to ``checkpoints/<name>/``, the metrics, loss curve and log to ``jobs/<id>/``, the
   checkpoint registered (step, last loss), the job succeeded; a child killed by a signal (the OOM killer,
   an operator) is started again with ``resume`` while attempts are left (``jobs.max_attempts``); any
   other exit fails the job with the child's ``error: ...`` line (or the end of its log).

Resuming (decided): every attempt after the first runs ``giqa train --resume`` in the same job folder, so
training goes on from the last complete checkpoint in ``run/`` (a half-written one has no completion
marker and is deleted, never loaded: :mod:`giqa.training.checkpoints`); with the same seed it ends where an
uninterrupted run would. An attempt on another machine finds the folder only if ``jobs.work_dir`` is shared
(the Kubernetes launcher's RWX volume); otherwise it trains from the start, which is slower but as correct.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError

from giqa.infra.db import jobs_dal
from giqa.settings import jobs_dir
from services.trainer.progress import Tail, heartbeat, progress_of, report

log = logging.getLogger("giqa.trainer.runner")

LOG_FILE = "train.log"
# Set when the worker is asked to stop (services.trainer.tasks connects Celery's worker_shutting_down): a
# training run outlasts any grace period, so the job ends now, failed with the reason, not lost later.
STOPPING = threading.Event()
ARTEFACTS = ("metrics.jsonl", "loss_curve.png", "skipped.json", LOG_FILE, "config.yaml")


class InputError(RuntimeError):
    """A job input that cannot be fetched or used (the job fails with this message)."""


# ------------------------------------------------------------------------------------------ inputs


def _safe_join(root: Path, relative: str) -> Path:
    target = (root / relative).resolve()
    if not target.is_relative_to(root.resolve()):
        raise InputError(f"image path {relative!r} leaves the dataset folder")
    return target


def fetch_inputs(ctx: Any, job: jobs_dal.JobView, folder: Path) -> tuple[Path, Path]:
    """The dataset JSON and its image folder inside ``folder/data`` (see the module docstring)."""
    from giqa.infra.storage import NotFound, StorageError

    data = folder / "data"
    images = data / "images"
    images.mkdir(parents=True, exist_ok=True)
    store = ctx.store
    sources: dict[str, str] = {}  # image path in the JSON -> object key
    try:
        if job.dataset_ref.startswith("run:"):
            from giqa.infra.db import dal

            run_id = job.dataset_ref[4:]
            with ctx.session() as s:
                run = dal.get_run(s, run_id=run_id)
                if run is None or run.dataset_key is None:
                    raise InputError(f"annotation run {run_id} has no exported dataset")
                dataset_key = run.dataset_key
                for sample in dal.iter_run_records(s, run_id=run_id):
                    if sample.image_key:
                        sources[sample.image_ref] = sample.image_key
        else:
            dataset_key = job.dataset_ref.removeprefix("key:")
        raw = store.get_bytes(dataset_key)
        try:
            rows = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{dataset_key} is not JSON: {exc}") from exc
        if not isinstance(rows, list):
            raise InputError(f"{dataset_key} is not a LLaVA JSON list")
        wanted = sorted({r["image"] for r in rows if isinstance(r, dict) and isinstance(r.get("image"), str)})
        for image in wanted:
            key = sources.get(image)
            if key is None:
                if job.images_prefix is None:
                    raise InputError(f"no stored image for {image!r} (give images_prefix)")
                key = f"{job.images_prefix.rstrip('/')}/{image}"
            target = _safe_join(images, image)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                store.get_file(key, target)
            except NotFound:
                continue  # the trainer counts and skips a row whose image is missing
        dataset = data / "train.json"
        dataset.write_bytes(raw)
    except NotFound as exc:
        raise InputError(f"not in the object store: {exc}") from exc
    except StorageError as exc:
        raise InputError(f"the object store failed: {exc}") from exc
    return dataset, images


def resolve_base_model(ctx: Any, base_model: str, folder: Path) -> str:
    """``tiny`` and folders as they are; ``key:<prefix>`` and ``checkpoint:<name>`` fetched here."""
    from giqa.infra.checkpoints import local_checkpoint
    from giqa.infra.storage import NotFound, get_folder

    if base_model.startswith("checkpoint:"):
        try:
            return str(local_checkpoint(ctx.settings, base_model[11:], sessions=ctx.session, store=ctx.store))
        except LookupError as exc:
            raise InputError(str(exc)) from exc
    if base_model.startswith("key:"):
        prefix = base_model[4:].rstrip("/") + "/"
        try:
            return str(get_folder(ctx.store, prefix, folder / "base_model"))
        except NotFound as exc:
            raise InputError(f"no base model under {prefix!r} in the object store") from exc
    return base_model


def write_config(
    job: jobs_dal.JobView, folder: Path, dataset: Path, images: Path, base_model: str, *, resume: bool = False
) -> Path:
    import yaml

    config = dict(job.config) | {
        "data": str(dataset),
        "image_root": str(images),
        "output_dir": str(folder / "run"),
        "base_model": base_model,
        "progress": False,
        "resume": resume,
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=True), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------- child


@dataclass
class Child:
    process: subprocess.Popen[bytes]
    control: socket.socket | None = None

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, grace_s: float) -> int:
        """SIGTERM to the child's process group, SIGKILL after ``grace_s``; returns the exit status."""
        for signum, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 30.0)):
            if self.process.poll() is not None:
                break
            try:
                os.killpg(self.process.pid, signum)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        try:  # the group's other members (data-loader workers) go too
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.close()
        return self.process.wait()

    def close(self) -> None:
        if self.control is not None:
            self.control.close()
            self.control = None


def start_local_child(config: Path, folder: Path) -> Child:
    """``giqa train --config config`` under the parent-death launcher, in its own process group."""
    ours, theirs = socket.socketpair()
    command = [sys.executable, "-m", "giqa.training.launch", "--parent-pid", str(os.getpid())]
    command += ["--control-fd", str(theirs.fileno())]
    if threading.current_thread() is not threading.main_thread():
        command.append("--no-pdeathsig")
    command += ["--", "--config", str(config)]
    try:
        with (folder / LOG_FILE).open("ab") as out:
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=folder,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,  # a cancel signals the whole group (data-loader workers too)
            )
    finally:
        theirs.close()
    return Child(process, ours)


def start_command(command: list[str], folder: Path) -> Child:
    """Any command (``torchrun ...``) as the child, in its own process group."""
    with (folder / LOG_FILE).open("ab") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=folder,
            start_new_session=True,
        )  # fmt: skip
    return Child(process)


def failure_of(log_file: Path, status: int) -> str:
    """The child's own ``error: ...`` line, else the end of its log."""
    try:
        lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    for line in reversed(lines):
        if line.startswith("error: "):
            return line[7:].strip()
    tail = " | ".join(line.strip() for line in lines[-5:] if line.strip())
    return f"giqa train exited with status {status}" + (f": {tail}" if tail else "")


# -------------------------------------------------------------------------------------------- a job


def run_job(
    ctx: Any,
    job_id: str,
    *,
    start: Callable[[Path, Path], Child] = start_local_child,
    folder: Path | None = None,
) -> str:
    """Run the job to its end (see the module docstring); returns its final state ('' when not claimed, or
    when the job was handed to another attempt while this one ran)."""
    settings = ctx.settings
    with ctx.session() as s:
        if not jobs_dal.claim_job(s, job_id=job_id):
            log.info("job %s is not pending; nothing to do", job_id)
            return ""
        job = jobs_dal.get_job(s, job_id=job_id)
    assert job is not None
    folder = folder or jobs_dir(settings) / job_id
    folder.mkdir(parents=True, exist_ok=True)
    attempt = job.attempts
    try:
        with heartbeat(ctx, job_id, attempt) as handed_on:
            dataset, images = fetch_inputs(ctx, job, folder)
            base_model = resolve_base_model(ctx, job.base_model, folder)
        with ctx.session() as s:  # the heartbeat's last word, and one now: no child for a job handed on
            still_ours = not handed_on.is_set() and jobs_dal.record_progress(
                s, job_id=job_id, attempt=attempt
            )
        if not still_ours:
            log.warning("job %s: handed to another attempt while its inputs were fetched", job_id)
            return ""
    except InputError as exc:
        return _end(ctx, job_id, "failed", f"input: {exc}")
    except Exception as exc:  # a bug or a store down past its retries: the job must not stay "running"
        log.exception("job %s: preparing the inputs failed", job_id)
        return _end(ctx, job_id, "failed", f"input: {type(exc).__name__}: {exc}")
    tail = Tail(folder / "run" / "metrics.jsonl")
    while True:
        if attempt > 1:
            from giqa.training.checkpoints import last_complete

            found = last_complete(folder / "run")
            log.warning("job %s attempt %d: resuming from %s", job_id, attempt, found or "the start")
        config = write_config(job, folder, dataset, images, base_model, resume=attempt > 1)
        try:
            child = start(config, folder)
        except OSError as exc:
            return _end(ctx, job_id, "failed", f"cannot start the training process: {exc}")
        why = _watch(ctx, job, child, tail, attempt)
        if why != "exited":
            status = child.stop(settings.jobs.cancel_grace_s)
            log.info("job %s: %s; the child exited with %s", job_id, why, status)
            if why == "superseded":
                return ""  # the job moved on without this worker: its new attempt reports from now on
            if why == "cancelled":
                return _end(ctx, job_id, "cancelled", "cancelled")
            return _end(
                ctx, job_id, "failed", "the train worker was stopped while the job ran; submit it again"
            )
        status = child.process.wait()
        child.close()
        if not report(ctx, job_id, tail, job.total_steps, attempt):
            return ""
        if status >= 0:
            break
        with (
            ctx.session() as s
        ):  # killed by a signal (the OOM killer, an operator): resume, if attempts are left
            following = jobs_dal.next_attempt(
                s, job_id=job_id, attempt=attempt, max_attempts=settings.jobs.max_attempts
            )
        if following is None:
            reason = f"the training process was killed by signal {-status} in attempt {attempt}"
            return _end(
                ctx, job_id, "failed", f"{reason} of {settings.jobs.max_attempts} (jobs.max_attempts)"
            )
        log.warning(
            "job %s: the training process was killed by signal %d; attempt %d", job_id, -status, following
        )
        attempt = following
    if status != 0:
        return _end(ctx, job_id, "failed", failure_of(folder / LOG_FILE, status))
    try:
        _publish(ctx, job, folder, tail)
    except Exception as exc:
        log.exception("job %s: publishing the checkpoint failed", job_id)
        return _end(ctx, job_id, "failed", f"publish: {type(exc).__name__}: {exc}")
    return _end(ctx, job_id, "succeeded", None)


def _watch(ctx: Any, job: jobs_dal.JobView, child: Child, tail: Tail, attempt: int) -> str:
    """Report every ``jobs.poll_s`` while the child runs; why it ended: ``exited``, or the child must stop:
    ``cancelled``, ``stopping`` (the worker is), ``superseded`` (the job is no longer this attempt's)."""
    settings = ctx.settings
    try:
        with ctx.session() as s:
            jobs_dal.set_job_process(s, job_id=job.id, pid=child.process.pid)
        while child.alive():
            time.sleep(settings.jobs.poll_s)
            try:
                if not report(ctx, job.id, tail, job.total_steps, attempt):
                    return "superseded"
                with ctx.session() as s:
                    if jobs_dal.cancel_requested(s, job_id=job.id):
                        return "cancelled"
            except OperationalError as exc:  # the database is away for a moment: training goes on
                log.warning("job %s: cannot report progress (%s); retrying", job.id, str(exc).splitlines()[0])
                continue
            if STOPPING.is_set():
                return "stopping"
    except BaseException:  # the worker is stopping (or a bug): the child must not outlive this task
        child.stop(settings.jobs.cancel_grace_s)
        raise
    return "exited"


def _publish(ctx: Any, job: jobs_dal.JobView, folder: Path, tail: Tail) -> None:
    from giqa.infra.storage import checkpoint_key, job_key, put_folder

    run = folder / "run"
    final = run / "final"
    prefix = checkpoint_key(job.checkpoint_name, "x")[:-1]
    put_folder(ctx.store, final, prefix)
    for name in ARTEFACTS:
        path = folder / name if name in (LOG_FILE, "config.yaml") else run / name
        if path.is_file():
            ctx.store.put_file(job_key(job.id, name), path)
    values = progress_of(tail.rows, job.total_steps)
    metrics = {k: v for k, v in values.items() if k in ("loss", "total_steps")}
    with ctx.session() as s:
        jobs_dal.register_checkpoint(
            s,
            name=job.checkpoint_name,
            job_id=job.id,
            key_prefix=prefix,
            local_path=str(final),
            step=int(values.get("step") or 0),
            metrics=metrics,
        )


def _end(ctx: Any, job_id: str, state: str, error: str | None) -> str:
    with ctx.session() as s:
        jobs_dal.finish_job(s, job_id=job_id, state=state, error=error)
    log.info("job %s %s%s", job_id, state, f": {error}" if error else "")
    return state
