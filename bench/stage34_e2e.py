"""Stages 3–4 end to end on GIQA-Synth, with ground-truth tags and a detector TEST DOUBLE.

The double stands in for detection only (to isolate Stages 3–4). For each tag it returns what a real
Grounding DINO gets wrong on such scenes:
- the true box, jittered (Gaussian, sigma ``--jitter`` of the box side), sometimes split into two
  overlapping fragments (a part detection Box-Merge should fold back);
- the look-alike of the same phrase when the scene has one (the hard case the IQA-Filter exists for);
- a distractor: a random box elsewhere with a low score.
Stage 3 (classical judge + Box-Merge) and Stage 4 (fusion, grid form) then run for real, the fused answer is
parsed back, and its boxes are scored against the true boxes of the tags' objects:
- mIoU (DESIGN §3.4: category-agnostic, one-to-one Hungarian, extra predicted boxes cost nothing);
- precision@0.5: share of the answer's boxes that overlap a true box OF THEIR OWN PHRASE with IoU > 0.5;
- boxes per grounded tag.
Variants in one run: oracle (true boxes only — the grid's ceiling), raw detections, merge only, filter only,
filter + merge (the pipeline).

    .venv/bin/python bench/stage34_e2e.py --scenes 200 --seed 0
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from tqdm import tqdm

from giqa.boxes import Box, as_box, iou
from giqa.grounded_text import parse, strip_coordinates
from giqa.metrics.grounding import match_boxes
from giqa.pipeline import RefineConfig, fuse, refine_tag
from giqa.ports import Detection, QualityJudge
from giqa.schemas import Tag
from giqa.synth import SceneRecord, SynthConfig, generate_scene


def _jitter(box: Box, rng: np.random.Generator, sigma: float) -> Box:
    w, h = max(box.width, 1e-3), max(box.height, 1e-3)
    noise = rng.normal(0.0, sigma, 4) * np.array([w, h, w, h])
    x1, y1, x2, y2 = np.clip(np.array(box.as_tuple()) + noise, 0.0, 1.0)
    return Box(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


def _fragments(box: Box, rng: np.random.Generator, sigma: float) -> list[Box]:
    """Two overlapping halves (left/right or top/bottom) that together cover the box."""
    if rng.random() < 0.5:
        cut = box.x1 + box.width * rng.uniform(0.45, 0.6)
        parts = [Box(box.x1, box.y1, cut, box.y2), Box(cut - 0.1 * box.width, box.y1, box.x2, box.y2)]
    else:
        cut = box.y1 + box.height * rng.uniform(0.45, 0.6)
        parts = [Box(box.x1, box.y1, box.x2, cut), Box(box.x1, cut - 0.1 * box.height, box.x2, box.y2)]
    return [_jitter(p, rng, sigma / 2) for p in parts]


def _random_box(rng: np.random.Generator) -> Box:
    w, h = rng.uniform(0.1, 0.3, 2)
    x, y = rng.uniform(0.0, 1.0 - w), rng.uniform(0.0, 1.0 - h)
    return Box(x, y, x + w, y + h)


@dataclass
class DetectorDouble:
    """Detection stand-in: true boxes jittered or fragmented, the look-alike's box, one distractor."""

    seed: int = 0
    jitter: float = 0.05
    p_fragment: float = 0.3
    p_distractor: float = 0.5

    def detections(self, record: SceneRecord, target_id: int) -> list[Detection]:
        rng = np.random.default_rng([self.seed, record.index, target_id])
        target = record.object(target_id)
        out: list[Detection] = []
        if rng.random() < self.p_fragment:
            parts = _fragments(as_box(target.box), rng, self.jitter)
            out += [Detection(b, 0.6, target.phrase) for b in parts]
        else:
            out.append(Detection(_jitter(as_box(target.box), rng, self.jitter), 0.8, target.phrase))
        for other in record.objects:
            if other.id != target_id and other.phrase == target.phrase:
                out.append(Detection(_jitter(as_box(other.box), rng, self.jitter), 0.75, target.phrase))
        if rng.random() < self.p_distractor:
            out.append(Detection(_random_box(rng), 0.4, target.phrase))
        return out


