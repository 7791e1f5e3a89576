"""What every object store shares: the interface, the errors, the key check.

Errors (decided): one :class:`StorageError` for everything a store can fail with, its message naming the
key and the store; :class:`NotFound` for a missing key; ``retryable`` says whether trying again later can
help (a server that does not answer, a 5xx), which is what a queue task needs to choose between a retry and
a recorded failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from giqa.ports import Health

MAX_KEY_BYTES = 1024  # S3's limit


class StorageError(RuntimeError):
    """An object-store operation that failed; ``key`` when one was involved, ``retryable`` when a later
    attempt may succeed (the store was unreachable or answered 5xx)."""

    def __init__(self, message: str, *, key: str | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.key = key
        self.retryable = retryable


class NotFound(StorageError):
    """The key is not in the store."""


class InvalidKey(ValueError):
    """A key that cannot name an object (empty, absolute, with ``..``, too long, ...)."""


def check_key(key: str) -> str:
    """``key`` if it can name an object in every store; :class:`InvalidKey` saying why not.

    Refused: empty keys, a leading ``/``, backslashes, empty, ``.`` or ``..`` segments (so the local store
    can never leave its root and S3 and local keys mean the same), control characters, over 1024 bytes.
    """
    if not isinstance(key, str) or not key:
        raise InvalidKey(f"object key must be a non-empty string, got {key!r}")
    if key.startswith("/"):
        raise InvalidKey(f"object key {key!r} starts with '/'; keys are relative")
    if "\\" in key:
        raise InvalidKey(f"object key {key!r} holds a backslash; use '/' between parts")
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise InvalidKey(f"object key {key!r} holds a control character")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidKey(f"object key is {len(key.encode('utf-8'))} bytes, over the limit of {MAX_KEY_BYTES}")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise InvalidKey(f"object key {key!r} has an empty, '.' or '..' part")
    return key


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    content_type: str
    etag: str | None = None  # S3: "<md5>" or "<md5>-<parts>" for a multipart upload; None locally


@runtime_checkable
class ObjectStore(Protocol):
    """Objects by key in one bucket (MinIO/S3) or one folder (embedded). Every method raises
    :class:`StorageError` (:class:`NotFound` for a missing key) and never a client library's own error."""

    def put_bytes(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None: ...

    def put_file(
        self, key: str, path: str | Path, *, content_type: str = "application/octet-stream"
    ) -> None: ...

    def get_bytes(self, key: str) -> bytes: ...

    def get_file(self, key: str, path: str | Path) -> None: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...

    def list(self, prefix: str = "") -> list[str]: ...

    def stat(self, key: str) -> ObjectInfo: ...

    def presigned_get(self, key: str, expiry_s: int | None = None) -> str: ...

    def ensure_bucket(self) -> None: ...

    def health(self) -> Health: ...
