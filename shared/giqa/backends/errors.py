"""The error of a model backend behind HTTP (:mod:`giqa.backends.remote`), split like
:mod:`giqa.llm.errors` by what the caller can do about it, but in one class with a flag, since a queue
task only needs to know whether to retry. Importable without httpx (the CLI's safety net catches it)."""

from __future__ import annotations


class RemoteBackendError(RuntimeError):
    """A remote detector or judge failed.

    ``retryable`` True: the service could not be reached or kept failing (connection refused, time-outs,
    HTTP 5xx/429/503) after the client's own retries; a later attempt may succeed. False: the service
    refused the request itself (HTTP 4xx: a bad image, a bad box, a wrong key) or answered something that
    is not the contract; sending it again will not help. ``status`` and ``code`` are the HTTP status and
    the service's error code (:class:`giqa.wire.ErrorBody`) where there was an answer.
    """

    def __init__(
        self, message: str, *, retryable: bool, status: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.code = code
