"""Fit the classical judge's logistic curves on GIQA-Synth crops (and write ``classical_params.json``).

For every object of every scene the crop of its true box is measured once. For each defect class the
positives are objects carrying a degradation of that class; the negatives are objects with none of the
class's kinds AND none of the kinds that make the claim ambiguous (GIQA-Synth's ``CONFUSABLE`` table:
asking "blurry?" of a JPEG-blocked object has no clean answer). Scenes with a mild whole-image degradation
are kept and their objects labelled by their OWN degradations only: the description calls an object noisy
for its local noise, so faint global grain must stay below the curve's 0.5. The curve is an L2-regularised
logistic regression on standardised features with positives and negatives weighted equally, fitted by
Newton's method (numpy).

Run::

    python -m giqa.backends.classical_calibration --scenes 1500 --seed 7000 \\
        --out shared/giqa/backends/classical_params.json

Calibration seeds must differ from the seeds used to test the judge (tests use seeds < 1000).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from giqa.backends.classical import CLASSES, FEATURES, Curve, feature_value
from giqa.backends.classical_measure import measure
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


def ambiguous_kinds(defect: str) -> set[str]:
    """Synth kinds that neither confirm nor refute ``defect`` (excluded from its negatives)."""
    from giqa.synth.words import CONFUSABLE

    own = {k for k, c in KIND_TO_CLASS.items() if c == defect}
    out: set[str] = set()
    for kind in own:
        out |= set(CONFUSABLE.get(kind, ()))
    return out - own


def collect(scenes: int, seed: int, *, progress: bool = True) -> list[tuple[dict[str, float], set[str]]]:
    """(measurements, degradation kinds) for every object crop of ``scenes`` synth scenes."""
    from tqdm import tqdm

    from giqa.synth import SynthConfig, generate_scene

    config = SynthConfig()
    rows: list[tuple[dict[str, float], set[str]]] = []
    for index in tqdm(range(scenes), desc="measuring synth crops", disable=not progress):
        image, record = generate_scene(seed, index, config)
        for obj in record.objects:
            kinds: set[str] = {d.kind for d in obj.degradations}
            rows.append((measure(image, obj.box), kinds))
    return rows


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, iterations: int = 50) -> dict[str, Any]:
    """Balanced, L2-regularised logistic regression; returns the standardisation and the weights."""
    if len(set(y.tolist())) < 2:
        raise ValueError("need positive and negative examples to fit a curve")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    pos = y.mean()
    weights = np.where(y == 1, 0.5 / pos, 0.5 / (1 - pos))
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


def fit_class(defect: str, rows: Iterable[tuple[dict[str, float], set[str]]]) -> tuple[Curve, dict[str, Any]]:
    own = {k for k, c in KIND_TO_CLASS.items() if c == defect}
    skip = ambiguous_kinds(defect)
    feats = FEATURES[defect]
    xs, ys = [], []
    for values, kinds in rows:
        if kinds & own:
            ys.append(1)
        elif kinds & skip:
            continue
        else:
            ys.append(0)
        xs.append([feature_value(values, f) for f in feats])
    x, y = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    fitted = fit_logistic(x, y)
    curve = Curve(
        feats, tuple(fitted["mean"]), tuple(fitted["scale"]), tuple(fitted["coef"]), fitted["intercept"]
    )
    z = ((x - np.asarray(curve.mean)) / np.asarray(curve.scale)) @ np.asarray(curve.coef) + curve.intercept
    preds = z >= 0.0
    stats = {
        "positives": int(y.sum()),
        "negatives": int(len(y) - y.sum()),
        "recall": float(preds[y == 1].mean()),
        "specificity": float((~preds[y == 0]).mean()),
    }
    return curve, stats


def calibrate(scenes: int, seed: int, *, progress: bool = True) -> dict[str, Any]:
    rows = collect(scenes, seed, progress=progress)
    classes: dict[str, Any] = {}
    stats: dict[str, Any] = {}
    for defect in CLASSES:
        curve, stats[defect] = fit_class(defect, rows)
        classes[defect] = curve.to_dict()
    return {"scenes": scenes, "seed": seed, "crops": len(rows), "classes": classes, "training_fit": stats}


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
    parser = argparse.ArgumentParser(description="Fit the classical quality judge on GIQA-Synth crops.")
    parser.add_argument("--scenes", type=int, default=1500, help="synth scenes to measure")
    parser.add_argument("--seed", type=int, default=7000, help="synth seed (keep it apart from test seeds)")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write (atomically)")
    args = parser.parse_args(argv)
    data = calibrate(args.scenes, args.seed)
    data = {
        "command": f"python -m giqa.backends.classical_calibration --scenes {args.scenes} --seed {args.seed} "
        f"--out {args.out}",
        **data,
    }
    write_atomic(args.out, data)
    for defect, s in data["training_fit"].items():
        sys.stdout.write(
            f"{defect:13s} pos={s['positives']:4d} neg={s['negatives']:4d} "
            f"recall={s['recall']:.3f} specificity={s['specificity']:.3f}\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
