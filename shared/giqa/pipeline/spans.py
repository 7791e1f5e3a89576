"""Verbatim spans of a description (pure): find a phrase, repair a near miss, the quality run of a mention.

Stage 1 keeps only phrases that are spans of the description (DESIGN §3.5); these helpers find them
(case- and whitespace-tolerant, word-bounded) and repair the usual near misses of a small model.
"""

from __future__ import annotations

import difflib
import re
from functools import lru_cache

from giqa.pipeline import lexicon

COPULA = re.compile(
    r"\s+(?:is|are|was|were|looks|look|appears|appear|seems|seem|remains|stays|has|have)\s+", re.I
)
SENTENCE = re.compile(r"[^.!?]+[.!?]*")
EDGE_JUNK = " \t\n\"'`.,;:!?()[]{}"


@lru_cache(maxsize=16384)
def _span_pattern(phrase: str) -> re.Pattern[str] | None:
    tokens = phrase.split()
    if not tokens:
        return None
    return re.compile(r"(?<!\w)" + r"\s+".join(re.escape(t) for t in tokens) + r"(?!\w)", re.IGNORECASE)


def find_span(text: str, phrase: str, start: int = 0) -> tuple[int, int] | None:
    """The first word-bounded, case-insensitive occurrence of ``phrase`` (any whitespace between words)."""
    pattern = _span_pattern(phrase)
    match = pattern.search(text, start) if pattern else None
    return (match.start(), match.end()) if match else None


def closest_span(text: str, phrase: str, threshold: float) -> tuple[int, int, float] | None:
    """The word n-gram of ``text`` most like ``phrase`` (difflib ratio), if it reaches ``threshold``."""
    target = " ".join(phrase.lower().split())
    words = list(lexicon.WORD.finditer(text))
    size = len(target.split())
    best: tuple[int, int, float] | None = None
    for length in range(max(1, size - 2), size + 3):
        for i in range(len(words) - length + 1):
            start, end = words[i].start(), words[i + length - 1].end()
            candidate = " ".join(text[start:end].lower().split())
            matcher = difflib.SequenceMatcher(None, target, candidate, autojunk=False)
            if matcher.real_quick_ratio() < threshold or matcher.quick_ratio() < threshold:
                continue
            score = matcher.ratio()
            if score >= threshold and (best is None or score > best[2]):
                best = (start, end, score)
    return best


def locate_phrase(description: str, phrase: str, threshold: float) -> tuple[tuple[int, int], str] | None:
    """(span, how) for a phrase: "verbatim" or the repair that found it; None if nothing is close."""
    span = find_span(description, phrase)
    if span:
        return span, "verbatim"
    clause = COPULA.split(phrase, maxsplit=1)[0].strip(EDGE_JUNK)
    if clause and clause != phrase and (span := find_span(description, clause)):
        return span, "trimmed_clause"
    bare = " ".join(lexicon.WORD.findall(lexicon._ANY_QUALITY.sub(" ", phrase)))
    if (
        bare
        and bare.lower() not in lexicon.DETERMINERS
        and bare != phrase
        and (span := find_span(description, bare))
    ):
        return span, "removed_quality_words"
    near = closest_span(description, phrase, threshold)
    if near:
        return (near[0], near[1]), f"fuzzy_span({near[2]:.2f})"
    return None


def sentence_of(text: str, position: int) -> tuple[int, int]:
    for match in SENTENCE.finditer(text):
        if match.start() <= position < match.end():
            return match.start(), match.end()
    return 0, len(text)


def sentence_quality(
    description: str, phrase_span: tuple[int, int], phrase: str
) -> tuple[str, int, int] | None:
    """Quality words that the sentence of one of the phrase's mentions says about it.

    The first quality run after the phrase (joined over "and") wins, else the last one before it.
    """
    position = 0
    spans = [phrase_span]
    while (later := find_span(description, phrase, position)) is not None:
        if later != phrase_span:
            spans.append(later)
        position = later[1]
    for p_start, p_end in spans:
        s_start, s_end = sentence_of(description, p_start)
        sentence = description[s_start:s_end]
        found = [(s + s_start, e + s_start) for s, e, _ in lexicon.quality_phrases(sentence, runs=False)]
        found = [(s, e) for s, e in found if e <= p_start or s >= p_end]
        if not found:
            continue
        after = [q for q in found if q[0] >= p_end]
        start, end = after[0] if after else found[-1]
        for s, e in found:  # extend "dark and noisy" over its "and"
            if s > end and re.fullmatch(r"\s*(?:,\s*)?(?:and|,)\s*", description[end:s]):
                end = e
        return description[start:end], start, end
    return None
