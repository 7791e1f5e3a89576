"""The classical judge on real photographs: one region degraded vs the same region of the clean photo.

Photos are the held-out sample photos of :mod:`giqa.backends.classical_photos` (never used to calibrate);
each is cut into ``--per-photo`` windows with one random box, and the box is degraded with every kind and
level that makes the word true. The judge is asked the word about the box of the degraded window (answer
should be Yes for a defect word, No for a positive word) and about the same box of the clean window.

Per word it prints: n (clean/degraded items), the share of answers that are confident and wrong, the
accuracy of the confident answers, the share abstained, and the AUC of ``p_yes`` (before abstention:
``detail["p_raw"]`` where the judge records it). Rates are class-balanced: the mean of the rate on clean
items and on degraded items, so a word with many degraded variants is not scored on those alone.

Items with no right answer are left out, by the same plain-statistics rules the calibration uses
(:func:`~giqa.backends.classical_photos.already_shows`, :func:`~giqa.backends.classical_photos.shows_change`):
a clean box that is already black is not asked "dark?", a darkened box that was already black is not an
example of darkening; the count left out is printed.

Run::

    OMP_NUM_THREADS=1 python bench/judge_real.py --per-photo 8 --seed 11

It only uses ``ClassicalJudge(params).judge(image, box, word)`` and ``classical_photos``, so the same
script scores an older judge: put that version's ``shared/`` (plus this ``classical_photos.py``) first on
``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import giqa.backends.classical as classical  # noqa: E402
from giqa.backends.classical import ClassicalJudge  # noqa: E402
from giqa.backends.classical_measure import measure  # noqa: E402
from giqa.backends.classical_photos import (  # noqa: E402
    HELDOUT,
    KIND_CLASS,
    LEVELS,
    WORD_KINDS,
    already_shows,
    degrade_region,
    scene_rng,
    scenes,
    shows_change,
)
from giqa.boxes import as_box  # noqa: E402

_MEASURED: dict[tuple[str, tuple[float, ...]], dict[str, float]] = {}


def cached_measure(image, box):  # type: ignore[no-untyped-def]
    """``measure`` once per (pixels, box): every word asks about the same crops (a pure function)."""
    key = (hashlib.sha1(image.tobytes()).hexdigest(), tuple(as_box(box).as_list()))
    if key not in _MEASURED:
        _MEASURED[key] = measure(image, box)
    return _MEASURED[key]


classical.measure = cached_measure  # the judge's own call goes through the cache

WORDS = WORD_KINDS


def auc(pos: list[float], neg: list[float]) -> float:
    """P(score of a positive > score of a negative), ties counted half (Mann–Whitney)."""
    if not pos or not neg:
        return float("nan")
    p, n = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float((p > n).mean() + 0.5 * (p == n).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-photo", type=int, default=8, help="windows per held-out photo")
    parser.add_argument("--seed", type=int, default=11, help="scene seed (calibration uses its own)")
    parser.add_argument("--params", type=Path, default=None, help="judge params (default: shipped)")
    parser.add_argument("--photos", nargs="*", default=list(HELDOUT), help="photo names (default: held out)")
    args = parser.parse_args(argv)

    judge = ClassicalJudge(args.params)
    # word -> label ("clean"/"degraded") -> list of (p_yes, abstained, p_raw)
    results: dict[str, dict[str, list[tuple[float, bool, float]]]] = defaultdict(lambda: defaultdict(list))
    left_out: dict[str, int] = defaultdict(int)
    start = time.perf_counter()
    for scene in scenes(args.photos, args.per_photo, args.seed):
        variants: dict[str, list] = {}
        for kind in {k for kinds, _ in WORDS.values() for k in kinds}:
            variants[kind] = [
                degrade_region(scene.image, scene.box, kind, level, scene_rng(scene, kind, i, args.seed))
                for i, level in enumerate(LEVELS[kind])
            ]
        clean = cached_measure(scene.image.convert("RGB"), scene.box)
        for word, (kinds, _positive) in WORDS.items():
            classes = {KIND_CLASS[k] for k in kinds}
            items = []
            if any(already_shows(clean, c) for c in classes):
                left_out[word] += 1
            else:
                items.append(("clean", scene.image))
            for k in kinds:
                for img in variants[k]:
                    if shows_change(cached_measure(img.convert("RGB"), scene.box), clean, KIND_CLASS[k]):
                        items.append(("degraded", img))
                    else:
                        left_out[word] += 1
            for label, image in items:
                j = judge.judge(image, scene.box, word)
                raw = float(j.detail.get("p_raw", j.p_yes))
                results[word][label].append((j.p_yes, j.abstained, raw))
    elapsed = time.perf_counter() - start

    header = f"{'word':13s} {'n clean/deg':>12s} {'left out':>8s} {'conf.wrong':>10s} {'conf.acc':>9s}"
    header += f" {'abstain':>8s} {'AUC':>6s}"
    sys.stdout.write(f"photos: {', '.join(args.photos)}; {args.per_photo} windows each, seed {args.seed}\n")
    sys.stdout.write(header + "\n" + "-" * len(header) + "\n")
    totals = []
    for word, (_kinds, positive) in WORDS.items():
        rates = []  # per label: (wrong, confident, abstained)
        for label in ("clean", "degraded"):
            rows = results[word][label]
            truth_yes = (label == "degraded") != positive
            confident = [(p, a) for p, a, _ in rows if not a]
            wrong = sum((p >= 0.5) != truth_yes for p, _ in confident)
            rates.append((wrong / len(rows), len(confident) / len(rows), 1 - len(confident) / len(rows)))
        wrong_rate = float(np.mean([r[0] for r in rates]))
        conf_rate = float(np.mean([r[1] for r in rates]))
        abstain = float(np.mean([r[2] for r in rates]))
        acc = (conf_rate - wrong_rate) / conf_rate if conf_rate else float("nan")
        yes_label, no_label = ("clean", "degraded") if positive else ("degraded", "clean")
        a = auc([r[2] for r in results[word][yes_label]], [r[2] for r in results[word][no_label]])
        n = f"{len(results[word]['clean'])}/{len(results[word]['degraded'])}"
        sys.stdout.write(
            f"{word:13s} {n:>12s} {left_out[word]:8d} {wrong_rate:10.3f} {acc:9.3f} {abstain:8.3f} {a:6.3f}\n"
        )
        totals.append((wrong_rate, acc, abstain, a))
    mean = np.nanmean(np.asarray(totals), axis=0)
    sys.stdout.write(
        f"{'mean':13s} {'':>12s} {'':>8s} {mean[0]:10.3f} {mean[1]:9.3f} {mean[2]:8.3f} {mean[3]:6.3f}\n"
    )
    sys.stdout.write(f"targets: conf.wrong <= 0.10, conf.acc >= 0.85, abstain <= 0.40  ({elapsed:.0f} s)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
