"""The annotation stages one at a time, each taking and returning JSON-able payloads (pure over the ports).

``giqa annotate`` runs every stage of a sample in one process; the annotation platform runs each stage as a
queued task on the worker that holds its model and keeps each payload in the database between them. Both go
through these functions, and the audit record is built from the payloads by :func:`build_record` alone, so
the embedded run and the distributed run write the same records (and so the same dataset).

Stages and their payloads (the names are the platform's stage names):

- ``stage1``   (LLM)       :func:`run_stage1` -> ``Stage1Result.to_dict()`` (tags, drops, repairs, raw)
- ``detect``   (detector)  :func:`run_detect` -> ``{"detections": [[{box, score, label}, ...] per tag]}``
- ``assemble`` (judge)     :func:`run_assemble` -> ``{"refined", "fuse", "des", "objects"}`` (Stages 3–4, DES)
- ``vqa``      (LLM)       :func:`run_vqa` -> ``{"vqa", "vqa_samples", "vqa_index"[, "vqa_failure"]}``

Every stage after ``stage1`` reads what it needs back from the earlier payloads (tags from ``stage1``,
detections from ``detect``, key objects from ``assemble``), never from an in-memory object, so a payload that
went through JSON (a task queue, a database column) gives the same answer as one that did not.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from giqa.boxes import Box
from giqa.llm.errors import LLMError, LLMUnavailableError
from giqa.pipeline.export import vqa_index
from giqa.pipeline.fuse import fuse_traced
from giqa.pipeline.refine import RefineConfig, RefinedTag, refine_tag
from giqa.pipeline.tags import TagRules, extract_tags
from giqa.pipeline.vqa import KeyObject, VQARules, check_and_ground, generate_vqa, to_samples
from giqa.ports import ChatLLM, Detection, Detector, QualityJudge
from giqa.questions import draw_des_question
from giqa.schemas import GroundedObject, Sample, Tag

Payload = dict[str, Any]

STAGES = ("stage1", "detect", "assemble", "vqa")
# The audit record's failure stage for each platform stage (``giqa annotate`` has always written these).
AUDIT_STAGE = {"input": "input", "stage1": "stage1", "detect": "stages2-4", "assemble": "stages2-4"}
# The audit record's ``timings`` key for each platform stage.
TIMING_KEY = {"load": "load", "stage1": "stage1", "detect": "stage2", "assemble": "stage3_4", "vqa": "vqa"}


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


# ------------------------------------------------------------------------------------------ stages


def run_stage1(llm: ChatLLM, description: str, config: AnnotateConfig) -> Payload:
    """Stage 1: the validated tags of ``description`` (``LLMError`` propagates: the caller decides)."""
    result = extract_tags(
        llm, description, config.tag_rules, mode=config.stage1_mode, few_shot=config.stage1_few_shot
    )
    return result.to_dict()


def tags_of(stage1: Payload) -> list[Tag]:
    return [Tag.model_validate(t) for t in stage1.get("tags", [])]


def phrases_of(stage1: Payload) -> list[str]:
    """The phrases Stage 2 looks for, in tag order."""
    return [t.phrase for t in tags_of(stage1)]


def run_detect(detector: Detector, image: Image.Image, phrases: Sequence[str]) -> Payload:
    """Stage 2: the detector's boxes per phrase (no phrases: no call)."""
    found = detector.detect(image, list(phrases)) if phrases else []
    return detections_payload(found)


def detections_payload(found: Sequence[Sequence[Detection]]) -> Payload:
    """``detect``'s payload from detector output (also what a batched detection task stores per sample)."""
    return {
        "detections": [
            [{"box": d.box.as_list(), "score": d.score, "label": d.label} for d in per_phrase]
            for per_phrase in found
        ]
    }


def detections_of(detect: Payload) -> list[list[Detection]]:
    return [
        [Detection(Box(*d["box"]), d["score"], d.get("label", "")) for d in per_phrase]
        for per_phrase in detect.get("detections", [])
    ]


def run_assemble(
    key: str,
    image_ref: str,
    description: str,
    stage1: Payload,
    detect: Payload,
    image: Image.Image | None,
    judge: QualityJudge | None,
    config: AnnotateConfig,
) -> Payload:
    """Stages 3–4 and the DES sample from the ``stage1`` and ``detect`` payloads."""
    done = assemble(key, image_ref, description, tags_of(stage1), detections_of(detect), image, judge, config)
    return {
        "refined": [r.to_dict() for r in done.refined],
        "fuse": done.fused,
        "des": done.des.model_dump(mode="json"),
        "objects": [
            {
                "phrase": o.phrase,
                "quality": o.quality,
                "effect": o.effect,
                "boxes": [b.as_list() for b in o.boxes],
            }
            for o in done.objects
        ],
    }


def objects_of(assembled: Payload) -> list[KeyObject]:
    """The grounded key objects VQA may ask about (from ``assemble``'s payload)."""
    return [
        KeyObject(o["phrase"], o["quality"], o["effect"], tuple(Box(*b) for b in o["boxes"]))
        for o in assembled.get("objects", [])
    ]


