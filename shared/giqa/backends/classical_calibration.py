"""Fit the classical judge's logistic curves and abstention bands (and write ``classical_params.json``).

Two sources of labelled crops, measured once each:

- REAL photographs (:mod:`giqa.backends.classical_photos`, the ``CALIBRATION`` photos only): windows of
  the sample photos that scikit-image and matplotlib ship, one random box each, measured clean and with
  the box degraded by every KADID-style kind and level (blur, motion blur, noise, JPEG, darkening, gamma,
  overexposure, pixelation, contrast loss);
- GIQA-Synth objects, labelled by their OWN degradations (faint whole-image degradations stay negatives).

For each defect class the positives are crops whose degradation belongs to the class; the negatives are
crops with none of it AND none of the classes that make the claim ambiguous (``AMBIGUOUS``: asking
"blurry?" of a JPEG-blocked crop has no clean answer). Each source carries half the weight and, inside
it, positives and negatives weigh the same. The curve is an L2-regularised logistic regression on
standardised features, fitted by Newton's method (numpy).

The abstention band of each class comes from OUT-OF-FOLD probabilities on the real crops, degraded with
the class vs the same box clean (folds by photo, so a photo never scores its own curve): ``hi`` is the
lowest probability from which "present" answers are at least ``PRECISION`` right, ``lo`` the highest
below which "absent" answers are (decided: 0.92, class-balanced). Between them the judge abstains.

Run (the shipped file was written by exactly this; ``command`` inside it records it)::

    OMP_NUM_THREADS=1 python -m giqa.backends.classical_calibration --scenes 800 --seed 7000 \\
        --real-per-photo 10 --real-seed 5000 --out shared/giqa/backends/classical_params.json

Calibration seeds must differ from the seeds used to test the judge (tests use synth seeds < 1000; the
real-photo bench uses held-out photos).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from giqa.backends.classical import CLASSES, FEATURES, Curve, feature_value
from giqa.backends.classical_measure import measure
from giqa.backends.classical_photos import (
    CALIBRATION,
    HELDOUT,
    KIND_CLASS,
    LEVELS,
    PHOTOS,
    already_shows,
    degrade_region,
    scene_rng,
    scenes,
    shows_change,
)
from giqa.files import atomic_write_text

# GIQA-Synth degradation kind -> the judge's defect class
KIND_TO_CLASS: dict[str, str] = {
    "blur": "blur",
    "motion_blur": "blur",
    "noise": "noise",
    "low_light": "dark",
    "overexposure": "bright",
    "jpeg": "blocky",
    "low_contrast": "low_contrast",
}
# class -> classes whose crops are neither positives nor negatives for it
AMBIGUOUS: dict[str, frozenset[str]] = {
    "blur": frozenset({"blocky", "pixelated"}),
    "noise": frozenset({"blocky"}),
    "dark": frozenset({"low_contrast"}),
    "bright": frozenset({"low_contrast"}),
    "low_contrast": frozenset({"dark", "bright", "blur"}),
    "blocky": frozenset({"blur", "noise", "pixelated"}),
    "pixelated": frozenset({"blocky"}),
}
FOLDS = 4
PRECISION = 0.92
SYNTH_SHARE = 0.5  # of the training weight; real photos carry the rest
L2 = 3e-3


@dataclass(frozen=True, slots=True)
class Row:
    """One measured crop: its measurements, the defect classes it carries, its source and fold group."""

    values: dict[str, float]
    classes: frozenset[str]
    source: str  # "real" or "synth"
    group: str  # photo name (real) or scene index (synth): folds never split a group
    clean: dict[str, float] | None = None  # a real degraded crop: the same box measured clean


def collect_synth(scenes_: int, seed: int, *, progress: bool = True) -> list[Row]:
    """A row for every object crop of ``scenes_`` synth scenes."""
    from tqdm import tqdm

    from giqa.synth import SynthConfig, generate_scene

    config = SynthConfig()
    rows: list[Row] = []
    for index in tqdm(range(scenes_), desc="measuring synth crops", disable=not progress):
        image, record = generate_scene(seed, index, config)
        for obj in record.objects:
            classes = frozenset(KIND_TO_CLASS[d.kind] for d in obj.degradations if d.kind in KIND_TO_CLASS)
            rows.append(Row(measure(image, obj.box), classes, "synth", f"synth{index}"))
    return rows


def _group(photo: str) -> str:
    return "motorcycle" if photo.startswith("motorcycle") else photo  # the stereo pair is one photo


def collect_real(photos: Sequence[str], per_photo: int, seed: int, *, progress: bool = True) -> list[Row]:
    """A clean row and one row per degradation kind and level for ``per_photo`` windows of each photo."""
    from tqdm import tqdm

    rows: list[Row] = []
    for scene in tqdm(
        list(scenes(list(photos), per_photo, seed)), desc="measuring real crops", disable=not progress
    ):
        group = _group(scene.photo)
        clean = measure(scene.image, scene.box)
        rows.append(Row(clean, frozenset(), "real", group))
        for kind in sorted(LEVELS):
            for i, level in enumerate(LEVELS[kind]):
                image = degrade_region(scene.image, scene.box, kind, level, scene_rng(scene, kind, i, seed))
                values = measure(image, scene.box)
                rows.append(Row(values, frozenset({KIND_CLASS[kind]}), "real", group, clean))
    return rows


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    l2: float = 1e-3,
    iterations: int = 50,
    weights: np.ndarray | None = None,
) -> dict[str, Any]:
    """L2-regularised logistic regression; returns the standardisation and the weights.

    ``weights`` (per row) default to class-balanced: positives and negatives weigh the same in all.
    """
    if len(set(y.tolist())) < 2:
        raise ValueError("need positive and negative examples to fit a curve")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    if weights is None:
        pos = y.mean()
        weights = np.where(y == 1, 0.5 / pos, 0.5 / (1 - pos))
    else:
        weights = weights / weights.mean()
    w = np.zeros(z.shape[1])
    reg = np.full(z.shape[1], l2)
    reg[-1] = 0.0  # the intercept is not shrunk
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -60, 60)))
        grad = z.T @ (weights * (p - y)) / len(y) + reg * w
        hess = (z * (weights * p * (1 - p))[:, None]).T @ z / len(y) + np.diag(reg + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return {
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "coef": w[:-1].tolist(),
        "intercept": float(w[-1]),
    }


def labelled(defect: str, rows: Sequence[Row]) -> tuple[list[int], np.ndarray]:
    """Indices of the rows that say something about ``defect``, and their labels (1 = present)."""
    index, labels = [], []
    for i, row in enumerate(rows):
        if defect in row.classes:
            if row.clean is not None and not shows_change(row.values, row.clean, defect):
                continue
            labels.append(1)
        elif row.classes & AMBIGUOUS[defect]:
            continue
        elif not row.classes and row.source == "real" and already_shows(row.values, defect):
            continue
        else:
            labels.append(0)
        index.append(i)
    return index, np.asarray(labels, dtype=np.float64)


def source_weights(rows: Sequence[Row], y: np.ndarray) -> np.ndarray:
    """Real photos carry ``1 - SYNTH_SHARE`` of the weight, GIQA-Synth the rest (decided: the judge is
    for real photos; synth keeps the flat-shape cases Stage 3's tests ask about); inside a source
    positives and negatives weigh the same.

    Among real negatives the clean crops carry half the weight (decided): they are the question the
    IQA-Filter asks (the same region clean), and crops with another defect are the easy ones.
    """
    sources = np.asarray([r.source for r in rows])
    clean = np.asarray([not r.classes for r in rows])
    weights = np.zeros(len(rows))
    for source in set(sources.tolist()):
        mine = sources == source
        pos, neg = mine & (y == 1), mine & (y == 0)
        if pos.any():
            weights[pos] = 1.0 / pos.sum()
        parts = [neg & clean, neg & ~clean] if source == "real" else [neg]
        parts = [m for m in parts if m.any()]
        for members in parts:
            weights[members] = 1.0 / len(parts) / members.sum()
        share = SYNTH_SHARE if source == "synth" else 1.0 - SYNTH_SHARE
        weights[mine] *= share / max(weights[mine].sum(), 1e-12) * 2.0
    return weights


def _matrix(defect: str, rows: Sequence[Row]) -> np.ndarray:
    return np.asarray([[feature_value(r.values, f) for f in FEATURES[defect]] for r in rows])


def fit_class(defect: str, rows: Sequence[Row], l2: float = L2) -> Curve:
    index, y = labelled(defect, rows)
    chosen = [rows[i] for i in index]
    fitted = fit_logistic(_matrix(defect, chosen), y, l2, weights=source_weights(chosen, y))
    return Curve(
        FEATURES[defect],
        tuple(fitted["mean"]),
        tuple(fitted["scale"]),
        tuple(fitted["coef"]),
        fitted["intercept"],
    )


def folds(rows: Sequence[Row], k: int = FOLDS) -> np.ndarray:
    """The fold of every row: real photos round-robin by sorted name, synth scenes by index."""
    real_groups = sorted({r.group for r in rows if r.source == "real"})
    fold_of = {g: i % k for i, g in enumerate(real_groups)}
    return np.asarray(
        [fold_of[r.group] if r.source == "real" else int(r.group.removeprefix("synth")) % k for r in rows]
    )


def out_of_fold(defect: str, rows: Sequence[Row], l2: float = L2) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Probabilities of the labelled rows from curves fitted without their fold; labels; row indices."""
    index, y = labelled(defect, rows)
    fold = folds(rows)[index]
    p = np.full(len(index), np.nan)
    chosen = [rows[i] for i in index]
    for f in sorted(set(fold.tolist())):
        train = fold != f
        if len(set(y[train].tolist())) < 2:
            continue
        train_rows = [r for r, t in zip(chosen, train, strict=True) if t]
        curve = fit_class(defect, train_rows, l2)
        p[~train] = [curve.p(r.values) for r, t in zip(chosen, train, strict=True) if not t]
    return p, y, index


def choose_band(p: np.ndarray, y: np.ndarray, precision: float = PRECISION) -> tuple[float, float]:
    """``(lo, hi)``: confident answers on each side at least ``precision`` right (class-balanced).

    ``hi`` is the lowest threshold above 0.5 whose "present" answers (``p >= hi``) are precise enough;
    ``lo`` the highest below 0.5 whose "absent" answers are. A side that is never precise enough gets
    1.01 (or -0.01): that answer is never given.
    """
    ok = np.isfinite(p)
    p, y = p[ok], y[ok]
    w = np.where(y == 1, 0.5 / max(1, int(y.sum())), 0.5 / max(1, int((1 - y).sum())))
    grid = np.round(np.arange(0.005, 1.0, 0.005), 3)

    def precise(mask: np.ndarray, label: float) -> bool:
        return bool(w[mask].sum() > 0 and w[mask & (y == label)].sum() / w[mask].sum() >= precision)

    hi = next((float(t) for t in grid if t > 0.5 and precise(p >= t, 1.0)), 1.01)
    lo = next((float(t) for t in grid[::-1] if t < 0.5 and precise(p <= t, 0.0)), -0.01)
    return lo, hi


def calibrate_rows(rows: Sequence[Row], precision: float = PRECISION, l2: float = L2) -> dict[str, Any]:
    """Curves fitted on every row, bands from out-of-fold probabilities on the real rows."""
    classes: dict[str, Any] = {}
    bands: dict[str, list[float]] = {}
    stats: dict[str, Any] = {}
    for defect in CLASSES:
        classes[defect] = fit_class(defect, rows, l2).to_dict()
        p, y, index = out_of_fold(defect, rows, l2)
        # the band is set on the question the IQA-Filter asks: this region degraded, or the same region
        # clean? Crops with another defect are easy negatives and would make the band look safer than it is
        real = np.asarray(
            [rows[i].source == "real" and (y[k] == 1 or not rows[i].classes) for k, i in enumerate(index)]
        )
        lo, hi = choose_band(p[real], y[real], precision)
        bands[defect] = [lo, hi]
        pr, yr = p[real], y[real]
        confident = (pr >= hi) | (pr <= lo)
        stats[defect] = {
            "positives": int(y.sum()),
            "negatives": int(len(y) - y.sum()),
            "real_oof_confident": float(confident.mean()) if len(pr) else 0.0,
            "real_oof_accuracy": float(((pr >= hi) == (yr == 1))[confident].mean())
            if confident.any()
            else 0.0,
        }
    return {"classes": classes, "bands": bands, "out_of_fold": stats}


def calibrate(
    scenes_: int,
    seed: int,
    *,
    real_per_photo: int = 10,
    real_seed: int = 5000,
    photos: Sequence[str] = CALIBRATION,
    progress: bool = True,
) -> dict[str, Any]:
    rows = collect_real(photos, real_per_photo, real_seed, progress=progress)
    rows += collect_synth(scenes_, seed, progress=progress)
    return {
        "scenes": scenes_,
        "seed": seed,
        "real": {"photos": list(photos), "per_photo": real_per_photo, "seed": real_seed},
        "crops": len(rows),
        **calibrate_rows(rows),
    }


def _round(value: Any) -> Any:
    # 7 significant digits: far below the curves' own uncertainty, and the file stays small and diffable
    if isinstance(value, float):
        return float(f"{value:.7g}")
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_round(v) for v in value]
    return value


