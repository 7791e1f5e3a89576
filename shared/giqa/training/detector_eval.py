"""Box recall of a detector on unseen GIQA-Synth scenes, through the real Stage-2 detector path.

Each scene's detector is queried once per distinct object phrase, exactly as Stage 2 does (one query per
phrase, the backend's thresholds, NMS and ``max_detections``). Matching **(decided)**: per phrase, detections
and the ground-truth boxes that phrase names are paired greedily by IoU (highest first, each used once);
a pair with IoU >= ``iou_threshold`` is a hit. Recall = hits / ground-truth objects; precision = hits /
detections returned, so a detector cannot buy recall with a spray of boxes unnoticed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from giqa.boxes import iou_matrix
from giqa.synth.config import SynthConfig
from giqa.synth.generate import generate_scene

# Evaluation worlds sit above every training world (write_scenes takes seeds < 1e9) and above the benches
# (seed + 1e9 for bench seeds below 1e9), so no evaluated scene was ever trained on.
EVAL_WORLD_OFFSET = 2_000_000_000


def eval_world(seed: int) -> int:
    return EVAL_WORLD_OFFSET + seed


@dataclass(frozen=True)
class RecallReport:
    scenes: int
    objects: int
    hits: int
    detections: int
    recall: float
    precision: float
    iou_threshold: float
    world_seed: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def match_hits(det_boxes: np.ndarray, gt_boxes: np.ndarray, iou_threshold: float) -> int:
    """Greedy one-to-one IoU matching; the number of pairs at or above the threshold."""
    if len(det_boxes) == 0 or len(gt_boxes) == 0:
        return 0
    ious = iou_matrix(det_boxes, gt_boxes)
    hits = 0
    while True:
        d, g = np.unravel_index(int(np.argmax(ious)), ious.shape)
        if ious[d, g] < iou_threshold:
            return hits
        hits += 1
        ious[d, :] = -1.0
        ious[:, g] = -1.0


def box_recall(
    detector: Any,
    *,
    world_seed: int,
    n_scenes: int,
    image_size: int = 128,
    iou_threshold: float = 0.5,
    start: int = 0,
) -> RecallReport:
    """Recall/precision of ``detector`` (a :class:`giqa.ports.Detector`) on scenes of ``world_seed``."""
    if n_scenes < 1:
        raise ValueError("n_scenes must be at least 1")
    config = SynthConfig(width=image_size, height=image_size)
    images, phrase_lists, truths = [], [], []
    for index in range(start, start + n_scenes):
        image, record = generate_scene(world_seed, index, config)
        phrases = list(dict.fromkeys(o.phrase for o in record.objects))
        images.append(image)
        phrase_lists.append(phrases)
        truths.append([[o.box for o in record.objects if o.phrase == p] for p in phrases])
    results = detector.detect_batch(images, phrase_lists)
    objects = hits = detections = 0
    for per_phrase, gts in zip(results, truths, strict=True):
        for dets, gt in zip(per_phrase, gts, strict=True):
            objects += len(gt)
            detections += len(dets)
            det_boxes = np.array([d.box.as_list() for d in dets], dtype=float).reshape(-1, 4)
            hits += match_hits(det_boxes, np.array(gt, dtype=float).reshape(-1, 4), iou_threshold)
    return RecallReport(
        scenes=n_scenes,
        objects=objects,
        hits=hits,
        detections=detections,
        recall=hits / objects if objects else 0.0,
        precision=hits / detections if detections else 0.0,
        iou_threshold=iou_threshold,
        world_seed=world_seed,
    )


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_curve(rows: Sequence[dict[str, Any]], out: Path) -> Path:
    """Loss and recall against training minutes, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loss = [(r["minutes"], r["loss"]) for r in rows if "loss" in r]
    recall = [(r["minutes"], r["recall"]) for r in rows if "recall" in r]
    fig, ax = plt.subplots(figsize=(7, 4))
    if loss:
        ax.plot(*zip(*loss, strict=True), color="tab:blue", lw=1, label="train loss")
    ax.set_xlabel("training minutes (1 CPU thread)")
    ax.set_ylabel("loss", color="tab:blue")
    if recall:
        right = ax.twinx()
        right.plot(*zip(*recall, strict=True), "o-", color="tab:red", label="box recall @0.5")
        right.set_ylim(0, 1)
        right.set_ylabel("recall on unseen scenes", color="tab:red")
    ax.set_title("giqa train-detector")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out)
    return out
