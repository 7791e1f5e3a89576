"""Batched vs one-by-one throughput of the Stage-2 detector and the Stage-3 Q-Instruct judge (tiny models).

Both tiny models are built from configs into a temporary folder (nothing downloaded). The same work runs
twice in one process — once through the batched API, once item by item — after a warm-up, and the results
are compared (they must agree) before the speed-up is printed.

    .venv/bin/python bench/stage_batching.py --pairs 32 --crops 64 --batch 16
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _timed(fn, repeats: int):  # type: ignore[no-untyped-def]
    best = float("inf")
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    import torch

    from giqa.backends.gdino import GroundingDinoDetector
    from giqa.backends.qinstruct import QInstructJudge
    from giqa.boxes import as_box
    from giqa.models.tiny import build_tiny_llava
    from giqa.models.tiny_gdino import build_tiny_grounding_dino
    from giqa.synth import generate_scene

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=32, help="(image, phrase) pairs for the detector")
    parser.add_argument("--crops", type=int, default=64, help="crops for the judge")
    parser.add_argument("--batch", type=int, default=16, help="batch size of the batched runs")
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats (best is reported)")
    args = parser.parse_args()

    scenes = [generate_scene(0, i) for i in range(max(4, args.pairs // 2))]
    pairs = [(image, obj.phrase) for image, record in scenes for obj in record.objects][: args.pairs]
    crops = [
        (image, as_box(obj.box), quality)
        for image, record in scenes
        for obj in record.objects
        for quality in ("blurry", "noisy")
    ][: args.crops]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu")

    with tempfile.TemporaryDirectory() as tmp:
        detector = GroundingDinoDetector(
            build_tiny_grounding_dino(Path(tmp) / "gdino"),
            box_threshold=0.3,
            text_threshold=0.0,
            batch_size=args.batch,
            device="cpu",
        )
        detector.detect(*_first(pairs))  # warm-up
        batched_s, batched = _timed(
            lambda: detector.detect_batch([i for i, _ in pairs], [[p] for _, p in pairs]), args.repeats
        )
        single_s, single = _timed(lambda: [detector.detect(i, [p]) for i, p in pairs], args.repeats)
        assert _same_detections(batched, single), "batched detector results differ from one-by-one"
        print(
            f"detector  {len(pairs)} pairs: one-by-one {len(pairs) / single_s:7.1f} pairs/s, "
            f"batched(bs={args.batch}) {len(pairs) / batched_s:7.1f} pairs/s, "
            f"speed-up x{single_s / batched_s:.2f}"
        )

        judge = QInstructJudge(build_tiny_llava(Path(tmp) / "llava"), batch_size=args.batch, device="cpu")
        judge.judge(*crops[0])  # warm-up
        batched_s, batched_j = _timed(lambda: judge.judge_batch(crops), args.repeats)
        single_s, single_j = _timed(lambda: [judge.judge(*c) for c in crops], args.repeats)
        worst = max(abs(a.p_yes - b.p_yes) for a, b in zip(batched_j, single_j, strict=True))
        assert worst < 1e-4, f"batched judge differs from one-by-one by {worst}"
        print(
            f"q-instruct {len(crops)} crops: one-by-one {len(crops) / single_s:7.1f} crops/s, "
            f"batched(bs={args.batch}) {len(crops) / batched_s:7.1f} crops/s, "
            f"speed-up x{single_s / batched_s:.2f} "
            f"(max |dp_yes| {worst:.1e})"
        )


def _first(pairs):  # type: ignore[no-untyped-def]
    image, phrase = pairs[0]
    return image, [phrase]


def _same_detections(batched, single) -> bool:  # type: ignore[no-untyped-def]
    for b, s in zip(batched, single, strict=True):
        if len(b[0]) != len(s[0]):
            return False
        for x, y in zip(b[0], s[0], strict=True):
            if max(abs(u - v) for u, v in zip(x.box.as_tuple(), y.box.as_tuple(), strict=True)) > 1e-4:
                return False
    return True


if __name__ == "__main__":
    main()