def to_json(data: dict[str, Any]) -> str:
    """Indented JSON with every flat list on one line."""
    text = json.dumps(_round(data), indent=1)
    return re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text) + "\n"


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, to_json(data))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Fit the classical quality judge on real sample photos and GIQA-Synth crops."
    )
    parser.add_argument("--scenes", type=int, default=800, help="synth scenes to measure")
    parser.add_argument("--seed", type=int, default=7000, help="synth seed (keep it apart from test seeds)")
    parser.add_argument("--real-per-photo", type=int, default=10, help="windows per calibration photo")
    parser.add_argument("--real-seed", type=int, default=5000, help="seed of the real-photo windows")
    parser.add_argument(
        "--photos", nargs="+", default=list(CALIBRATION), help="calibration photos (default: all of them)"
    )
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write (atomically)")
    args = parser.parse_args(argv)
    unknown = [p for p in args.photos if p not in PHOTOS]
    if unknown:
        parser.error(f"unknown photos {unknown}; known: {', '.join(PHOTOS)}")
    held = [p for p in args.photos if p in HELDOUT]
    if held:
        parser.error(f"{held} are held out for testing the judge and never calibrate it")
    data = calibrate(
        args.scenes,
        args.seed,
        real_per_photo=args.real_per_photo,
        real_seed=args.real_seed,
        photos=args.photos,
    )
    photos = "" if args.photos == list(CALIBRATION) else f"--photos {' '.join(args.photos)} "
    data = {
        "command": f"python -m giqa.backends.classical_calibration --scenes {args.scenes} --seed {args.seed} "
        f"--real-per-photo {args.real_per_photo} --real-seed {args.real_seed} {photos}--out {args.out}",
        **data,
    }
    write_atomic(args.out, data)
    for defect, s in data["out_of_fold"].items():
        lo, hi = data["bands"][defect]
        sys.stdout.write(
            f"{defect:13s} pos={s['positives']:5d} neg={s['negatives']:5d} band=({lo:.3f}, {hi:.3f}) "
            f"real out-of-fold: confident={s['real_oof_confident']:.3f} "
            f"accuracy={s['real_oof_accuracy']:.3f}\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
