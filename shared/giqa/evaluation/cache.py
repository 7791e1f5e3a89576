"""A persistent cache of judge scores, so re-scoring a report is free.

Keyed by (judge model, prompt hash, inputs): a different judge or a changed prompt never reuses a score.
SQLite gives atomic, crash-safe writes (one transaction per score) and lets concurrent judge threads and
several evaluator processes share one file.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path

from giqa.files import OutputPathError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS judge_scores (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    prompt_hash TEXT NOT NULL,
    score INTEGER NOT NULL,
    created REAL NOT NULL
)
"""


def cache_key(model: str, prompt_hash: str, inputs: dict[str, str]) -> str:
    payload = json.dumps([model, prompt_hash, inputs], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class JudgeCache:
    """``get``/``put`` of integer scores in ``<dir>/judge_cache.sqlite``."""

    FILENAME = "judge_cache.sqlite"

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / self.FILENAME
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # One connection shared by the judge's threads, serialized by the lock; autocommit per statement.
            self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise OutputPathError(
                f"cannot open the judge cache {self.path}: {exc} "
                "(choose --cache-dir or settings eval.judge_cache_dir)"
            ) from exc

    def get(self, key: str) -> int | None:
        with self._lock:
            row = self._conn.execute("SELECT score FROM judge_scores WHERE key = ?", (key,)).fetchone()
        return None if row is None else int(row[0])

    def put(self, key: str, *, model: str, prompt_hash: str, score: int) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO judge_scores (key, model, prompt_hash, score, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (key, model, prompt_hash, int(score), time.time()),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM judge_scores").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
