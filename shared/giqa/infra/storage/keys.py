"""Object keys, built by pure functions so every service names the same object the same way.

Layout (decided)::

    images/<sha[:2]>/<sha256>.<suffix>       content-addressed: the same image is stored once
    uploads/<run_id>/<name>                  files a client sent with a run (descriptions, images)
    datasets/<run_id>/<name>                 a run's export (train.json, val.json, images)
    reports/<report_id>/<name>               evaluation reports
    checkpoints/<checkpoint_id>/<name>       trained model folders, file by file
    jobs/<job_id>/<name>                     a training job's inputs and logs (metrics, loss curve)

The two-character fan-out keeps any one listing prefix small. Every part is checked (:func:`check_key`):
no ``..``, no leading ``/``, no empty parts.
"""

from __future__ import annotations

import re

from giqa.infra.storage.base import InvalidKey, check_key

_SHA256 = re.compile(r"[0-9a-f]{64}")
_SUFFIX = re.compile(r"[a-z0-9]{1,10}")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def image_key(sha256: str, suffix: str) -> str:
    """``images/ab/abcdef....png`` for an image whose bytes hash to ``sha256`` (lowercase hex)."""
    if not _SHA256.fullmatch(sha256):
        raise InvalidKey(f"image id must be a lowercase sha256 hex digest, got {sha256!r}")
    suffix = suffix.lower().removeprefix(".")
    if not _SUFFIX.fullmatch(suffix):
        raise InvalidKey(f"image suffix must be 1-10 letters or digits, got {suffix!r}")
    return f"images/{sha256[:2]}/{sha256}.{suffix}"


def upload_key(run_id: str, name: str) -> str:
    return _scoped("uploads", run_id, name)


def dataset_key(run_id: str, name: str) -> str:
    """A file of a run's dataset export, e.g. ``dataset_key(run_id, "train.json")``."""
    return _scoped("datasets", run_id, name)


def report_key(report_id: str, name: str) -> str:
    return _scoped("reports", report_id, name)


def checkpoint_key(checkpoint_id: str, name: str) -> str:
    """A file of a checkpoint folder; ``name`` may hold ``/`` for sub-folders."""
    return _scoped("checkpoints", checkpoint_id, name)


def job_key(job_id: str, name: str) -> str:
    """A file of a training job: its metrics, loss curve and log."""
    return _scoped("jobs", job_id, name)


def prefix_of(kind: str, scope_id: str) -> str:
    """The listing prefix of one run's (report's, checkpoint's) objects, ending in ``/``."""
    if kind not in ("uploads", "datasets", "reports", "checkpoints", "jobs"):
        raise InvalidKey(f"unknown key kind {kind!r}")
    return f"{kind}/{_scope(scope_id)}/"


def _scope(scope_id: str) -> str:
    if not _ID.fullmatch(scope_id):
        raise InvalidKey(f"id {scope_id!r} must be letters, digits, '.', '_' or '-' (at most 128)")
    return scope_id


def _scoped(kind: str, scope_id: str, name: str) -> str:
    return check_key(f"{kind}/{_scope(scope_id)}/{name}")
