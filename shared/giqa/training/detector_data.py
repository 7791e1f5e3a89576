"""GIQA-Synth scenes as Grounding DINO training examples: one image, a prompt of phrases, their boxes.

Prompt recipe **(decided)**: half the prompts hold ONE phrase, the form Stage 2 queries at inference
(:func:`giqa.backends.gdino.prompt_for`); the others several ("red circle. blue square."). Every prompt may
also carry up to ``max_negatives`` phrases of colour/shape pairs absent from the scene, so the model learns
to leave a phrase without boxes rather than give its boxes to the nearest look-alike. A present kind is
named by one of its objects' own phrase (sometimes with the size word) or by the bare "colour shape"; its
targets are every object that phrase describes (both of a look-alike pair). Class label k is the k-th
"."-separated phrase of the prompt, which is how ``GroundingDinoForObjectDetection`` maps labels to tokens
(``build_label_maps``); boxes are normalized centre x, centre y, width, height.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from giqa.backends.gdino import prompt_for
from giqa.synth.config import COLOURS, SHAPES, SIZES
from giqa.synth.schema import SceneRecord, SynthObject

Kind = tuple[str | None, str, str]  # (size or None, colour, shape)


@dataclass(frozen=True)
class Example:
    prompt: str
    phrases: list[str]
    class_labels: list[int]
    boxes: list[list[float]]  # cx, cy, w, h, normalized


def describes(kind: Kind, obj: SynthObject) -> bool:
    size, colour, shape = kind
    return obj.colour == colour and obj.category == shape and (size is None or obj.size == size)


def phrase_of(kind: Kind) -> str:
    return " ".join(w for w in kind if w)


def kind_of(obj: SynthObject) -> Kind:
    """The object's own phrase as a kind: its size word only when the phrase uses it."""
    words = obj.phrase.split()
    return (obj.size if len(words) == 3 else None, obj.colour, obj.category)


def centre_box(box: Sequence[float]) -> list[float]:
    x1, y1, x2, y2 = box
    return [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]


def sample_example(
    objects: Sequence[SynthObject],
    rng: np.random.Generator,
    *,
    p_single: float = 0.5,
    max_negatives: int = 3,
    colours: Sequence[str] = tuple(COLOURS),
    shapes: Sequence[str] = SHAPES,
) -> Example:
    """One random prompt over a scene's objects and the targets it implies (recipe in the module doc)."""
    if not objects:
        raise ValueError("a training scene needs at least one object")
    present = list(dict.fromkeys((o.colour, o.category) for o in objects))
    order = rng.permutation(len(present))
    count = 1 if rng.random() < p_single else int(rng.integers(1, len(present) + 1))
    kinds: list[Kind] = []
    for index in order[:count]:
        colour, shape = present[int(index)]
        members = [o for o in objects if (o.colour, o.category) == (colour, shape)]
        own = kind_of(members[int(rng.integers(len(members)))])
        kinds.append(own if rng.random() < 0.5 else (None, colour, shape))
    absent = [(c, s) for c in colours for s in shapes if (c, s) not in set(present)]
    for index in rng.permutation(len(absent))[: int(rng.integers(0, max_negatives + 1))]:
        colour, shape = absent[int(index)]
        size = tuple(SIZES)[int(rng.integers(len(SIZES)))] if rng.random() < 0.3 else None
        kinds.append((size, colour, shape))
    kinds = [kinds[int(i)] for i in rng.permutation(len(kinds))]
    labels: list[int] = []
    boxes: list[list[float]] = []
    for k, kind in enumerate(kinds):
        for obj in objects:
            if describes(kind, obj):
                labels.append(k)
                boxes.append(centre_box(obj.box))
    phrases = [phrase_of(kind) for kind in kinds]
    return Example(" ".join(prompt_for(p) for p in phrases), phrases, labels, boxes)


class SceneDetectionDataset:
    """A ``torch`` map-style dataset over a scenes folder; each read draws a fresh random prompt."""

    def __init__(self, records: Sequence[SceneRecord], root: Path, *, seed: int = 0) -> None:
        usable = [r for r in records if r.objects]
        if not usable:
            raise ValueError(f"no scene with objects under {root}")
        self.records = usable
        self.root = Path(root)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        path = self.root / record.image
        with Image.open(path) as img:
            image = img.convert("RGB")
        return {"image": image, "example": sample_example(record.objects, self.rng)}


class DetectionCollator:
    """Batches images and prompts through the model's own processor; labels in the loss's format."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        examples: list[Example] = [it["example"] for it in items]
        batch = self.processor(
            images=[it["image"] for it in items],
            text=[e.prompt for e in examples],
            return_tensors="pt",
            padding=True,
        )
        out = dict(batch)
        out["labels"] = [
            {
                "class_labels": torch.tensor(e.class_labels, dtype=torch.long),
                "boxes": torch.tensor(e.boxes, dtype=torch.float32).reshape(-1, 4),
            }
            for e in examples
        ]
        return out
