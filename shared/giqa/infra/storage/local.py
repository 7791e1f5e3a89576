"""The embedded object store: a folder on disk behind the :class:`ObjectStore` interface.

Writes go through :mod:`giqa.files`' atomic writer (a reader sees the old object or the whole new one, and a
failed write leaves nothing), keys are checked so none can leave the root, and temporary files of writes in
progress are never listed. A "presigned" URL is a ``file://`` URL: the embedded setup has one machine.
"""

from __future__ import annotations

import mimetypes
import os
import shutil
from pathlib import Path

from giqa.files import atomic_write_bytes, atomic_writer
from giqa.infra.storage.base import NotFound, ObjectInfo, StorageError, check_key
from giqa.ports import Health


class LocalObjectStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).absolute()

    def __repr__(self) -> str:
        return f"LocalObjectStore({str(self.root)!r})"

    def ensure_bucket(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the object folder {self.root}: {exc.strerror}") from exc

    def put_bytes(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:  # noqa: ARG002
        path = self._path(key)
        try:
            atomic_write_bytes(path, data)
        except OSError as exc:
            raise self._error("cannot write", key, exc) from exc

    def put_file(self, key: str, path: str | Path, *, content_type: str = "application/octet-stream") -> None:  # noqa: ARG002
        target = self._path(key)
        try:
            with Path(path).open("rb") as source, atomic_writer(target, "wb") as handle:
                shutil.copyfileobj(source, handle, 1024 * 1024)
        except FileNotFoundError as exc:
            raise StorageError(f"cannot upload {key!r}: no file {path}", key=key) from exc
        except OSError as exc:
            raise self._error("cannot write", key, exc) from exc

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise self._missing(key) from None
        except OSError as exc:
            raise self._error("cannot read", key, exc) from exc

    def get_file(self, key: str, path: str | Path) -> None:
        source = self._path(key)
        if not source.is_file():
            raise self._missing(key)
        try:
            with source.open("rb") as handle, atomic_writer(path, "wb") as out:
                shutil.copyfileobj(handle, out, 1024 * 1024)
        except OSError as exc:
            raise self._error(f"cannot download to {path}:", key, exc) from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except IsADirectoryError:
            return  # a "folder" is not an object; S3 deletes of missing keys succeed too
        except OSError as exc:
            raise self._error("cannot delete", key, exc) from exc
        for parent in path.parents:  # empty folders left behind would only slow listings
            if parent == self.root or not parent.is_relative_to(self.root):
                break
            try:
                parent.rmdir()
            except OSError:
                break

    def list(self, prefix: str = "") -> list[str]:
        """Keys under ``prefix`` (a plain string prefix, as in S3), sorted."""
        if not self.root.is_dir():
            return []
        base = self.root
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        if folder:
            base = self._path(folder)
        keys: list[str] = []
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if name.startswith(".") and name.endswith(".tmp"):
                    continue  # a write in progress (giqa.files.atomic_writer)
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            size = path.stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            raise self._missing(key) from None
        if not path.is_file():
            raise self._missing(key)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return ObjectInfo(key=key, size=size, content_type=content_type)

    def presigned_get(self, key: str, expiry_s: int | None = None) -> str:  # noqa: ARG002 - no expiry locally
        path = self._path(key)
        if not path.is_file():
            raise self._missing(key)
        return path.as_uri()

    def health(self) -> Health:
        if not self.root.is_dir():
            return Health(False, f"object folder {self.root} does not exist")
        if not os.access(self.root, os.W_OK):
            return Health(False, f"object folder {self.root} is not writable")
        return Health(True, f"local folder {self.root}")

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _missing(self, key: str) -> NotFound:
        return NotFound(f"no object {key!r} in {self.root}", key=key)

    def _error(self, what: str, key: str, exc: OSError) -> StorageError:
        return StorageError(f"{what} {key!r} in {self.root}: {exc.strerror or exc}", key=key)
