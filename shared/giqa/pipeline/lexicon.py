"""Quality vocabulary for checking what a language model says: polarity, opposites, keywords (pure).

Stage 1 uses it to find the quality words near a phrase and to catch an effect that contradicts its
quality word ("blurry" but "positive"); VQA generation uses it for the keyword filter and to build the
"No" claims (the opposite of what the description says). The lists are general IQA vocabulary
(Q-Pathway-style descriptions), not tied to GIQA-Synth.
"""

from __future__ import annotations

import re
from typing import Literal

Polarity = Literal["positive", "negative"]

NEGATIVE_QUALITY: tuple[str, ...] = (
    "blurry", "blurred", "blur", "out of focus", "unfocused", "fuzzy", "soft", "smeared", "smudged",
    "motion-blurred", "motion blurred", "motion blur", "shaky", "ghosting",
    "noisy", "noise", "grainy", "grain", "speckled",
    "dark", "too dark", "dim", "underexposed", "underexposure", "murky", "shadowy",
    "overexposed", "overexposure", "washed out", "washed-out", "too bright", "blown out", "blown-out",
    "low contrast", "low-contrast", "low in contrast", "faded", "dull", "flat", "hazy", "foggy",
    "blocky", "pixelated", "compressed", "jpeg artifacts", "artifacts", "artefacts", "banding",
    "distorted", "distortion", "chromatic aberration", "aliasing", "jagged", "oversaturated",
    "poor", "bad", "low quality", "low-quality", "degraded", "unclear", "lacks detail", "loses detail",
)  # fmt: skip
POSITIVE_QUALITY: tuple[str, ...] = (
    "sharp", "clear", "crisp", "in focus", "well focused", "well-focused", "focused", "detailed",
    "well-defined", "well defined", "well-exposed", "well exposed", "well lit", "well-lit", "bright",
    "clean", "vivid", "vibrant", "rich", "high contrast", "high-contrast", "colorful", "colourful",
    "good", "high quality", "high-quality", "fine", "excellent", "smooth", "natural", "balanced",
)  # fmt: skip

# Yes/No "No" claims: the opposite of a quality word (quality claims that cannot be inferred).
OPPOSITES: dict[str, str] = {
    "blurry": "sharp", "blurred": "sharp", "out of focus": "in focus", "fuzzy": "sharp", "soft": "sharp",
    "motion-blurred": "sharp", "motion blurred": "sharp", "smeared": "sharp",
    "noisy": "clean", "grainy": "clean", "speckled": "clean",
    "dark": "bright", "too dark": "well-exposed", "dim": "bright", "underexposed": "well-exposed",
    "overexposed": "well-exposed", "washed out": "vivid", "too bright": "well-exposed",
    "blown out": "well-exposed",
    "low contrast": "high contrast", "low-contrast": "high contrast", "low in contrast": "high in contrast",
    "faded": "vivid", "dull": "vivid", "flat": "vivid", "hazy": "clear", "foggy": "clear",
    "blocky": "smooth", "pixelated": "smooth", "distorted": "clean", "unclear": "clear",
}  # fmt: skip
for _word, _opposite in list(OPPOSITES.items()):
    OPPOSITES.setdefault(_opposite, _word)
OPPOSITES.update(
    {
        "clear": "blurry",
        "crisp": "blurry",
        "well-defined": "blurry",
        "clean": "noisy",
        "well-exposed": "underexposed",
        "well exposed": "underexposed",
        "detailed": "blurry",
        "bright": "dark",
        "vivid": "faded",
        "sharp": "blurry",
        "in focus": "out of focus",
    }
)

# Attribute nouns that make a question about quality even when no quality adjective appears.
ATTRIBUTE_WORDS: tuple[str, ...] = (
    "quality", "clarity", "sharpness", "focus", "blur", "noise", "grain", "exposure", "brightness",
    "lighting", "light", "contrast", "colour", "color", "saturation", "detail", "details", "texture",
    "distortion", "distortions", "artifact", "artifacts", "compression", "degradation", "defect",
    "problem", "issue",
)  # fmt: skip

# Words that name the whole picture rather than an object in it.
WHOLE_IMAGE_WORDS: frozenset[str] = frozenset(
    {"image", "images", "photo", "photos", "photograph", "picture", "pictures", "pic", "overall", "whole",
     "entire", "quality", "frame", "shot", "scene", "composition", "everything", "it", "this", "that",
     "general", "total", "visual", "visuals", "image's", "photo's", "picture's"}
)  # fmt: skip
DETERMINERS: frozenset[str] = frozenset(
    {"the", "a", "an", "this", "that", "these", "those", "its", "his", "her", "their", "our", "my", "your"}
)

_ALL = sorted(
    [(w, "negative") for w in NEGATIVE_QUALITY] + [(w, "positive") for w in POSITIVE_QUALITY],
    key=lambda item: -len(item[0]),
)
_POLARITY: dict[str, Polarity] = dict(_ALL)  # type: ignore[arg-type]
_ANY_QUALITY = re.compile(
    r"(?<![\w-])(" + "|".join(re.escape(w) for w, _ in _ALL) + r")(?![\w-])", re.IGNORECASE
)
_KEYWORDS = re.compile(
    r"(?<![\w-])("
    + "|".join(
        re.escape(w) for w in sorted({w for w, _ in _ALL} | set(ATTRIBUTE_WORDS), key=len, reverse=True)
    )
    + r")(?![\w-])",
    re.IGNORECASE,
)
WORD = re.compile(r"[\w][\w'-]*")


def words(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text)]


def quality_spans(text: str) -> list[tuple[int, int, str]]:
    """Every quality word/phrase in ``text`` as (start, end, word), longest match first at each place."""
    return [(m.start(), m.end(), m.group(0)) for m in _ANY_QUALITY.finditer(text)]


def polarity(quality: str) -> Polarity | None:
    """Negative if any negative quality word appears, else positive if any positive one, else None.

    "sharp but noisy" is negative: one flaw is enough for an object to hurt the image.
    """
    found = [_POLARITY[m.group(0).lower()] for m in _ANY_QUALITY.finditer(quality)]
    if "negative" in found:
        return "negative"
    return "positive" if found else None


def opposite(quality: str) -> str | None:
    """A quality claim the description contradicts, for a "No" question (None if none is known)."""
    key = quality.strip().lower()
    if key in OPPOSITES:
        return OPPOSITES[key]
    for _start, _end, word in quality_spans(key):
        if word.lower() in OPPOSITES:
            return OPPOSITES[word.lower()]
    return None


def has_quality_keyword(text: str) -> bool:
    return _KEYWORDS.search(text) is not None


def is_quality_only(phrase: str) -> bool:
    """True when a "phrase" is only quality words (e.g. "noise", "low contrast"): not an object."""
    rest = _ANY_QUALITY.sub(" ", phrase.lower())
    rest_words = [w for w in words(rest) if w not in DETERMINERS and w not in ATTRIBUTE_WORDS and w != "and"]
    return not rest_words


def names_whole_image(phrase: str) -> bool:
    """True for "the image", "this photo", "overall quality", "the whole picture", ... ."""
    content = [w for w in words(phrase) if w not in DETERMINERS and w != "of"]
    return not content or all(w in WHOLE_IMAGE_WORDS for w in content)
