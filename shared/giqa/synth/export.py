"""GIQA-Synth scenes as training samples: one DES sample and the scene's VQA items, LLaVA-ready.

The samples are the DESIGN §3.3 ``{image, question, answer}`` records; ``write_llava`` writes them as
the JSON list in the LLaVA conversation format that the LLaVA and Q-Instruct scripts read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from giqa.files import atomic_write_bytes
from giqa.schemas import GroundedObject, Sample, to_llava
from giqa.synth.schema import SceneRecord, SynthQA
from giqa.synth.words import CLAIMS, POSITIVE_WORDS
from giqa.synth.writer import read_scenes

YesNoStyle = Literal["plain", "restate"]
YES_NO_STYLES: tuple[YesNoStyle, ...] = ("plain", "restate")
# What an export may keep: the DES sample and the VQA kinds (the paper's Table 3 trains on DES, VQA or both).
SAMPLE_KINDS = ("des", "yes_no", "what", "why", "how")
_CLAIM_WORDS = sorted([*CLAIMS.values(), *POSITIVE_WORDS], key=len, reverse=True)


def restated_answer(record: SceneRecord, qa: SynthQA) -> str:
    """A Yes/No answer that first says what the region is like, then the verdict.

    ``"The red circle is noisy. No."`` for "Is the [red circle](<..>) blurry?"; for "Is any object ...
    blurry?" the holders are named (``"The blue square is blurry. Yes."``) or ``"Nothing is blurry. No."``.
    **(decided)** A training-data option for small models: a one-token verdict gives almost no gradient for
    binding the referred box to the image, while the restatement is what a description already teaches, and
    the verdict becomes a comparison of two words in context. Acc(Y) reads the first standalone yes/no word,
    which the restatement never contains, so the bench's "Yes."/"No." answers score it unchanged.
    """
    if qa.qtype != "yes_no":
        return qa.answer
    verdict = qa.answer
    objects = {o.id: o for o in record.objects}
    if qa.question.startswith(("Is any ", "Do any ")):
        claim = next((c for c in _CLAIM_WORDS if qa.question.endswith(f" {c}?")), "degraded")
        if not qa.about:
            return f"Nothing is {claim}. {verdict}"
        names = " and the ".join(objects[i].phrase for i in qa.about)
        return f"The {names} {'are' if len(qa.about) > 1 else 'is'} {claim}. {verdict}"
    obj = objects[qa.about[0]]
    state = " and ".join(CLAIMS[d.kind] for d in obj.degradations) or "clean"
    return f"The {obj.phrase} is {state}. {verdict}"


def to_samples(record: SceneRecord, *, yes_no_style: YesNoStyle = "plain") -> list[Sample]:
    """The scene's DES sample (objects: its key objects with quality and effect) and VQA samples.

    ``yes_no_style="restate"``: Yes/No answers say what the region is like before the verdict
    (:func:`restated_answer`); ``"plain"`` keeps the paper's "Yes."/"No.".
    """
    key = {o.phrase: o for o in record.objects if o.mentioned}
    des = Sample(
        id=f"{record.id}-des",
        image=record.image,
        task="des",
        mode="grounding",
        question=record.des_question,
        answer=record.des_answer,
        objects=[
            GroundedObject(phrase=t.phrase, boxes=[key[t.phrase].box], quality=t.quality, effect=t.effect)
            for t in record.tags
        ],
    )
    vqa = [
        Sample(
            id=f"{record.id}-vqa-{k}",
            image=record.image,
            task="vqa",
            qtype=q.qtype,
            mode=q.mode,
            question=q.question,
            answer=restated_answer(record, q) if yes_no_style == "restate" else q.answer,
            objects=[GroundedObject(phrase=o.phrase, boxes=[o.box]) for o in q.objects],
        )
        for k, q in enumerate(record.vqa)
    ]
    return [des, *vqa]


def _kind(sample: Sample) -> str:
    return "des" if sample.task == "des" else str(sample.qtype)


def llava_rows(
    records: Iterable[SceneRecord],
    *,
    yes_no_style: YesNoStyle = "plain",
    kinds: Iterable[str] = SAMPLE_KINDS,
    vqa_per_scene: int | None = None,
) -> list[dict]:
    """LLaVA records of the samples whose kind (``des``, ``yes_no``, ``what``, ...) is in ``kinds``.

    ``vqa_per_scene``: keep at most this many VQA samples of each scene (every DES sample stays), spread over
    the scene's VQA items in their order, to set the DES / VQA mix of a training set.
    """
    keep = set(kinds)
    unknown = keep - set(SAMPLE_KINDS)
    if unknown or not keep:
        raise ValueError(f"sample kinds must be among {', '.join(SAMPLE_KINDS)}; got {sorted(keep)}")
    if vqa_per_scene is not None and vqa_per_scene < 0:
        raise ValueError(f"vqa_per_scene must be >= 0, got {vqa_per_scene}")
    rows: list[dict] = []
    for record in records:
        samples = [s for s in to_samples(record, yes_no_style=yes_no_style) if _kind(s) in keep]
        vqa = [s for s in samples if s.task != "des"]
        if vqa_per_scene is not None and len(vqa) > vqa_per_scene:
            # evenly spaced, so a cap still mixes question kinds and modes instead of taking the first few
            chosen = {id(vqa[(i * len(vqa)) // vqa_per_scene]) for i in range(vqa_per_scene)}
            samples = [s for s in samples if s.task == "des" or id(s) in chosen]
        rows += [to_llava(sample).dump() for sample in samples]
    return rows


def write_llava(
    scenes: str | Path,
    out: str | Path,
    *,
    yes_no_style: YesNoStyle = "plain",
    kinds: Iterable[str] = SAMPLE_KINDS,
    vqa_per_scene: int | None = None,
) -> tuple[Path, int]:
    """LLaVA training JSON for a scenes folder (or its annotations.jsonl); image paths stay relative
    to the scenes folder, so write it there or pass the folder as the training script's image root."""
    records = read_scenes(scenes)
    rows = llava_rows(records, yes_no_style=yes_no_style, kinds=kinds, vqa_per_scene=vqa_per_scene)
    path = Path(out)
    atomic_write_bytes(path, (json.dumps(rows, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))
    return path, len(rows)
