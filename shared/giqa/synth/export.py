"""GIQA-Synth scenes as training samples: one DES sample and the scene's VQA items, LLaVA-ready.

The samples are the DESIGN §3.3 ``{image, question, answer}`` records; ``write_llava`` writes them as
the JSON list in the LLaVA conversation format that the LLaVA and Q-Instruct scripts read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from giqa.files import atomic_write_bytes
from giqa.schemas import GroundedObject, Sample, to_llava
from giqa.synth.schema import SceneRecord
from giqa.synth.writer import read_scenes


def to_samples(record: SceneRecord) -> list[Sample]:
    """The scene's DES sample (objects: its key objects with quality and effect) and VQA samples."""
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
            answer=q.answer,
            objects=[GroundedObject(phrase=o.phrase, boxes=[o.box]) for o in q.objects],
        )
        for k, q in enumerate(record.vqa)
    ]
    return [des, *vqa]


def llava_rows(records: Iterable[SceneRecord]) -> list[dict]:
    return [to_llava(sample).dump() for record in records for sample in to_samples(record)]


def write_llava(scenes: str | Path, out: str | Path) -> tuple[Path, int]:
    """LLaVA training JSON for a scenes folder (or its annotations.jsonl); image paths stay relative
    to the scenes folder, so write it there or pass the folder as the training script's image root."""
    rows = llava_rows(read_scenes(scenes))
    path = Path(out)
    atomic_write_bytes(path, (json.dumps(rows, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))
    return path, len(rows)
