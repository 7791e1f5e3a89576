"""A CPU quality judge without weights: quality words become measurements of the crop.

"Is the image quality <word>?" is answered by mapping the word to a defect class and the class to a few
measurements of the crop, turned into ``p_yes`` by a logistic curve CALIBRATED on GIQA-Synth
(:mod:`giqa.backends.classical_calibration`; the fitted parameters ship in ``classical_params.json`` with the
command that produced them).

Defect classes: blur, noise, dark, bright, low_contrast, blocky. Each class's curve is a logistic
regression over every measurement of :mod:`giqa.backends.classical_measure` and their squares, so the
calibration decides what matters for which word.

Words: ``blurry``, ``out of focus``, ``noisy``, ``grainy``, ``dark``, ``underexposed``, ``overexposed``,
``washed out``, ``low contrast``, ``blocky``, ``pixelated`` … (see ``DEFECT_WORDS``). Positive words are the
negation of their defects: ``sharp`` = not blur, ``clear`` = not (blur or noise or low contrast or blocky),
``well-exposed`` = not (dark or bright) — ``p_yes = min(1 - p_defect)``. Modifiers ("slightly", "very") are
ignored, "not X" negates, "X and Y" averages the two terms (each measurement is noisy: one weak term lowers
the answer instead of vetoing it). A word it cannot measure ABSTAINS: ``p_yes = 0.5``, ``abstained=True`` —
the IQA-Filter then keeps the box (0.5 >= 0.5), so an unknown word never drops data; the unknown words
are listed in ``detail``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from PIL import Image

from giqa.backends.classical_measure import ALL_FEATURES, measure
from giqa.boxes import Box, BoxLike
from giqa.ports import Health, Judgement

PARAMS_FILE = "classical_params.json"

DEFECT_WORDS: dict[str, tuple[str, ...]] = {
    "blur": (
        "blurry",
        "blurred",
        "blur",
        "out of focus",
        "unfocused",
        "fuzzy",
        "soft",
        "motion blurred",
        "motion blur",
        "smeared",
        "smudged",
        "unclear",
        "unsharp",
        "defocused",
    ),
    "noise": ("noisy", "noise", "grainy", "grain", "speckled", "speckly", "snowy"),
    "dark": (
        "dark",
        "underexposed",
        "under exposed",
        "too dark",
        "dim",
        "dimly lit",
        "low light",
        "shadowy",
        "murky",
    ),
    "bright": (
        "overexposed",
        "over exposed",
        "washed out",
        "too bright",
        "blown out",
        "bright",
        "glaring",
        "blown",
    ),
    "low_contrast": ("low contrast", "low in contrast", "faded", "dull", "flat", "hazy", "foggy", "washed"),
    "blocky": (
        "blocky",
        "pixelated",
        "compressed",
        "jpeg",
        "compression artifacts",
        "artifacts",
        "artefacts",
        "mosaic",
        "blocking",
    ),
}
POSITIVE_WORDS: dict[str, tuple[str, ...]] = {
    "sharp": ("blur",),
    "crisp": ("blur",),
    "in focus": ("blur",),
    "focused": ("blur",),
    "well defined": ("blur",),
    "detailed": ("blur",),
    "clear": ("blur", "noise", "low_contrast", "blocky"),
    "clean": ("noise", "blocky"),
    "smooth": ("noise",),
    "noise free": ("noise",),
    "well exposed": ("dark", "bright"),
    "well lit": ("dark",),
    "vivid": ("low_contrast", "dark", "bright"),
    "high contrast": ("low_contrast",),
}
_MODIFIERS = (
    "slightly",
    "very",
    "a bit",
    "a little",
    "somewhat",
    "extremely",
    "heavily",
    "quite",
    "rather",
    "highly",
    "severely",
    "mildly",
    "moderately",
    "badly",
    "strongly",
    "fairly",
    "overly",
    "really",
    "noticeably",
    "too",
)
CLASSES = tuple(DEFECT_WORDS)


def _normalize(text: str) -> str:
    return " ".join(re.sub(r"[-_/]", " ", text.lower()).replace("?", " ").replace(".", " ").split())


_MODIFIER_RE = re.compile(
    r"\b(?:" + "|".join(re.escape(m) for m in sorted(_MODIFIERS, key=len, reverse=True)) + r")\b"
)


def _strip_modifiers(phrase: str) -> str:
    return _MODIFIER_RE.sub(" ", phrase)


# (phrase, kind, classes): kind "defect" or "positive"; longest phrases first so "too dark" beats "dark".
_LEXICON = sorted(
    [(w, "defect", (c,)) for c, ws in DEFECT_WORDS.items() for w in ws]
    + [(w, "positive", cs) for w, cs in POSITIVE_WORDS.items()],
    key=lambda item: -len(item[0]),
)


@dataclass(frozen=True, slots=True)
class Term:
    """One measurable claim read from the quality text: ``p = P(defect)`` or its negation."""

    word: str
    classes: tuple[str, ...]
    negate: bool  # True for positive words and for "not <defect>"


def parse_quality(quality: str) -> tuple[list[Term], list[str]]:
    """The measurable terms of a quality text and the words left unknown.

    >>> parse_quality("slightly blurry and noisy")[0][0].classes
    ('blur',)
    """
    text = _normalize(quality)
    terms: list[Term] = []
    unknown: list[str] = []
    for part in re.split(r"\s*(?:,|;|\band\b|\bbut\b|&)\s*", text):
        words = part.split()
        negated = False
        while words and words[0] in ("not", "no", "isn't", "never", "hardly"):
            negated, words = not negated, words[1:]
        phrase = " ".join(words)
        # "too dark" reads as "dark": the lexicon's classes do not depend on the degree
        phrase = " ".join(w for w in _strip_modifiers(phrase).split())
        if not phrase:
            continue
        hit = next(
            ((w, k, cs) for w, k, cs in _LEXICON if re.search(rf"(?<!\w){re.escape(w)}(?!\w)", phrase)), None
        )
        if hit is None:
            unknown.append(phrase)
            continue
        word, kind, classes = hit
        terms.append(Term(word, classes, negate=(kind == "positive") != negated))
    return terms, unknown


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


class ClassicalJudge:
    """:class:`giqa.ports.QualityJudge` by measurements; no weights, no GPU."""

    name = "classical"

    def __init__(self, params: dict[str, Any] | str | Path | None = None) -> None:
        data = params if isinstance(params, dict) else load_params(params)
        self.curves = {name: Curve.from_dict(curve) for name, curve in data["classes"].items()}
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
        if not terms:
            return Judgement(0.5, abstained=True, detail={"quality": quality, "unknown": unknown})
        values = measure(image.convert("RGB"), box)
        per_term: dict[str, float] = {}
        for term in terms:
            defects = [self.curves[c].p(values) for c in term.classes]
            # positive word / "not X": every named defect must be absent; defect word: any of its classes
            per_term[term.word] = min(1.0 - p for p in defects) if term.negate else max(defects)
        # "X and Y": the mean of the terms' probabilities — each measurement is noisy, so one weak term
        # should lower the answer, not veto it
        p_yes = sum(per_term.values()) / len(per_term)
        return Judgement(p_yes, detail={"quality": quality, "terms": per_term, "unknown": unknown})

    def judge_batch(self, items: Sequence[tuple[Image.Image, Box, str]]) -> list[Judgement]:
        return [self.judge(image, box, quality) for image, box, quality in items]
