"""Producing a predictions file for a bench with any :class:`giqa.ports.GroundedVLM`: batched, resumable.

Each batch's lines are appended with one write, then flushed and fsynced, so an interrupted run loses at most
the batch in flight. ``resume=True`` keeps the valid lines already in the file (dropping a torn last line)
and answers only the items not yet answered. The bench, its images and the output are checked before a model
is loaded (:func:`plan_predictions`), and the output is only created once there is an answer to write.
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
from giqa.files import atomic_write_lines, check_output_file, iter_lines
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


@dataclass(frozen=True, slots=True)
class PredictPlan:
    """Everything checked before a model is loaded: the bench, its images, the output and what is done."""

    bench_file: Path
    items: Sequence[BenchItem]
    todo: Sequence[BenchItem]
    out: Path
    fresh: bool  # the output starts anew: no file, an empty one, or --overwrite
    kept_lines: Sequence[str] | None  # --resume: the valid lines to keep when the file holds others


def _done(out: Path) -> tuple[list[str], list[str], bool]:
    """Ids with a valid line in ``out``, those lines, and whether the file holds anything else (e.g. a torn
    last line or bytes that are not UTF-8): then it is rewritten with the valid lines before appending."""
    ids: list[str] = []
    kept: list[str] = []
    other = False
    for line in iter_lines(out):
        try:
            pred = Prediction.model_validate_json(line.text) if not line.problem else None
        except ValueError:
            pred = None
        if pred is None or pred.id in ids:
            other = True
            continue
        ids.append(pred.id)
        kept.append(json.dumps({"id": pred.id, "response": pred.response}, ensure_ascii=False))
    return ids, kept, other


def _image_path(bench_file: Path, item: BenchItem) -> Path:
    """The item's image: relative to the bench file, or absolute.

    (decided) Unlike ``giqa annotate``'s inputs, a bench's paths are not confined to its folder: a bench is a
    reference the user chose, and a slice of a bench in another folder legitimately points at ``../images``
    or at absolute paths (DESIGN §3.4).
    """
    path = Path(item.image)
    return path if path.is_absolute() else bench_file.parent / path


def plan_predictions(
    bench_file: str | Path,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    limit: int | None = None,
) -> PredictPlan:
    """Read and check the bench, its images and the output; nothing is written and no model is needed."""
    bench_file, out = Path(bench_file), Path(out)
    items: Sequence[BenchItem] = read_bench(bench_file)
    if limit is not None:
        items = items[:limit]
    missing = [str(path) for it in items if not (path := _image_path(bench_file, it)).is_file()]
    if missing:
        raise PredictError(f"{len(missing)} bench image(s) not found, e.g. {missing[:3]}")
    check_output_file(out, "predictions --out")
    done: list[str] = []
    kept: list[str] | None = None
    has_answers = out.is_file() and out.stat().st_size > 0  # an empty file holds nothing to lose
    if has_answers and resume:
        done, valid, other = _done(out)
        with out.open("rb") as handle:
            handle.seek(-1, os.SEEK_END)
            unterminated = handle.read(1) != b"\n"  # the next append must start on a fresh line
        kept = valid if other or unterminated else None
    elif has_answers and not overwrite:
        raise PredictError(f"{out} exists; pass --resume to continue it or --overwrite to replace it")
    done_set = set(done)
    todo = [it for it in items if it.id not in done_set]
    return PredictPlan(bench_file, items, todo, out, not (has_answers and resume), kept)


def run_plan(
    plan: PredictPlan,
    vlm: GroundedVLM,
    *,
    batch_size: int = 8,
    max_new_tokens: int = 256,
    progress: bool = True,
) -> RunSummary:
    """Answer ``plan.todo`` and append ``{"id", "response"}`` lines to ``plan.out``, one fsync per batch.

    The output is opened when the first batch is answered: a model or server that fails before then
    leaves no file (and an --overwrite run leaves the old one as it was).
    """
    if batch_size < 1:
        raise PredictError("batch size must be at least 1")
    items, todo, out = plan.items, plan.todo, plan.out
    if plan.kept_lines is not None:
        atomic_write_lines(out, plan.kept_lines)
    bar = tqdm(
        total=len(items), initial=len(items) - len(todo), desc="predict", unit="item", disable=not progress
    )
    handle = None
    try:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            inputs = []
            for it in batch:
                try:
                    with Image.open(_image_path(plan.bench_file, it)) as img:
                        inputs.append((img.convert("RGB"), it.question))
                except OSError as exc:  # answers so far are on disk: --resume goes on after a fix
                    raise PredictError(f"cannot read the image of {it.id}: {exc}") from exc
            answers = vlm.answer_batch(inputs, max_new_tokens=max_new_tokens)
            if len(answers) != len(batch):
                raise RuntimeError(f"the model returned {len(answers)} answers for {len(batch)} questions")
            if handle is None:
                out.parent.mkdir(parents=True, exist_ok=True)
                handle = out.open("w" if plan.fresh else "a", encoding="utf-8")
            handle.write(
                "".join(
                    json.dumps({"id": it.id, "response": ans}, ensure_ascii=False) + "\n"
                    for it, ans in zip(batch, answers, strict=True)
                )
            )
            handle.flush()
            os.fsync(handle.fileno())
            bar.update(len(batch))
    finally:
        bar.close()
        if handle is not None:
            handle.close()
    return RunSummary(len(items), len(items) - len(todo), len(todo), out)


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
    """Answer every bench item (or the first ``limit``): :func:`plan_predictions`, then :func:`run_plan`."""
    if batch_size < 1:
        raise PredictError("batch size must be at least 1")
    plan = plan_predictions(bench_file, out, resume=resume, overwrite=overwrite, limit=limit)
    return run_plan(plan, vlm, batch_size=batch_size, max_new_tokens=max_new_tokens, progress=progress)
