"""The words the classical judge measures, and how a quality text is read into measurable terms.

Pure Python (no numpy): the CLI lists these words in ``giqa judge --help`` without loading the judge.
Defect classes: blur, noise, dark, bright, low_contrast, blocky (JPEG), pixelated (down/up-sampling).
Positive words are the negation of their defects (``sharp`` = no blur, blocks or pixelation). Modifiers
("slightly", "very") are ignored, "not X" negates, "X and Y" gives two terms. The vocabulary covers
Stage 1's lexicon (:mod:`giqa.pipeline.lexicon`) and GIQA-Synth's words (:mod:`giqa.synth.words`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFECT_WORDS: dict[str, tuple[str, ...]] = {
    "blur": (
        "blurry",
        "blurrier",
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
        "shaky",
        "ghosting",
        "lacks detail",
        "loses detail",
    ),
    "noise": ("noisy", "noisier", "noise", "grainy", "grainier", "grain", "speckled", "speckly", "snowy"),
    "dark": (
        "dark",
        "underexposed",
        "under exposed",
        "underexposure",
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
        "overexposure",
        "washed out",
        "too bright",
        "blown out",
        "glaring",
        "glare",
        "flare",
        "lens flare",
        "clipped",
        "blown",
    ),
    "low_contrast": (
        "low contrast",
        "low in contrast",
        "faded",
        "faint",
        "dull",
        "flat",
        "hazy",
        "foggy",
        "washed",
    ),
    "blocky": (
        "jpeg",
        "jpeg artifacts",
        "compressed",
        "compression artifacts",
        "artifacts",
        "artefacts",
        "blocking",
    ),
    "pixelated": ("mosaic", "jagged", "aliasing"),
}
# Words whose defect is any of several classes: heavy JPEG and down/up-sampling both leave visible blocks,
# and descriptions call either "blocky" or "pixelated" (GIQA-Synth does too) (decided).
MULTI_DEFECT_WORDS: dict[str, tuple[str, ...]] = {
    "blocky": ("blocky", "pixelated"),
    "pixelated": ("pixelated", "blocky"),
    "pixelized": ("pixelated", "blocky"),
    "low quality": ("blur", "noise", "low_contrast", "blocky", "pixelated"),
    "poor": ("blur", "noise", "low_contrast", "blocky", "pixelated"),
    "bad": ("blur", "noise", "low_contrast", "blocky", "pixelated"),
    "degraded": ("blur", "noise", "low_contrast", "blocky", "pixelated"),
    # text that cannot be read: too soft or too coarse (Stage 1's document vocabulary)
    "illegible": ("blur", "pixelated"),
    "unreadable": ("blur", "pixelated"),
}
_ALL_DEFECTS = ("blur", "noise", "low_contrast", "blocky", "pixelated")
POSITIVE_WORDS: dict[str, tuple[str, ...]] = {
    "sharp": ("blur", "blocky", "pixelated"),
    "sharper": ("blur", "blocky", "pixelated"),
    "legible": ("blur", "pixelated"),
    "readable": ("blur", "pixelated"),
    "crisp": ("blur", "blocky", "pixelated", "low_contrast"),
    "in focus": ("blur",),
    "focused": ("blur",),
    "well focused": ("blur",),
    "well defined": ("blur", "blocky", "pixelated"),
    "detailed": ("blur", "pixelated"),
    "clear": _ALL_DEFECTS,
    "clearer": _ALL_DEFECTS,
    "clean": ("noise", "blocky", "pixelated"),
    "smooth": ("noise", "blocky", "pixelated"),
    "noise free": ("noise",),
    "well exposed": ("dark", "bright"),
    "properly exposed": ("dark", "bright"),
    "well lit": ("dark",),
    "bright": ("dark",),  # "bright" praises the light (lexicon: positive); "too bright" is a defect
    "balanced": ("dark", "bright"),
    "natural": ("dark", "bright"),
    "vivid": ("low_contrast", "dark", "bright"),
    "vibrant": ("low_contrast", "dark", "bright"),
    "colorful": ("low_contrast",),
    "colourful": ("low_contrast",),
    "rich": ("low_contrast",),
    "high contrast": ("low_contrast",),
    "good": _ALL_DEFECTS,
    "high quality": _ALL_DEFECTS,
    "fine": _ALL_DEFECTS,
    "excellent": _ALL_DEFECTS,
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


def known_words() -> dict[str, list[str]]:
    """Every word the judge measures, by kind: defect words and positive words (for ``--help``)."""
    defects = {w for ws in DEFECT_WORDS.values() for w in ws} | set(MULTI_DEFECT_WORDS)
    return {"defect": sorted(defects), "positive": sorted(POSITIVE_WORDS)}


def known_words_text() -> str:
    """One line per kind, for help texts."""
    words = known_words()
    return f"defects: {', '.join(words['defect'])}; positive: {', '.join(words['positive'])}"


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
    + [(w, "defect", cs) for w, cs in MULTI_DEFECT_WORDS.items()]
    + [(w, "positive", cs) for w, cs in POSITIVE_WORDS.items()],
    key=lambda item: -len(item[0]),
)


def _lookup(phrase: str) -> tuple[str, str, tuple[str, ...]] | None:
    return next(
        ((w, k, cs) for w, k, cs in _LEXICON if re.search(rf"(?<!\w){re.escape(w)}(?!\w)", phrase)), None
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
        # "very dark" reads as "dark": the classes do not depend on the degree; the phrase as written is
        # looked up first so "too bright" (a defect) is not read as "bright" (praise)
        stripped = " ".join(_strip_modifiers(phrase).split())
        if not stripped:
            continue
        hit = _lookup(phrase) or _lookup(stripped)
        phrase = stripped
        if hit is None:
            unknown.append(phrase)
            continue
        word, kind, classes = hit
        terms.append(Term(word, classes, negate=(kind == "positive") != negated))
    return terms, unknown
