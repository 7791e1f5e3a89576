"""The whole annotation platform on one machine: every service and worker its own process on loopback.

:func:`plan` is the process table (name -> argv and the environment every process shares), built from
settings and ports, so ``giqa stack`` (``make stack``), the end-to-end test and the overhead benchmark
start exactly the same processes:

- ``s3``: a local S3 server (``moto_server``) unless ``storage.endpoint`` names one already;
- ``llm``: the embedded llama.cpp server (``giqa llm serve``) unless ``llm.url`` names one already;
- ``detector``, ``iqa_filter``, ``annotator``: the FastAPI services (uvicorn);
- ``worker-llm``, ``worker-detect1..N``, ``worker-judge``, ``worker-cpu``: Celery workers, one per queue
  (:func:`giqa.infra.queue.worker_argv`: solo pools for the model queues, threads for the LLM queue);
- with ``jobs=True``: the ``trainer`` and ``evaluator`` services and their ``worker-train`` and
  ``worker-eval`` (training jobs run as children of the train worker).
  With the detector and iqa_filter services running, the detect and judge workers call them over HTTP
  (``pipeline.detector_url``/``judge_url``), so the models are loaded once, in the services.

Postgres and Redis are not started here: they run on the machine already (the settings' ``db.url`` and
``queue.broker_url``). :class:`Stack` starts the processes in order, waits for each service's ``/health``,
writes every process's output to ``<log_dir>/<name>.log`` and stops them all (SIGTERM, then SIGKILL after
a grace period) when it is closed, in reverse order.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from giqa.infra.queue import worker_argv
from giqa.settings import Settings

DEFAULT_PORTS = {
    "annotator": 8300,
    "detector": 8301,
    "iqa_filter": 8302,
    "llm": 8310,
    "s3": 9300,
    "trainer": 8500,
    "evaluator": 8600,
}


@dataclass
class Process:
    name: str
    argv: list[str]
    health: str | None = None  # URL answering once the process is ready


@dataclass
class Plan:
    processes: list[Process]
    env: dict[str, str]  # GIQA_* settings every process gets (on top of the caller's environment)
    urls: dict[str, str] = field(default_factory=dict)


def _bin(name: str) -> str:
    """An executable of this Python's environment (the venv's ``celery``, ``uvicorn``, ``moto_server``)."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def plan(
    settings: Settings,
    *,
    ports: Mapping[str, int] | None = None,
    detect_workers: int = 1,
    repo_root: Path | None = None,
    jobs: bool = False,
) -> Plan:
    """The processes of the stack and their shared environment (see the module docstring)."""
    port = DEFAULT_PORTS | dict(ports or {})
    host = "127.0.0.1"
    env: dict[str, str] = {}
    processes: list[Process] = []
    if settings.storage.endpoint is None:
        s3 = f"http://{host}:{port['s3']}"
        processes.append(Process("s3", [_bin("moto_server"), "-H", host, "-p", str(port["s3"])], s3))
        env |= {
            "GIQA_STORAGE__ENDPOINT": s3,
            "GIQA_STORAGE__ACCESS_KEY": settings.storage.access_key or "giqa",
            "GIQA_STORAGE__SECRET_KEY": "giqa-local-secret",
        }
    if settings.llm.url is None:
        llm = f"http://{host}:{port['llm']}/v1"
        processes.append(
            Process(
                "llm",
                [sys.executable, "-m", "giqa.cli", "llm", "serve", "--port", str(port["llm"])],
                f"{llm}/models",
            )
        )
        env |= {"GIQA_LLM__URL": llm, "GIQA_LLM__DIALECT": "json_object"}
    services = ("detector", "iqa_filter", "annotator") + (("trainer", "evaluator") if jobs else ())
    urls = {name: f"http://{host}:{port[name]}" for name in services}
    if jobs:
        env |= {"GIQA_JOBS__TRAINER_URL": urls["trainer"], "GIQA_JOBS__EVALUATOR_URL": urls["evaluator"]}
    env |= {
        "GIQA_PIPELINE__DETECTOR_URL": urls["detector"],
        "GIQA_PIPELINE__JUDGE_URL": urls["iqa_filter"],
        "GIQA_ANNOTATOR__URL": urls["annotator"],
    }
    for name in services:
        argv = [
            _bin("uvicorn"),
            f"services.{name}.app:app",
            "--factory",
            "--host",
            host,
            "--port",
            str(port[name]),
        ]
        argv += ["--log-level", "warning"]
        processes.append(Process(name, argv, f"{urls[name]}/health"))
    celery = _bin("celery")
    processes.append(Process("worker-llm", [celery, *worker_argv(settings, "llm")]))
    for index in range(1, detect_workers + 1):
        # the detect worker calls the detector service over HTTP: threads wait on it as well as a solo pool
        argv = worker_argv(settings, "detect", index=index, pool="solo")
        processes.append(Process(f"worker-detect{index}", [celery, *argv]))
    processes.append(Process("worker-judge", [celery, *worker_argv(settings, "judge")]))
    processes.append(Process("worker-cpu", [celery, *worker_argv(settings, "cpu")]))
    if jobs:
        processes.append(Process("worker-train", [celery, *worker_argv(settings, "train")]))
        processes.append(Process("worker-eval", [celery, *worker_argv(settings, "eval")]))
    root = repo_root or Path.cwd()
    paths = [str(root / "shared"), str(root)]
    env["PYTHONPATH"] = os.pathsep.join(
        paths + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    return Plan(processes, env, urls)


class StackError(RuntimeError):
    pass


class Stack:
    """Start a :class:`Plan`'s processes (logs in ``log_dir``) and stop them all on :meth:`close`."""

    def __init__(
        self,
        the_plan: Plan,
        log_dir: Path,
        *,
        cwd: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
    ):
        self.plan = the_plan
        self.log_dir = log_dir
        self.cwd = cwd
        self.env = os.environ | dict(extra_env or {}) | the_plan.env
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, *, timeout_s: float = 120.0, only: set[str] | None = None) -> Stack:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            for process in self.plan.processes:
                if only is not None and process.name not in only:
                    continue
                self.start_one(process)
            for process in self.plan.processes:
                if process.health and process.name in self.running:
                    self.wait_healthy(process, timeout_s)
        except BaseException:
            self.close()
            raise
        return self

    def start_one(self, process: Process) -> subprocess.Popen[bytes]:
        with (self.log_dir / f"{process.name}.log").open("ab") as log:
            child = subprocess.Popen(
                process.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.cwd,
                env=self.env,
                start_new_session=True,  # Ctrl-C reaches the launcher only; it stops them in order
            )
        self.running[process.name] = child
        return child

    def wait_healthy(self, process: Process, timeout_s: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout_s
        child = self.running[process.name]
        assert process.health is not None
        while time.monotonic() < deadline:
            if child.poll() is not None:
                raise StackError(
                    f"{process.name} exited with {child.returncode}; see {self.log(process.name)}"
                )
            try:
                if httpx.get(process.health, timeout=2.0).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise StackError(f"{process.name} did not answer {process.health} within {timeout_s:.0f} s")

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def dead(self) -> dict[str, int]:
        """Processes that exited, with their exit codes."""
        return {n: p.returncode for n, p in self.running.items() if p.poll() is not None}

    def stop_one(self, name: str, grace_s: float = 10.0) -> None:
        child = self.running.pop(name, None)
        if child is None or child.poll() is not None:
            return
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

    def close(self, grace_s: float = 10.0) -> None:
        for name in reversed(list(self.running)):
            self.stop_one(name, grace_s)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
