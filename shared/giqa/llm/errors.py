"""Errors of the chat LLM layer: one base class, split by what the caller can do about it."""

from __future__ import annotations


class LLMError(RuntimeError):
    """Base class of every chat-LLM failure."""


class LLMUnavailableError(LLMError):
    """The server could not be reached or kept failing (connection refused, timeouts, HTTP 5xx/429)."""


class LLMRequestError(LLMError):
    """The server refused the request itself (HTTP 4xx other than 429): retrying will not help."""


class LLMOutputError(LLMError):
    """The model kept answering text that is not JSON or does not satisfy the schema.

    ``raw`` is the last answer, ``problem`` what was wrong with it.
    """

    def __init__(self, message: str, *, raw: str = "", problem: str = "") -> None:
        super().__init__(message)
        self.raw = raw
        self.problem = problem
