"""Quality vocabulary for checking what a language model says: polarity, opposites, keywords (pure).

Stage 1 uses it to find the quality words near a phrase and to catch an effect that contradicts its
quality word ("blurry" but "positive"); VQA generation uses it for the keyword filter and to build the
"No" claims (the opposite of what the description says). The lists are general IQA vocabulary
(Q-Pathway-style descriptions), not tied to GIQA-Synth.
"""

from __future__ import annotations

import re
from functools import lru_cache
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
    "faint", "clipped", "glare", "flare", "lens flare", "moire", "unreadable", "illegible", "posterized",
    "blurrier", "noisier", "grainier", "out-of-focus",
)  # fmt: skip
POSITIVE_QUALITY: tuple[str, ...] = (
    "sharp", "clear", "crisp", "in focus", "well focused", "well-focused", "focused", "detailed",
    "well-defined", "well defined", "well-exposed", "well exposed", "well lit", "well-lit", "bright",
    "clean", "vivid", "vibrant", "rich", "high contrast", "high-contrast", "colorful", "colourful",
    "good", "high quality", "high-quality", "fine", "excellent", "smooth", "natural", "balanced",
    "readable", "legible", "sharper", "clearer", "in-focus", "noise-free", "properly exposed",
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
     "general", "total", "visual", "visuals", "image's", "photo's", "picture's", "else", "rest"}
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

# Words a writer puts before a quality word; quality phrases keep them ("slightly blurry", "a bit too dark").
_MODIFIER = (
    r"(?:a\s+little\s+bit|a\s+little|a\s+bit|a\s+tad|a\s+touch|kind\s+of|kinda|sort\s+of|a\s+lot\s+of|"
    r"lots\s+of|slightly|somewhat|rather|quite|pretty|fairly|very|really|realy|too|to|extremely|"
    r"completely|totally|heavily|badly|noticeably|nicely|reasonably|much|some|any|strong|tack|mostly|"
    r"overly|way|super|so|perfectly|properly|visibly|bit|all|at\s+all|more|less|little)"
)
_NEGATOR = (
    r"(?:not|no|never|without|hardly|barely|isn't|aren't|wasn't|weren't|isnt|arent|free\s+of|"
    r"doesn't\s+look|don't\s+look|does\s+not\s+look|do\s+not\s+look)"
)
_LEFT = re.compile(rf"(?<![\w'-])(?:{_NEGATOR}\s+)?(?:{_MODIFIER}\s+)*$", re.IGNORECASE)
_NEGATED_BEFORE = re.compile(rf"(?<![\w'-]){_NEGATOR}\s+(?:{_MODIFIER}\s+)*$", re.IGNORECASE)
_JOIN = re.compile(r"\s*(?:,\s*)?(?:and|,)\s*", re.IGNORECASE)
# Single lexicon words long enough that one typo cannot turn another English word into them.
_TYPO_TARGETS = tuple(w for w, _ in _ALL if " " not in w and "-" not in w and len(w) >= 5)


def _one_edit(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` differ by one insertion, deletion, substitution or swap of neighbours."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        # a changed last letter is how words inflect ("blocks"/"blocky", "fades"/"faded"), not a typo
        return (len(diff) == 1 and diff[0] != len(a) - 1) or (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]]
            and a[diff[1]] == b[diff[0]]
        )
    short, long = sorted((a, b), key=len)
    i = next((k for k in range(len(short)) if short[k] != long[k]), len(short))
    return short[i:] == long[i + 1 :]


@lru_cache(maxsize=4096)
def typo_of(word: str) -> str | None:
    """The lexicon word a misspelling stands for ("bluury" -> "blurry", "noisey" -> "noisy"), else None.

    (decided) One edit away, same first two letters, and six letters or more on one side: short real words
    ("flame", "shape") stay what they are; neither do a lexicon word plus or minus a last letter ("blurs",
    "shadow" for "shadowy"), inflections and the like ("clearly") or a changed last letter ("blocks").
    """
    low = word.lower()
    if len(low) < 5 or low in _POLARITY or low.endswith(("ly", "ness")):
        return None
    for target in _TYPO_TARGETS:
        if max(len(low), len(target)) >= 6 and low[:2] == target[:2] and _one_edit(low, target):
            if low.startswith(target) or target.startswith(low):  # "blurs", "shadow" are words
                continue
            return target
    return None


def quality_words(text: str) -> list[tuple[int, int, str]]:
    """Lexicon words (longest first) and misspelt ones, in text order."""
    found = [(m.start(), m.end(), m.group(0)) for m in _ANY_QUALITY.finditer(text)]
    taken = [(s, e) for s, e, _ in found]
    for match in WORD.finditer(text):
        if typo_of(match.group(0)) and not any(s < match.end() and match.start() < e for s, e in taken):
            found.append((match.start(), match.end(), match.group(0)))
    return sorted(found)


def quality_phrases(text: str, *, runs: bool = True) -> list[tuple[int, int, str]]:
    """Quality phrases as written: a lexicon word (or a misspelling of one) with the hedges and negation
    in front of it ("slightly blurry", "not too dark", "no noise"), then runs of them joined by "and" or a
    comma ("blurry and a bit dark") unless ``runs`` is off. Runs come after their first phrase."""
    phrases: list[tuple[int, int]] = []
    for start, end, _word in quality_words(text):
        left = _LEFT.search(text, max(0, start - 40), start)
        phrases.append((left.start() if left else start, end))
    out: list[tuple[int, int, str]] = []
    for index, (start, end) in enumerate(phrases):
        out.append((start, end, text[start:end]))
        for next_start, next_end in phrases[index + 1 :] if runs else []:
            if _JOIN.fullmatch(text, end, next_start) is None:
                break
            out.append((start, next_end, text[start:next_end]))
            end = next_end
    return out


def words(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text)]


def quality_spans(text: str) -> list[tuple[int, int, str]]:
    """Every quality word/phrase in ``text`` as (start, end, word), longest match first at each place."""
    return [(m.start(), m.end(), m.group(0)) for m in _ANY_QUALITY.finditer(text)]


def polarity(quality: str) -> Polarity | None:
    """Negative if any negative quality word appears, else positive if any positive one, else None.

    "sharp but noisy" is negative: one flaw is enough for an object to hurt the image. A negated word counts
    as its opposite: "not blurry" and "no noise" are positive, "isn't sharp" is negative (decided: the paper
    keeps positive-effect tags, and a stated absence of a flaw is a positive statement about the object).
    """
    found: list[Polarity] = []
    for start, _end, word in quality_words(quality):
        pol = _POLARITY.get(word.lower()) or _POLARITY[typo_of(word) or word.lower()]
        if _NEGATED_BEFORE.search(quality[max(0, start - 40) : start]):
            pol = "positive" if pol == "negative" else "negative"
        found.append(pol)
    if "negative" in found:
        return "negative"
    return "positive" if found else None


def is_negated(text: str) -> bool:
    """True when the first quality word of ``text`` is negated ("not blurry", "no noise", "isn't sharp")."""
    spans = quality_words(text)
    return bool(spans) and _NEGATED_BEFORE.search(text[max(0, spans[0][0] - 40) : spans[0][0]]) is not None


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
