"""One scene end to end: plan, pixels, words, grounded answer, QA -> (image, :class:`SceneRecord`)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from giqa.boxes import from_pixels
from giqa.grounded_text import Grounded, render
from giqa.questions import draw_des_question
from giqa.schemas import Tag
from giqa.synth import qa
from giqa.synth.config import SynthConfig
from giqa.synth.draw import to_uint8
from giqa.synth.language import Description, Ref, describe
from giqa.synth.scene import ScenePlan, plan_scene, render_plan, rng_for
from giqa.synth.schema import Degradation, SceneRecord, SynthObject, SynthQA

DEFAULT_CONFIG = SynthConfig()


def scene_id(seed: int, index: int) -> str:
    return f"synth-{seed}-{index:06d}"


def _check(seed: int, index: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"index must be a non-negative integer, got {index!r}")


def render_scene(
    seed: int,
    index: int,
    config: SynthConfig | None = None,
    *,
    degrade: bool = True,
    global_: bool | None = None,
) -> Image.Image:
    """The scene's image; ``degrade=False`` gives the clean render (no local degradations), and
    ``global_`` (default: same as ``degrade``) switches the whole-image degradations separately."""
    _check(seed, index)
    config = config or DEFAULT_CONFIG
    plan = plan_scene(seed, index, config)
    pixels = render_plan(plan, local=degrade, global_=degrade if global_ is None else global_)
    return Image.fromarray(to_uint8(pixels), mode="RGB")


def _phrases(plan: ScenePlan, config: SynthConfig, rng: np.random.Generator) -> dict[int, str]:
    out: dict[int, str] = {}
    for obj in plan.objects:
        base = f"{obj.colour} {obj.shape}"
        # the look-alikes keep the bare phrase: a size word could tell them apart
        sized = not obj.role.startswith("twin") and rng.random() < config.p_size_in_phrase
        out[obj.id] = f"{obj.size} {base}" if sized else base
    return out


def _mention_clean(plan: ScenePlan, config: SynthConfig, rng: np.random.Generator) -> dict[int, bool]:
    out = {
        o.id: o.role == "clean" and not o.degradations and bool(rng.random() < config.p_mention_clean)
        for o in plan.objects
    }
    if not any(o.degradations for o in plan.objects) and not any(out.values()):
        first_clean = next(o.id for o in plan.objects if o.role == "clean")
        out[first_clean] = True  # a scene with nothing wrong still names something it praises
    return out


def _des_answer(desc: Description, boxes: dict[int, list[float]], config: SynthConfig) -> str:
    parts: list[str | Grounded] = []
    seen: set[int] = set()
    for piece in desc.pieces:
        if isinstance(piece, Ref) and piece.obj_id not in seen:
            seen.add(piece.obj_id)
            parts.append(Grounded(piece.phrase, [boxes[piece.obj_id]]))
        else:
            parts.append(piece.phrase if isinstance(piece, Ref) else piece)
    return render(parts, form=config.box_form, n=config.grid_n, m=config.grid_m)  # type: ignore[arg-type]


def generate_scene(
    seed: int, index: int, config: SynthConfig | None = None
) -> tuple[Image.Image, SceneRecord]:
    """Scene ``index`` of the world ``seed``: the same bytes and record whatever else is generated."""
    _check(seed, index)
    config = config or DEFAULT_CONFIG
    plan = plan_scene(seed, index, config)
    pixels = render_plan(plan)  # settles each object's final degradations
    words_rng = rng_for(seed, index, "language")
    phrases = _phrases(plan, config, words_rng)
    desc = describe(plan, phrases, _mention_clean(plan, config, words_rng), words_rng)

    boxes = {o.id: from_pixels(o.box_px, plan.width, plan.height).as_list() for o in plan.objects}
    objects = [
        SynthObject(
            id=o.id,
            category=o.shape,
            colour=o.colour,
            size=o.size,
            phrase=phrases[o.id],
            box=boxes[o.id],
            box_px=list(o.box_px),
            degradations=[Degradation(kind=k, severity=round(s, 4)) for k, s in o.degradations],
            quality=desc.qualities.get(o.id),
            effect=desc.effects.get(o.id),
            mentioned=o.id in desc.qualities,
            role=o.role,
        )
        for o in plan.objects
    ]
    first_mentions: list[int] = []
    for piece in desc.pieces:
        if isinstance(piece, Ref) and piece.obj_id not in first_mentions:
            first_mentions.append(piece.obj_id)
    tags = [Tag(phrase=phrases[i], quality=desc.qualities[i], effect=desc.effects[i]) for i in first_mentions]
    sid = scene_id(seed, index)
    record = SceneRecord(
        id=sid,
        image=f"images/{sid}.png",
        width=plan.width,
        height=plan.height,
        seed=seed,
        index=index,
        background=plan.background,
        global_degradations=[Degradation(kind=k, severity=round(s, 4)) for k, s in plan.global_degradations],
        objects=objects,
        description=desc.text,
        verdict=desc.verdict,
        tags=tags,
        des_question=draw_des_question(
            sid, seed=seed, form=config.box_form, n=config.grid_n, m=config.grid_m
        ),
        des_answer=_des_answer(desc, boxes, config),
        hard_case=plan.hard_case,
    )
    qa_rng = rng_for(seed, index, "vqa")
    record.vqa = qa.select(qa.candidates(qa_context(record, config), qa_rng), config.vqa_per_scene, qa_rng)
    return Image.fromarray(to_uint8(pixels), mode="RGB"), record


def qa_context(record: SceneRecord, config: SynthConfig | None = None) -> qa.QAContext:
    """What the QA builder needs of a scene, read from its record."""
    config = config or DEFAULT_CONFIG
    return qa.QAContext(
        objects=tuple(
            qa.QAObject(
                id=o.id,
                phrase=o.phrase,
                box=o.box,
                kinds=tuple(d.kind for d in o.degradations),
                severity=max((d.severity for d in o.degradations), default=0.0),
                twin=o.role.startswith("twin"),
            )
            for o in record.objects
        ),
        global_kinds=frozenset(d.kind for d in record.global_degradations),
        kinds=tuple(config.degradation_kinds),
        verdict=record.verdict,
        form=config.box_form,
        n=config.grid_n,
        m=config.grid_m,
    )


def qa_pool(record: SceneRecord, config: SynthConfig | None = None) -> list[SynthQA]:
    """Every VQA item the scene of ``record`` can answer (the bench draws its mix from these)."""
    return qa.candidates(qa_context(record, config), rng_for(record.seed, record.index, "vqa-pool"))
