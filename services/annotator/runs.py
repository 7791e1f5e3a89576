"""What the annotator's routes do, without HTTP: create a run from its inputs, report its progress, retry
its failed samples, find its dataset. The routes in :mod:`services.annotator.app` only translate.

Creating a run (decided): the descriptions are parsed by the same adapters as ``giqa annotate``
(:mod:`giqa.pipeline.inputs`: JSONL lines or LLaVA JSON, the same keys), each referenced image is checked
and stored under its content address (:func:`giqa.infra.storage.put_image`; storing the same bytes twice
costs one upload), and only then are the run, image and sample rows written in ONE transaction, so a
request that fails leaves no rows and at most images nothing refers to yet. A request that cannot describe
a run (no descriptions, a descriptions file that does not parse, no pairs in it, two uploads under one
name) is refused as a whole; a sample whose image is missing or does not decode, or whose description is
empty or too long, becomes a failed sample (stage ``input``), as in ``giqa annotate``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from giqa.backends.images import ImageError
from giqa.files import InputFileError
from giqa.infra.db import dal
from giqa.pipeline.inputs import InputItem, read_jsonl, read_llava, unique_keys
from services.annotator.tasks import INPUT_PREFIX, WorkerContext, enqueue, next_stage


class BadRequest(ValueError):
    """The request cannot describe a run (answered 400, nothing written)."""


class NotFoundError(LookupError):
    pass


class Conflict(RuntimeError):
    pass


def parse_descriptions(data: bytes, filename: str, *, max_chars: int) -> list[InputItem]:
    """The (image, description) items of a descriptions upload (``.jsonl`` lines or ``.json`` LLaVA)."""
    suffix = PurePosixPath(filename or "descriptions.jsonl").suffix.lower() or ".jsonl"
    if suffix not in (".jsonl", ".json"):
        raise BadRequest(
            f"descriptions must be .jsonl (image/description lines) or .json (LLaVA): {filename}"
        )
    if not data.strip():
        raise BadRequest(f"the descriptions file {filename} is empty")
    with tempfile.TemporaryDirectory(prefix="giqa-upload-") as tmp:
        # the adapters name problems by the file's name: the one the operator uploaded
        path = Path(tmp) / (PurePosixPath(filename).name or f"descriptions{suffix}")
        path.write_bytes(data)
        reader = read_jsonl if suffix == ".jsonl" else read_llava
        try:
            items = list(unique_keys(reader(path, max_chars=max_chars)))
        except (InputFileError, ValueError) as exc:
            raise BadRequest(f"descriptions: {exc}") from exc
    if not items:
        raise BadRequest("no (image, description) pairs in the descriptions")
    return items


def _safe_ref(ref: str) -> str | None:
    """Why an image path may not be used as a store key suffix, else None."""
    parts = PurePosixPath(ref).parts
    if ref.startswith("/") or ".." in parts or "\\" in ref:
        return f"image path {ref!r} must be relative, without '..'"
    return None


@dataclass
class Created:
    run_id: str
    total: int
    pending: list[int]
    failed: int


def create_run(
    ctx: WorkerContext,
    *,
    name: str,
    items: Sequence[InputItem],
    image_bytes: Callable[[str], bytes | None],
    form: str | None = None,
    images_prefix: str | None = None,
) -> Created:
    """Store the images, then write the run and its samples in one transaction (see the module doc).
    ``image_bytes(ref)`` gives the bytes of an image path, or None when there is no such image."""
    from giqa.infra.storage import NotFound, put_image

    settings = ctx.settings
    max_pixels = settings.pipeline.max_image_pixels
    stored: dict[str, Any] = {}  # ref -> ImageRef
    problems: dict[str, str] = {}  # ref -> why the image cannot be used
    for item in items:
        ref = item.image
        if item.problem or ref in stored or ref in problems:
            continue
        if unsafe := _safe_ref(ref):
            problems[ref] = unsafe
            continue
        try:
            data = image_bytes(ref)
        except NotFound:
            data = None
        if data is None:
            problems[ref] = f"image not found: {ref}"
            continue
        try:
            stored[ref] = put_image(ctx.store, data, max_pixels=max_pixels, where=ref)
        except ImageError as exc:
            problems[ref] = str(exc)

    config = {"form": form or settings.pipeline.box_form, "images_prefix": images_prefix}
    samples = [
        dal.SampleIn(
            item.key,
            item.image,
            item.description,
            stored[item.image].sha256 if item.image in stored and not item.problem else None,
        )
        for item in items
    ]
    with ctx.session() as s:
        run_id = dal.create_run(s, name=name, config=config, images_prefix=images_prefix)
        for ref in stored.values():
            dal.add_image(
                s, sha256=ref.sha256, key=ref.key, width=ref.width, height=ref.height, nbytes=ref.nbytes,
                fmt=ref.format,
            )  # fmt: skip
        ids = dal.add_samples(s, run_id=run_id, samples=samples)
        pending, failed = [], 0
        for item, sample_id in zip(items, ids, strict=True):
            problem = item.problem or problems.get(item.image)
            if problem:
                dal.fail_sample(
                    s, sample_id=sample_id, stage="stage1", reason=INPUT_PREFIX + problem, retryable=False
                )
                failed += 1
            else:
                pending.append(sample_id)
        dal.set_run_state(s, run_id=run_id, state="running")
    return Created(run_id, len(items), pending, failed)


def start(ctx: WorkerContext, run_id: str, sample_ids: Sequence[int]) -> None:
    """Enqueue the first stage of each sample (or the export when there is none to run)."""
    from services.annotator.tasks import after_sample_ended

    for sample_id in sample_ids:
        enqueue("stage1", sample_id)
    if not sample_ids:
        after_sample_ended(run_id)
    del ctx


def retry(
    ctx: WorkerContext, run_id: str, *, retryable_only: bool = False, stalled: bool = False
) -> list[tuple[int, str]]:
    """Put the run's failed samples back to pending (not those whose input was bad: they would fail the
    same way) and return (sample id, stage to resume at); the run is running again. ``stalled``: also
    send again the samples still pending or running (a task lost with an annotator or a broker that went
    down; sending one twice is harmless, every stage write is an upsert)."""
    with ctx.session() as s:
        if dal.get_run(s, run_id=run_id) is None:
            raise NotFoundError(f"run {run_id} not found")
        failed = dal.failed_samples(s, run_id=run_id, retryable_only=retryable_only)
        latest = dal.latest_failures(s, run_id=run_id)
        chosen = [i for i in failed if not (latest.get(i) and latest[i].reason.startswith(INPUT_PREFIX))]
        if chosen:
            dal.reset_samples(s, sample_ids=chosen)
        if stalled:
            chosen += dal.samples_in_state(s, run_id=run_id, states=("pending", "running"))
        if not chosen:
            return []
        dal.set_run_state(s, run_id=run_id, state="running")
        resume = []
        for sample_id in chosen:
            view = dal.get_sample(s, sample_id=sample_id)
            resume.append((sample_id, next_stage(view.payloads) or "vqa"))
    return resume


def progress(ctx: WorkerContext, run_id: str) -> dict[str, Any]:
    """The run, samples by state, results by stage, recent failures, per-stage seconds and throughput."""
    with ctx.session() as s:
        run = dal.get_run(s, run_id=run_id)
        if run is None:
            raise NotFoundError(f"run {run_id} not found")
        p = dal.run_progress(s, run_id=run_id)
        seconds = dal.stage_seconds(s, run_id=run_id)
    per_stage: dict[str, list[float]] = {}
    for by_stage in seconds.values():
        for stage, value in by_stage.items():
            per_stage.setdefault(stage, []).append(value)
    end = run.finished_at or run.updated_at
    elapsed = max(1e-6, (end - run.created_at).total_seconds())
    ended = p.by_state.get("done", 0) + p.by_state.get("failed", 0)
    return {
        "run": run,
        "progress": p,
        "stage_seconds": {
            stage: {"count": len(v), "mean_s": sum(v) / len(v), "total_s": sum(v)}
            for stage, v in per_stage.items()
        },
        "elapsed_s": elapsed,
        "samples_per_s": ended / elapsed,
    }


def dataset_files(ctx: WorkerContext, run_id: str) -> tuple[Any, Mapping[str, str]]:
    """The run (done) and its dataset files: name -> object key."""
    from giqa.infra.storage import dataset_key
    from giqa.pipeline.export import EXPORT_FILES

    with ctx.session() as s:
        run = dal.get_run(s, run_id=run_id)
    if run is None:
        raise NotFoundError(f"run {run_id} not found")
    if run.state != "done":
        raise Conflict(f"run {run_id} has no dataset yet (state {run.state})")
    return run, {name: dataset_key(run_id, name) for name in EXPORT_FILES}
