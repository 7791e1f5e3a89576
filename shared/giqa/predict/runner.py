"""Producing a predictions file for a bench with any :class:`giqa.ports.GroundedVLM`: batched, resumable.

Each batch's lines are appended with one write, then flushed and fsynced, so an interrupted run loses at most
the batch in flight. ``resume=True`` keeps the valid lines already in the file (dropping a torn last line)
and answers only the items not yet answered.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from giqa.evaluation.io import read_bench
from giqa.ports import GroundedVLM
from giqa.schemas import BenchItem, Prediction


class PredictError(ValueError):
    """A run that cannot start: the output exists without --resume, images are missing, ..."""


@dataclass(frozen=True, slots=True)
class RunSummary:
    total: int
    already_done: int
    answered: int
    out: Path


def _done_ids(out: Path) -> list[str]:
    """Ids with a valid line in ``out``; the file is rewritten without invalid (e.g. torn) lines."""
    kept: list[str] = []
    ids: list[str] = []
    with out.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                pred = Prediction.model_validate_json(line)
            except ValueError:
                continue
            if pred.id not in ids:
                ids.append(pred.id)
                kept.append(json.dumps({"id": pred.id, "response": pred.response}, ensure_ascii=False) + "\n")
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text("".join(kept), encoding="utf-8")
    tmp.replace(out)
    return ids


def _image_path(bench_file: Path, item: BenchItem) -> Path:
    path = Path(item.image)
    return path if path.is_absolute() else bench_file.parent / path


def run_predictions(
    bench_file: str | Path,
    vlm: GroundedVLM,
    out: str | Path,
    *,
    batch_size: int = 8,
    max_new_tokens: int = 256,
    resume: bool = False,
    overwrite: bool = False,
    limit: int | None = None,
    progress: bool = True,
) -> RunSummary:
    """Answer every bench item (or the first ``limit``) and append ``{"id", "response"}`` lines to ``out``."""
    if batch_size < 1:
        raise PredictError("batch size must be at least 1")
    bench_file, out = Path(bench_file), Path(out)
    items: Sequence[BenchItem] = read_bench(bench_file)
    if limit is not None:
        items = items[:limit]
    missing = [str(_image_path(bench_file, it)) for it in items if not _image_path(bench_file, it).is_file()]
    if missing:
        raise PredictError(f"{len(missing)} bench image(s) not found, e.g. {missing[:3]}")
    done: list[str] = []
    if out.exists():
        if resume:
            done = _done_ids(out)
        elif overwrite:
            out.unlink()
        else:
            raise PredictError(f"{out} exists; pass --resume to continue it or --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    done_set = set(done)
    todo = [it for it in items if it.id not in done_set]
    bar = tqdm(
        total=len(items), initial=len(items) - len(todo), desc="predict", unit="item", disable=not progress
    )
    try:
        with out.open("a", encoding="utf-8") as handle:
            for start in range(0, len(todo), batch_size):
                batch = todo[start : start + batch_size]
                inputs = []
                for it in batch:
                    try:
                        with Image.open(_image_path(bench_file, it)) as img:
                            inputs.append((img.convert("RGB"), it.question))
                    except OSError as exc:  # answers so far are on disk: --resume goes on after a fix
                        raise PredictError(f"cannot read the image of {it.id}: {exc}") from exc
                answers = vlm.answer_batch(inputs, max_new_tokens=max_new_tokens)
                if len(answers) != len(batch):
                    raise RuntimeError(
                        f"the model returned {len(answers)} answers for {len(batch)} questions"
                    )
                lines = "".join(
                    json.dumps({"id": it.id, "response": ans}, ensure_ascii=False) + "\n"
                    for it, ans in zip(batch, answers, strict=True)
                )
                handle.write(lines)
                handle.flush()
                os.fsync(handle.fileno())
                bar.update(len(batch))
    finally:
        bar.close()
    return RunSummary(len(items), len(items) - len(todo), len(todo), out)
