"""Checkpoints that are complete or invisible: a marker written last, folders published by rename.

transformers' ``Trainer`` writes ``checkpoint-N/`` file by file; a run killed half-way leaves a folder that
looks like a checkpoint. Ours gets ``checkpoint_complete.json`` after every rank has finished writing, and
resume only considers folders that have it (incomplete ones are removed before training goes on, so a later
save into the same step's folder starts clean). ``final/`` is written to a hidden folder, then renamed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from pathlib import Path

log = logging.getLogger(__name__)

MARKER = "checkpoint_complete.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def mark_complete(folder: Path, step: int) -> None:
    """Write the completion marker (fsynced, then renamed into place) as the checkpoint's last file."""
    tmp = folder / f".{MARKER}.tmp"
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump({"step": step, "completed_at": time.time()}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, folder / MARKER)


def checkpoints(output_dir: Path) -> list[tuple[int, Path, bool]]:
    """(step, folder, complete) of every ``checkpoint-N`` folder, by step."""
    found = []
    if output_dir.is_dir():
        for child in output_dir.iterdir():
            match = _CHECKPOINT.match(child.name)
            if match and child.is_dir():
                found.append((int(match.group(1)), child, (child / MARKER).is_file()))
    return sorted(found)


def last_complete(output_dir: Path) -> Path | None:
    complete = [folder for _step, folder, ok in checkpoints(output_dir) if ok]
    return complete[-1] if complete else None


def remove_incomplete(output_dir: Path) -> list[Path]:
    """Delete the checkpoint folders without a marker (never loaded; a save may reuse their name)."""
    removed = []
    for _step, folder, ok in checkpoints(output_dir):
        if not ok:
            log.warning("removing incomplete checkpoint %s (no %s)", folder, MARKER)
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def staging_dir(final: Path) -> Path:
    """A fresh hidden folder beside ``final`` to write into before :func:`publish`. Its name is fixed (not
    :func:`giqa.files.staged_dir`'s random one) because every rank of a distributed run writes its shards
    into the same folder, and a crashed run's leftover is cleared by the next."""
    tmp = final.with_name(f".{final.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def publish(tmp: Path, final: Path) -> Path:
    """Move a fully written folder to ``final`` (:func:`giqa.files.publish_dir`, the one home of the swap)."""
    from giqa.files import publish_dir

    return publish_dir(tmp, final)
