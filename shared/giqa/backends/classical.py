"""A CPU quality judge without weights: quality words become measurements of the crop.

"Is the image quality <word>?" is answered by mapping the word to defect classes
(:mod:`giqa.backends.classical_words`) and each class to a logistic curve over every measurement of
:mod:`giqa.backends.classical_measure` and their squares. The curves are CALIBRATED on real sample photos
with one region degraded KADID-style and on GIQA-Synth (:mod:`giqa.backends.classical_calibration`; the
fitted parameters ship in ``classical_params.json`` with the command that produced them).

Each class also has an abstention BAND learned in calibration from out-of-fold answers on real photos:
inside it the measurement could not tell degraded from clean, so the judge says so instead of guessing.
A defect word is a confident Yes when one of its classes is above its band and a confident No when all
are below; a positive word the reverse (``p_yes = min(1 - p_defect)``). "X and Y" averages the confident
terms (each measurement is noisy: one weak term lowers the answer instead of vetoing it).

It ABSTAINS — ``p_yes = 0.5``, ``abstained=True``, a one-line ``reason`` and ``detail["abstain"]`` — on
``unknown_word`` (no word it can measure), ``crop_too_small`` (a box under ``MIN_MEASURE_SIDE`` px) and
``uncertain`` (inside the band). The IQA-Filter then keeps the box (0.5 >= 0.5): no evidence drops no
data, and the audit record says why.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from PIL import Image

from giqa.backends.classical_measure import ALL_FEATURES, measure
from giqa.backends.classical_words import (
    CLASSES,
    DEFECT_WORDS,
    MULTI_DEFECT_WORDS,
    POSITIVE_WORDS,
    Term,
    known_words,
    parse_quality,
)
from giqa.boxes import Box, BoxLike, as_box
from giqa.ports import Health, Judgement

PARAMS_FILE = "classical_params.json"

__all__ = [
    "CLASSES",
    "DEFECT_WORDS",
    "MULTI_DEFECT_WORDS",
    "POSITIVE_WORDS",
    "Band",
    "ClassicalJudge",
    "Curve",
    "Term",
    "known_words",
    "load_params",
    "parse_quality",
]


# ... and their squares ("name^2"): a logistic curve over both bends where one threshold is not enough
FEATURES: dict[str, tuple[str, ...]] = {
    name: (*ALL_FEATURES, *(f"{f}^2" for f in ALL_FEATURES)) for name in CLASSES
}


def feature_value(values: dict[str, float], name: str) -> float:
    """A measurement by name; ``"x^2"`` is the square of measurement ``x``."""
    if name.endswith("^2"):
        return values[name[:-2]] ** 2
    return values[name]


@dataclass(frozen=True, slots=True)
class Curve:
    """``p = sigmoid(coef · (x - mean) / scale + intercept)`` over a class's features."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float

    def p(self, values: dict[str, float]) -> float:
        z = self.intercept + sum(
            c * (feature_value(values, f) - m) / s
            for f, m, s, c in zip(self.features, self.mean, self.scale, self.coef, strict=True)
        )
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Curve:
        return cls(
            tuple(data["features"]),
            tuple(float(v) for v in data["mean"]),
            tuple(float(v) for v in data["scale"]),
            tuple(float(v) for v in data["coef"]),
            float(data["intercept"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "coef": list(self.coef),
            "intercept": self.intercept,
        }


def load_params(path: str | Path | None = None) -> dict[str, Any]:
    """The fitted parameters: ``path`` or the file shipped beside this module."""
    if path is not None:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    return json.loads(resources.files("giqa.backends").joinpath(PARAMS_FILE).read_text(encoding="utf-8"))


MIN_MEASURE_SIDE = 8  # px: a box narrower than this holds too few pixels for any measurement


@dataclass(frozen=True, slots=True)
class Band:
    """The abstention band of one class: ``lo < p < hi`` cannot be told apart (learned in calibration)."""

    lo: float
    hi: float

    def verdict(self, p: float) -> bool | None:
        """True (defect present), False (absent) or None (inside the band: abstain)."""
        if p >= self.hi:
            return True
        if p <= self.lo:
            return False
        return None


def _abstain(reason: str, code: str, detail: dict[str, Any]) -> Judgement:
    return Judgement(0.5, abstained=True, detail={**detail, "abstain": code}, reason=reason)


class ClassicalJudge:
    """:class:`giqa.ports.QualityJudge` by measurements; no weights, no GPU.

    It abstains (``p_yes`` 0.5, ``abstained``, a ``reason``) on a text with no word it knows
    (``unknown_word``), on a box under ``MIN_MEASURE_SIDE`` pixels (``crop_too_small``) and where the
    measurement falls inside the class's band that calibration could not separate (``uncertain``).
    """

    name = "classical"

    def __init__(self, params: dict[str, Any] | str | Path | None = None) -> None:
        data = params if isinstance(params, dict) else load_params(params)
        self.curves = {name: Curve.from_dict(curve) for name, curve in data["classes"].items()}
        # params without bands (older files) never abstain on a measurement: lo = hi = 0.5
        self.bands = {name: Band(*data.get("bands", {}).get(name, (0.5, 0.5))) for name in self.curves}
        self.source = data.get("command", "")

    def health(self) -> Health:
        missing = [c for c in CLASSES if c not in self.curves]
        try:
            import skimage.measure  # noqa: F401
            import skimage.restoration  # noqa: F401
        except ImportError as exc:  # pragma: no cover - an install without the vision extra
            return Health(False, f"scikit-image missing: {exc}")
        if missing:
            return Health(False, f"no calibrated curve for {missing}")
        return Health(True, f"classical judge, {len(self.curves)} calibrated classes")

    def judge(self, image: Image.Image, box: BoxLike, quality: str) -> Judgement:
        terms, unknown = parse_quality(quality)
        terms = [t for t in terms if all(c in self.curves for c in t.classes)]
        detail: dict[str, Any] = {"quality": quality, "unknown": unknown}
        if not terms:
            return _abstain(
                f"no quality word the classical judge can measure in {quality!r} "
                "(`giqa judge --help` lists them)",
                "unknown_word",
                detail,
            )
        width, height = image.size
        x1, y1, x2, y2 = as_box(box).to_pixels(width, height)
        if min(x2 - x1, y2 - y1) < MIN_MEASURE_SIDE:
            return _abstain(
                f"box is {x2 - x1}x{y2 - y1} px, too small to measure (needs {MIN_MEASURE_SIDE} px a side)",
                "crop_too_small",
                detail,
            )
        return self.judge_measured(measure(image.convert("RGB"), box), terms, detail)

    def judge_measured(
        self, values: dict[str, float], terms: Sequence[Term], detail: dict[str, Any]
    ) -> Judgement:
        """The answer from measurements already taken (:func:`measure`)."""
        per_term: dict[str, float] = {}
        confident: dict[str, float] = {}
        for term in terms:
            p = {c: self.curves[c].p(values) for c in term.classes}
            verdicts = {c: self.bands[c].verdict(v) for c, v in p.items()}
            # positive word / "not X": every named defect must be absent; defect word: any of its classes
            if term.negate:
                per_term[term.word] = min(1.0 - v for v in p.values())
            else:
                per_term[term.word] = max(p.values())
            # confident when one class is surely present, or every class surely absent
            if any(verdicts.values()) or all(v is False for v in verdicts.values()):
                confident[term.word] = per_term[term.word]
        # "X and Y": the mean of the terms' probabilities — each measurement is noisy, so one weak term
        # should lower the answer, not veto it
        p_raw = sum(per_term.values()) / len(per_term)
        detail = {**detail, "terms": per_term, "p_raw": p_raw}
        if not confident:
            return _abstain(
                f"the measurements cannot tell {', '.join(per_term)} apart here "
                f"(p={p_raw:.2f} inside the calibrated band)",
                "uncertain",
                detail,
            )
        p_yes = sum(confident.values()) / len(confident)
        return Judgement(p_yes, detail={**detail, "confident_terms": sorted(confident)})

    def judge_batch(self, items: Sequence[tuple[Image.Image, Box, str]]) -> list[Judgement]:
        return [self.judge(image, box, quality) for image, box, quality in items]
