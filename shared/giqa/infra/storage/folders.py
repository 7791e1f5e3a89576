"""Folders in the object store: a checkpoint folder up file by file, and back down.

A folder is stored as one object per file under a prefix ending in ``/`` (``checkpoints/<name>/...``), the
relative path kept in the key. Downloading writes into a temporary sibling folder renamed into place at the
end, so a reader never sees a half-fetched model; a folder already there is kept (keys are immutable: a
checkpoint name is registered once).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from giqa.infra.storage.base import NotFound, ObjectStore, check_key

CONTENT_TYPES = {".json": "application/json", ".png": "image/png", ".jsonl": "application/x-ndjson"}


def put_folder(store: ObjectStore, folder: Path, prefix: str) -> list[str]:
    """Upload every file under ``folder`` to ``<prefix><relative path>``; returns the keys, sorted."""
    if not prefix.endswith("/"):
        raise ValueError(f"a folder prefix must end in '/', got {prefix!r}")
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    keys = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        key = check_key(prefix + path.relative_to(folder).as_posix())
        store.put_file(key, path, content_type=CONTENT_TYPES.get(path.suffix, "application/octet-stream"))
        keys.append(key)
    if not keys:
        raise FileNotFoundError(f"{folder} holds no files")
    return keys


def get_folder(store: ObjectStore, prefix: str, dest: Path) -> Path:
    """Download every object under ``prefix`` into ``dest`` (kept when it exists); returns ``dest``."""
    if dest.is_dir():
        return dest
    keys = store.list(prefix)
    if not keys:
        raise NotFound(f"no objects under {prefix!r}", key=prefix)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for key in keys:
            target = tmp / key[len(prefix) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            store.get_file(key, target)
        try:
            tmp.rename(dest)
        except OSError:
            if not dest.is_dir():  # another process renamed its copy first: theirs is as good
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
