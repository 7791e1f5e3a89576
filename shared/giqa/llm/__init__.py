"""The chat LLM layer: an OpenAI-compatible client (vLLM in production) and the embedded llama.cpp server."""

from giqa.llm.client import DIALECTS, JSONRequest, OpenAIChatClient
from giqa.llm.errors import LLMError, LLMOutputError, LLMRequestError, LLMUnavailableError

__all__ = [
    "DIALECTS",
    "JSONRequest",
    "LLMError",
    "LLMOutputError",
    "LLMRequestError",
    "LLMUnavailableError",
    "OpenAIChatClient",
]
