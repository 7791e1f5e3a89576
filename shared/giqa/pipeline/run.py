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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm import tqdm

from giqa.backends.images import ImageError, load_image
from giqa.files import inside
from giqa.llm.errors import LLMError, LLMUnavailableError
from giqa.pipeline.export import vqa_index
from giqa.pipeline.fuse import fuse_traced
from giqa.pipeline.inputs import InputItem
from giqa.pipeline.refine import RefineConfig, RefinedTag, refine_tag
from giqa.pipeline.tags import TagRules, extract_tags, prompt_fingerprint
from giqa.pipeline.vqa import (
    KeyObject,
    VQAResult,
    VQARules,
    check_and_ground,
    generate_vqa,
    to_samples,
    vqa_prompt_fingerprint,
)
from giqa.ports import ChatLLM, Detection, Detector, QualityJudge
from giqa.questions import draw_des_question
from giqa.schemas import GroundedObject, Sample, Tag


@dataclass(frozen=True)
class AnnotateConfig:
    tag_rules: TagRules = field(default_factory=TagRules)
    vqa_rules: VQARules = field(default_factory=VQARules)
    refine: RefineConfig = field(default_factory=RefineConfig)
    stage1_mode: str = "sentences"
    stage1_few_shot: bool = True
    seed: int = 0
    max_image_pixels: int = 40_000_000


@dataclass
class Backends:
    llm: ChatLLM
    detector: Detector
    judge: QualityJudge | None


@dataclass
class Assembled:
    """Stages 3–4 and the DES sample for one description, from its tags and detections."""

    refined: list[RefinedTag]
    fused: dict[str, Any]
    des: Sample
    objects: list[KeyObject]


def assemble(
    key: str,
    image_ref: str,
    description: str,
    tags: Sequence[Tag],
    detections: Sequence[Sequence[Detection]],
    image: Image.Image | None,
    judge: QualityJudge | None,
    config: AnnotateConfig,
) -> Assembled:
    """Stage 3 per tag (IQA-Filter + Box-Merge), Stage 4 fusion, the DES sample (pure over the judge)."""
    rules = config.vqa_rules
    refined = [
        refine_tag(image, tag, found, judge, config.refine)
        for tag, found in zip(tags, detections, strict=True)
    ]
    grounded = [(r.tag.phrase, r.merged) for r in refined if r.merged]
    fused = fuse_traced(description, grounded, form=rules.form, n=rules.n, m=rules.m)
    placed = {p.phrase for p in fused.placed}
    objects = [
        KeyObject(r.tag.phrase, r.tag.quality, r.tag.effect, tuple(r.merged))
        for r in refined
        if r.merged and r.tag.phrase in placed
    ]
    des = Sample(
        id=f"{key}-des",
        image=image_ref,
        task="des",
        mode="grounding" if objects else "none",
        question=draw_des_question(key, seed=config.seed, form=rules.form, n=rules.n, m=rules.m),
        answer=fused.text,
        objects=[
            GroundedObject(phrase=o.phrase, boxes=list(o.boxes), quality=o.quality, effect=o.effect)
            for o in objects
        ],
    )
    return Assembled(refined, fused.to_dict(), des, objects)


def _failed(record: dict[str, Any], stage: str, reason: str, retryable: bool = False) -> dict[str, Any]:
    record["status"] = "failed"
    record["failure"] = {"stage": stage, "reason": reason, "retryable": retryable}
    return record


def annotate_sample(
    item: InputItem, images_dir: Path, backends: Backends, config: AnnotateConfig
) -> dict[str, Any]:
    """Every stage for one (image, description); the audit record, failed or not. Never raises on data."""
    record: dict[str, Any] = {"key": item.key, "image": item.image, "description": item.description}
    timings: dict[str, float] = {}
    record["timings"] = timings
    record["status"] = "ok"
    record["failure"] = None
    if item.problem:
        return _failed(record, "input", item.problem)
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = round(timings.get(stage, 0.0) + now - clock, 4)
        clock = now

    try:  # an input file must not make the pipeline open files outside the images folder
        image = load_image(inside(images_dir, item.image), config.max_image_pixels)
    except (ImageError, ValueError) as exc:
        return _failed(record, "input", str(exc))
    lap("load")
    try:
        stage1 = extract_tags(
            backends.llm,
            item.description,
            config.tag_rules,
            mode=config.stage1_mode,
            few_shot=config.stage1_few_shot,
        )
    except LLMError as exc:
        return _failed(record, "stage1", f"{type(exc).__name__}: {exc}", isinstance(exc, LLMUnavailableError))
    lap("stage1")
    record["stage1"] = stage1.to_dict()
    try:
        phrases = [t.phrase for t in stage1.tags]
        detections = backends.detector.detect(image, phrases) if phrases else []
        lap("stage2")
        done = assemble(
            item.key, item.image, item.description, stage1.tags, detections, image, backends.judge, config
        )
        lap("stage3_4")
    except Exception as exc:  # a backend or stage bug must not stop a 100k-sample run; it is recorded
        # a remote detector or judge that is down (RemoteBackendError.retryable) is worth a resume
        retryable = bool(getattr(exc, "retryable", False))
        return _failed(record, "stages2-4", f"{type(exc).__name__}: {exc}", retryable)
    record["refined"] = [r.to_dict() for r in done.refined]
    record["fuse"] = done.fused
    record["des"] = done.des.model_dump(mode="json")
    try:
        vqa = generate_vqa(backends.llm, item.description, done.objects, config.vqa_rules)
    except LLMError as exc:
        # The DES sample stands; VQA falls back to the tag templates and the failure is recorded.
        record["vqa_failure"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        vqa = check_and_ground([], done.objects, config.vqa_rules)
    lap("vqa")
    record["vqa"] = vqa.to_dict()
    record["vqa_samples"] = [
        s.model_dump(mode="json") for s in to_samples(item.key, item.image, vqa, done.objects)
    ]
    record["vqa_index"] = vqa_index(record["vqa_samples"])
    return record


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