def run_vqa(
    llm: ChatLLM,
    key: str,
    image_ref: str,
    description: str,
    assembled: Payload,
    config: AnnotateConfig,
    *,
    fallback_on_unavailable: bool = True,
) -> Payload:
    """VQA generation over the grounded key objects. An LLM that answers garbage (or, with
    ``fallback_on_unavailable``, does not answer) leaves the DES sample standing: VQA falls back to the tag
    templates and ``vqa_failure`` says why. A queued task passes ``False`` so an unavailable LLM is retried
    first (``LLMUnavailableError`` propagates) and falls back only when its retries are spent."""
    objects = objects_of(assembled)
    payload: Payload = {}
    try:
        vqa = generate_vqa(llm, description, objects, config.vqa_rules)
    except LLMError as exc:
        if isinstance(exc, LLMUnavailableError) and not fallback_on_unavailable:
            raise
        payload["vqa_failure"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        vqa = check_and_ground([], objects, config.vqa_rules)
    samples = [s.model_dump(mode="json") for s in to_samples(key, image_ref, vqa, objects)]
    payload.update({"vqa": vqa.to_dict(), "vqa_samples": samples, "vqa_index": vqa_index(samples)})
    return payload


def failure_reason(exc: BaseException) -> str:
    """The one wording of a failure reason in records and the database."""
    return f"{type(exc).__name__}: {exc}"


# ------------------------------------------------------------------------------------------ the record


def build_record(
    key: str,
    image_ref: str,
    description: str,
    payloads: Mapping[str, Payload],
    *,
    timings: Mapping[str, float] | None = None,
    failure: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The audit record of one sample from its stage payloads (those it reached), failed or not.

    ``failure`` is ``{"stage", "reason", "retryable"}`` with a platform stage (``input``, ``stage1``,
    ``detect``, ``assemble``); it is written under the audit's stage names (:data:`AUDIT_STAGE`).
    ``timings`` are seconds per platform stage (or already audit keys), written under the audit's keys.
    """
    record: dict[str, Any] = {"key": key, "image": image_ref, "description": description}
    record["timings"] = {TIMING_KEY.get(k, k): v for k, v in (timings or {}).items()}
    record["status"] = "ok"
    record["failure"] = None
    if failure is not None:
        stage = str(failure["stage"])
        record["status"] = "failed"
        record["failure"] = {
            "stage": AUDIT_STAGE.get(stage, stage),
            "reason": failure["reason"],
            "retryable": bool(failure.get("retryable", False)),
        }
    if "stage1" in payloads:
        record["stage1"] = payloads["stage1"]
    if failure is not None:
        return record
    assembled = payloads["assemble"]
    record["refined"] = assembled["refined"]
    record["fuse"] = assembled["fuse"]
    record["des"] = assembled["des"]
    vqa = payloads["vqa"]
    if "vqa_failure" in vqa:
        record["vqa_failure"] = vqa["vqa_failure"]
    record["vqa"] = vqa["vqa"]
    record["vqa_samples"] = vqa["vqa_samples"]
    record["vqa_index"] = vqa["vqa_index"]
    return record


def annotate_image(
    key: str,
    image: Image.Image,
    image_ref: str,
    description: str,
    backends: Backends,
    config: AnnotateConfig,
    *,
    timings: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Every stage for one decoded image and its description: the audit record, failed or not.

    Never raises on data: an LLM that fails Stage 1 and a backend that fails Stages 2–4 are recorded as
    failures (``stage1``/``stages2-4``). Bytes come in through :func:`giqa.backends.images.decode_image`
    at the edge; ``image_ref`` is the path written into the dataset.
    """
    timings = {} if timings is None else timings
    payloads: dict[str, Payload] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = round(timings.get(stage, 0.0) + now - clock, 4)
        clock = now

    def failed(stage: str, exc: BaseException, retryable: bool = False) -> dict[str, Any]:
        failure = {"stage": stage, "reason": failure_reason(exc), "retryable": retryable}
        return build_record(key, image_ref, description, payloads, timings=timings, failure=failure)

    try:
        payloads["stage1"] = run_stage1(backends.llm, description, config)
    except LLMError as exc:
        return failed("stage1", exc, isinstance(exc, LLMUnavailableError))
    lap("stage1")
    try:
        payloads["detect"] = run_detect(backends.detector, image, phrases_of(payloads["stage1"]))
        lap("detect")
        payloads["assemble"] = run_assemble(
            key, image_ref, description, payloads["stage1"], payloads["detect"], image, backends.judge, config
        )
        lap("assemble")
    except Exception as exc:  # a backend or stage bug must not stop a 100k-sample run; it is recorded
        # a remote detector or judge that is down (RemoteBackendError.retryable) is worth a resume
        stage = "assemble" if "detect" in payloads else "detect"
        return failed(stage, exc, bool(getattr(exc, "retryable", False)))
    payloads["vqa"] = run_vqa(backends.llm, key, image_ref, description, payloads["assemble"], config)
    lap("vqa")
    return build_record(key, image_ref, description, payloads, timings=timings)
