"""The per-sample orchestrator of ``giqa annotate``: Stages 1–4 and VQA over the model ports, audited.

Each sample becomes ONE audit record (a JSON line, key first) holding everything the stages decided: tags,
drops and repairs with reasons, raw boxes, judge probabilities, merges, final boxes, the fused answer, VQA
pairs and drops, failures and seconds per stage. A bad sample (missing/corrupt/oversized image, empty or
non-UTF-8 description, an LLM that answers garbage or times out) is recorded as failed and the run goes
on. The dataset files are written at the end from the audit (:func:`giqa.pipeline.export.export_from_audit`),
so an interrupted run leaves only whole audit lines, and ``resume`` continues it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from giqa.backends.images import ImageError, load_image
from giqa.files import inside
from giqa.pipeline.inputs import InputItem
from giqa.pipeline.stages import (
    AnnotateConfig,
    Assembled,
    Backends,
    annotate_image,
    assemble,
    build_record,
)
from giqa.pipeline.tags import prompt_fingerprint
from giqa.pipeline.vqa import (
    KeyObject,
    VQAResult,
    VQARules,
    check_and_ground,
    to_samples,
    vqa_prompt_fingerprint,
)
from giqa.schemas import Sample

__all__ = [
    "AnnotateConfig",
    "Assembled",
    "Backends",
    "annotate_image",
    "annotate_sample",
    "assemble",
    "read_done",
    "run_annotation",
    "vqa_from_recorded",
]


def annotate_sample(
    item: InputItem, images_dir: Path, backends: Backends, config: AnnotateConfig
) -> dict[str, Any]:
    """Every stage for one (image path, description): the input checks and image loading, then
    :func:`giqa.pipeline.stages.annotate_image`. The audit record, failed or not; never raises on data."""
    timings: dict[str, float] = {}

    def failed(reason: str) -> dict[str, Any]:
        failure = {"stage": "input", "reason": reason, "retryable": False}
        return build_record(item.key, item.image, item.description, {}, timings=timings, failure=failure)

    if item.problem:
        return failed(item.problem)
    clock = time.perf_counter()
    try:  # an input file must not make the pipeline open files outside the images folder
        image = load_image(inside(images_dir, item.image), config.max_image_pixels)
    except (ImageError, ValueError) as exc:
        return failed(str(exc))
    timings["load"] = round(time.perf_counter() - clock, 4)
    return annotate_image(item.key, image, item.image, item.description, backends, config, timings=timings)


def vqa_from_recorded(
    key: str, image_ref: str, raw_qa: Any, objects: Sequence[KeyObject], rules: VQARules
) -> tuple[VQAResult, list[Sample]]:
    """VQA validation and grounding over a recorded LLM answer (the scale benchmark replays these)."""
    result = check_and_ground(raw_qa, objects, rules)
    return result, to_samples(key, image_ref, result, objects)


# ------------------------------------------------------------------------------------------ the run


def read_done(audit: Path) -> set[str]:
    """Keys a resumed run skips: finished samples and failures that would fail again. A torn last line
    (a crash mid-write) is cut off so the next append starts on a fresh line."""
    done: set[str] = set()
    if not audit.exists():
        return done
    with audit.open("rb+") as handle:
        data = handle.read()
        if data and not data.endswith(b"\n"):
            handle.truncate(data.rfind(b"\n") + 1)
            data = data[: data.rfind(b"\n") + 1]
    for line in data.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        failure = record.get("failure") or {}
        if record.get("status") == "ok" or not failure.get("retryable"):
            done.add(record["key"])
    return done


def run_annotation(
    items: Iterable[InputItem],
    images_dir: Path,
    out_dir: Path,
    backends: Backends,
    config: AnnotateConfig,
    *,
    resume: bool = False,
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, int]:
    """Annotate ``items`` into ``out_dir/audit.jsonl`` (appending, one fsynced line per sample)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    audit = out_dir / "audit.jsonl"
    if audit.exists() and audit.stat().st_size and not resume:
        raise FileExistsError(f"{audit} holds an earlier run: pass --resume to continue it, or another --out")
    done = read_done(audit) if resume else set()
    counts = {"processed": 0, "skipped": 0, "failed": 0}
    meta = {
        "tags_prompt": prompt_fingerprint(),
        "vqa_prompt": vqa_prompt_fingerprint(),
        "llm": backends.llm.model_name,
    }
    with audit.open("a", encoding="utf-8") as handle:
        bar = tqdm(items, desc="annotate", unit="sample", disable=not progress)
        for item in bar:
            if limit is not None and counts["processed"] >= limit:
                break
            if item.key in done:
                counts["skipped"] += 1
                continue
            record = annotate_sample(item, images_dir, backends, config)
            record["meta"] = meta
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
            done.add(item.key)
            counts["processed"] += 1
            counts["failed"] += record["status"] != "ok"
            bar.set_postfix(failed=counts["failed"], skipped=counts["skipped"])
    return counts
