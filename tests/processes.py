"""Finding, waiting for and killing real embedded-server processes in tests (psutil)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

import giqa

LAUNCHER_NAME = "_child.py"  # giqa/llm/_child.py: every embedded server runs under it


def giqa_env(**extra: str) -> dict[str, str]:
    """The environment of a child Python that imports this checkout's giqa and talks to no LLM URL."""
    shared = str(Path(giqa.__file__).resolve().parents[1])
    env = dict(os.environ)
    env.pop("GIQA_LLM__URL", None)
    env["PYTHONPATH"] = os.pathsep.join([shared, *filter(None, [env.get("PYTHONPATH")])])
    env["HF_HUB_OFFLINE"] = "1"
    return env | extra


def spawn(
    args: list[str], log_dir: Path, name: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``python args...`` with stdout/stderr in files (a pipe nobody reads could block the child);
    ``env``: variables added to :func:`giqa_env`'s."""
    out = (log_dir / f"{name}.out").open("wb")
    err = (log_dir / f"{name}.err").open("wb")
    try:
        return subprocess.Popen(
            [sys.executable, *args],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=giqa_env(**(env or {})),
        )
    finally:
        out.close()
        err.close()


def giqa_cli(*args: str) -> list[str]:
    return ["-c", "from giqa.cli import main; main()", *args]


def is_server(process: psutil.Process) -> bool:
    try:
        return any(part.endswith(LAUNCHER_NAME) for part in process.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return False


def servers_under(pid: int) -> list[psutil.Process]:
    """Embedded servers started by ``pid`` or its descendants (empty when ``pid`` is gone)."""
    try:
        return [p for p in psutil.Process(pid).children(recursive=True) if is_server(p)]
    except psutil.NoSuchProcess:
        return []


def wait_for_server(parent: subprocess.Popen[bytes], timeout_s: float = 60.0) -> psutil.Process:
    """The parent's embedded server once it answers ``/v1/models`` (so the parent is past the start)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if parent.poll() is not None:
            raise AssertionError(f"the parent exited with {parent.returncode} before its server was up")
        for server in servers_under(parent.pid):
            if serving(server):
                return server
        time.sleep(0.1)
    raise AssertionError(f"no embedded server answered within {timeout_s:.0f} s")


def serving(server: psutil.Process) -> bool:
    try:
        ports = [c.laddr.port for c in server.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    for port in ports:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
    return False


def gone(process: psutil.Process) -> bool:
    """Ended: not running, or a zombie (an orphan's new parent may be slow to reap it, or never does)."""
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(processes: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Those of ``processes`` still alive after ``timeout_s`` (empty: all ended in time)."""
    deadline = time.monotonic() + timeout_s
    alive = [p for p in processes if not gone(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if not gone(p)]
    return alive


def kill_all(processes: list[psutil.Process]) -> None:
    for process in processes:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


def kill_parent(parent: subprocess.Popen[bytes]) -> None:
    """Cleanup for a ``finally``: the parent's servers and the parent itself, whatever state they are in."""
    leftovers = servers_under(parent.pid)
    if parent.poll() is None:
        parent.kill()
    try:
        parent.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    kill_all(leftovers)


SESSION_MARK = (
    "GIQA_TEST_SESSION"  # set in the test session's environment; every process it starts inherits it
)


def marked_servers(token: str) -> list[psutil.Process]:
    """Embedded servers anywhere on the machine whose environment carries ``SESSION_MARK=token``: also the
    orphans whose parent died (re-parented, they are no longer anyone's child in this session)."""
    found = []
    for process in psutil.process_iter():
        if not is_server(process):
            continue
        try:
            if process.environ().get(SESSION_MARK) == token:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


def listening_port(process: subprocess.Popen[bytes], timeout_s: float = 60.0) -> int:
    """The TCP port ``process`` listens on (a server started with port 0), once it listens."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the process exited with {process.returncode} before it listened")
        try:
            ports = [
                c.laddr.port
                for c in psutil.Process(process.pid).net_connections(kind="tcp")
                if c.status == psutil.CONN_LISTEN
            ]
        except psutil.NoSuchProcess:
            ports = []
        if ports:
            return ports[0]
        time.sleep(0.1)
    raise AssertionError(f"the process did not listen within {timeout_s:.0f} s")


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    """Until ``url`` + ``/ready`` answers 200 (a giqa service with its backend loaded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the service exited with {process.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/ready", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url}/ready did not answer 200 within {timeout_s:.0f} s")
