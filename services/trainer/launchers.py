"""Launchers: how a submitted training job starts and how a cancel reaches it, behind one interface.

- :class:`LocalLauncher`: sends the job to the ``train`` queue; a worker runs it
  (:func:`services.trainer.runner.run_job`: ``giqa train`` as a child process). A cancel is a flag in the
  job's row, which the worker polls: it kills the child and records ``cancelled``.
- :class:`KubernetesLauncher`: creates the Job (or PyTorchJob) of :mod:`services.trainer.kubernetes`
  through a :class:`~services.trainer.kubernetes.KubernetesApi`; its node 0 runs the same runner. A cancel
  deletes the objects (the pods get SIGTERM) and records ``cancelled``.

:func:`make_launcher` picks one by name (the request's ``launcher``, else settings ``jobs.launcher``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from giqa.infra.db import jobs_dal
from giqa.settings import Settings

TRAIN_TASK = "giqa.jobs.train"


class Launcher(Protocol):
    name: str

    def submit(self, job: jobs_dal.JobView) -> None: ...

    def cancel(self, job: jobs_dal.JobView) -> None:
        """Called after :func:`~giqa.infra.db.jobs_dal.request_cancel` flagged a running job."""
        ...

    def sync(self, job: jobs_dal.JobView) -> None:
        """Bring a job that has not ended in line with what runs it (a failure its runner cannot report)."""
        ...


class LocalLauncher:
    name = "local"

    def __init__(self, send: Callable[[str, list[Any]], None]) -> None:
        self.send = send

    def submit(self, job: jobs_dal.JobView) -> None:
        self.send(TRAIN_TASK, [job.id])

    def cancel(self, job: jobs_dal.JobView) -> None:  # noqa: ARG002 - the interface's signature
        return None  # the worker running it sees the flag within jobs.poll_s

    def sync(self, job: jobs_dal.JobView) -> None:  # noqa: ARG002 - the interface's signature
        return None  # the worker reports; a dead one's job is requeued (jobs_dal.requeue_lost_jobs)


class KubernetesLauncher:
    name = "kubernetes"

    def __init__(self, settings: Settings, api: Any, sessions: Callable[[], Any]) -> None:
        self.settings = settings
        self.api = api
        self.sessions = sessions

    def submit(self, job: jobs_dal.JobView) -> None:
        from services.trainer.kubernetes import manifests, object_name

        for manifest in manifests(job.id, self.settings.jobs.kubernetes):
            self.api.create(manifest)
        with self.sessions() as s:
            jobs_dal.set_job_process(s, job_id=job.id, k8s_name=object_name(job.id))

    def cancel(self, job: jobs_dal.JobView) -> None:
        from services.trainer.kubernetes import manifests

        for manifest in reversed(manifests(job.id, self.settings.jobs.kubernetes)):
            self.api.delete(manifest)
        with self.sessions() as s:
            jobs_dal.finish_job(s, job_id=job.id, state="cancelled", error="cancelled")

    def sync(self, job: jobs_dal.JobView) -> None:
        """A Job that failed before its node 0 could report (an image that does not pull, a pod that cannot
        start, a crash), or that is gone, fails the job with the cluster's reason."""
        from services.trainer.kubernetes import manifests

        if job.state not in ("pending", "running") or job.k8s_name is None:
            return
        outcome, message = self.api.status(manifests(job.id, self.settings.jobs.kubernetes)[-1])
        error = {
            "failed": f"kubernetes: {message}",
            "missing": f"kubernetes: the Job {job.k8s_name} is gone (deleted outside giqa?)",
            "succeeded": "kubernetes: the Job ended without its node 0 reporting the result",
        }.get(outcome)
        if error is not None:
            with self.sessions() as s:
                jobs_dal.finish_job(s, job_id=job.id, state="failed", error=error)


def make_launcher(
    name: str,
    settings: Settings,
    *,
    send: Callable[[str, list[Any]], None],
    sessions: Callable[[], Any],
    kubernetes_api: Callable[[], Any] | None = None,
) -> Launcher:
    """The launcher called ``name`` (``local`` or ``kubernetes``); ``kubernetes_api`` builds the API client
    (default: :class:`~services.trainer.kubernetes.ClientApi`, the ``kubernetes`` package)."""
    if name == "local":
        return LocalLauncher(send)
    if name == "kubernetes":
        from services.trainer.kubernetes import ClientApi

        return KubernetesLauncher(settings, (kubernetes_api or ClientApi)(), sessions)
    raise ValueError(f"unknown launcher {name!r}; the launchers are local and kubernetes")
