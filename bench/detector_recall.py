"""Box recall of a Grounding DINO on unseen GIQA-Synth scenes, through the Stage-2 detector backend.

Loads the detector the way Stage 2 does (``make_detector``: with no --model, the shipped demo detector)
and queries each scene once per distinct object phrase with the pipeline's thresholds, NMS and
``max_detections``. Prints recall and precision at IoU 0.5 (greedy one-to-one matching per phrase), the
best-box-only recall (thresholds off, one box per phrase), and the time per (image, phrase) query.

    .venv/bin/python bench/detector_recall.py [--model DIR] [--scenes 200] [--world 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from giqa.backends.factory import make_detector
from giqa.settings import get_settings
from giqa.training.detector_eval import box_recall, eval_world


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="detector folder (default: as Stage 2)")
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument(
        "--world", type=int, default=7, help="evaluation world (offset by 2e9: never trained)"
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    detector = make_detector(get_settings().pipeline, model=args.model)
    began = time.perf_counter()
    report = box_recall(detector, world_seed=eval_world(args.world), n_scenes=args.scenes)
    seconds = time.perf_counter() - began
    detector.box_threshold = detector.text_threshold = 0.0
    detector.max_detections = 1
    top1 = box_recall(detector, world_seed=eval_world(args.world), n_scenes=args.scenes)
    queries = report.objects  # an upper bound on phrase queries (look-alike pairs share one)
    print(f"detector   {detector.model_path}")
    print(f"scenes     {report.scenes} of world {report.world_seed} (unseen), {report.objects} objects")
    print(f"recall     {report.recall:.3f} at IoU {report.iou_threshold} ({report.hits} hits)")
    print(f"precision  {report.precision:.3f} ({report.detections} boxes returned)")
    print(f"top-1      {top1.recall:.3f} (best box per phrase, thresholds off)")
    print(
        f"time       {1000 * seconds / max(queries, 1):.1f} ms per (image, phrase), {args.threads} thread(s)"
    )


if __name__ == "__main__":
    main()