def tag_objects(record: SceneRecord) -> list[tuple[Tag, int]]:
    """Each ground-truth tag with the id of the object it names (phrase and quality agree)."""
    out: list[tuple[Tag, int]] = []
    used: set[int] = set()
    for tag in record.tags:
        obj = next(
            o
            for o in record.objects
            if o.id not in used and o.mentioned and o.phrase == tag.phrase and o.quality == tag.quality
        )
        used.add(obj.id)
        out.append((tag, obj.id))
    return out


VARIANTS = ("oracle", "raw", "merge only", "filter only", "filter + merge")


@dataclass
class Score:
    ious: list[float] = field(default_factory=list)
    boxes: int = 0
    correct_boxes: int = 0
    grounded_tags: int = 0
    tags: int = 0
    answers: int = 0

    def add(self, record: SceneRecord, answer: str, truth: dict[str, list[Box]], tags: int) -> None:
        if strip_coordinates(answer) != record.description:
            raise AssertionError(f"fusion changed the description of {record.id}")
        mentions = parse(answer)
        gt = [b for boxes in truth.values() for b in boxes]
        pred = [b for m in mentions for b in m.boxes]
        self.ious.extend(match_boxes(gt, pred).ious)
        self.boxes += len(pred)
        self.correct_boxes += sum(
            1 for m in mentions for b in m.boxes if any(iou(b, t) > 0.5 for t in truth.get(m.phrase, []))
        )
        self.grounded_tags += len(mentions)
        self.tags += tags
        self.answers += 1

    def row(self, name: str) -> str:
        miou = float(np.mean(self.ious)) if self.ious else float("nan")
        precision = self.correct_boxes / self.boxes if self.boxes else float("nan")
        per_tag = self.boxes / self.grounded_tags if self.grounded_tags else float("nan")
        return (
            f"{name:15s} mIoU={miou:.4f}  precision@0.5={precision:.4f}  boxes/grounded tag={per_tag:.2f}  "
            f"grounded tags={self.grounded_tags}/{self.tags}"
        )


def run_scene(
    image: Image.Image,
    record: SceneRecord,
    double: DetectorDouble,
    judge: QualityJudge,
    scores: dict[str, Score],
    variants: Sequence[str] = VARIANTS,
) -> None:
    pairs = tag_objects(record)
    truth: dict[str, list[Box]] = {}
    for tag, obj_id in pairs:
        truth.setdefault(tag.phrase, []).append(as_box(record.object(obj_id).box))
    detections = [double.detections(record, obj_id) for _, obj_id in pairs]
    for variant in variants:
        grounded: list[tuple[str, list[Box]]] = []
        for (tag, obj_id), dets in zip(pairs, detections, strict=True):
            if variant == "oracle":
                boxes = [as_box(record.object(obj_id).box)]
            else:
                use_judge = judge if "filter" in variant else None
                merge = "merge" in variant
                cfg = RefineConfig() if merge else RefineConfig(area_threshold=0.0, overlap_threshold=1.0)
                boxes = refine_tag(image, tag, dets, use_judge, cfg).merged
            grounded.append((tag.phrase, boxes))
        answer = fuse(record.description, grounded)
        scores[variant].add(record, answer, truth, len(pairs))


def main() -> None:
    from giqa.backends.classical import ClassicalJudge

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jitter", type=float, default=0.05, help="box noise, fraction of the box side")
    parser.add_argument("--p-hard-case", type=float, default=None, help="share of look-alike scenes")
    args = parser.parse_args()

    judge = ClassicalJudge()
    double = DetectorDouble(seed=args.seed, jitter=args.jitter)
    scores = {v: Score() for v in VARIANTS}
    config = SynthConfig() if args.p_hard_case is None else SynthConfig(p_hard_case=args.p_hard_case)
    start = time.perf_counter()
    for index in tqdm(range(args.scenes), desc="scenes"):
        image, record = generate_scene(args.seed, index, config)
        run_scene(image, record, double, judge, scores)
    elapsed = time.perf_counter() - start
    print(
        f"{args.scenes} GIQA-Synth scenes (seed {args.seed}, p_hard_case {config.p_hard_case}), "
        f"jitter {args.jitter}, {elapsed:.1f} s"
    )
    for variant in VARIANTS:
        print(scores[variant].row(variant))


if __name__ == "__main__":
    main()
