"""Candidate phrases and quality words of a description, for a schema that only allows verbatim spans.

A 135M model cannot copy spans reliably: free extraction returns the few-shot example or whole sentences
(measured in ``bench/stage1_quality.py``). Offering it the description's own noun chunks and quality
words as JSON-schema ``enum`` values turns Stage 1 into a choice the grammar-constrained decoder can only
answer with verbatim text. Chunks are cut by simple rules (pure, no parser): from a determiner to the next
verb, conjunction, relative word, quality word or punctuation; a chunk with a prepositional tail is also
offered without it ("red star on the right" -> "red star").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from giqa.pipeline import lexicon

_STOP = frozenset(
    """
    is are was were be been looks look appears appear seems seem remains remain stays stay has have had
    shows show sits sit stands stand contains contain becomes become lowers lower loses lose makes make
    lacks which that who while but and or because although though so as rendered can could would will
    should does do did not also very quite rather slightly somewhat noticeably a an the bit lot drops
    drop suffers suffer affects affect hurts hurt reduces reduce gets get too
    """.split()
)
_PREPOSITIONS = frozenset(
    {"in", "on", "at", "with", "behind", "near", "of", "under", "over", "beside", "next", "above", "below",
     "across", "along", "around", "against", "inside", "outside", "between", "wearing", "holding", "from"}
)  # fmt: skip
# A chunk of only these names a place, not an object ("the bottom left", "the centre").
_POSITION = frozenset(
    {"left", "right", "top", "bottom", "centre", "center", "middle", "corner", "side", "upper", "lower",
     "edge", "edges", "part", "half", "area"}
)  # fmt: skip
_STARTERS = frozenset({"the", "a", "an", "his", "her", "its", "their", "this", "these", "those", "some"})
_TOKEN = re.compile(r"[\w][\w'-]*|[^\w\s]")


@dataclass(frozen=True, slots=True)
class Candidates:
    phrases: list[str]
    qualities: list[str]


def phrase_candidates(description: str, max_words: int = 8) -> list[str]:
    """Noun chunks that follow a determiner, shortest form first, each once, in text order."""
    tokens = [(m.group(0), m.start(), m.end()) for m in _TOKEN.finditer(description)]
    quality_starts = {s for s, _e, _w in lexicon.quality_spans(description)}
    out: list[str] = []
    for i, (word, _start, _end) in enumerate(tokens):
        if word.lower() not in _STARTERS:
            continue
        chunk: list[tuple[str, int, int]] = []
        for token in tokens[i + 1 :]:
            text = token[0]
            if (
                not (text[0].isalnum() or text[0] == "_")
                or text.lower() in _STOP
                or token[1] in quality_starts
            ):
                break
            chunk.append(token)
            if len(chunk) >= max_words:
                break
        while chunk and chunk[-1][0].lower() in _PREPOSITIONS:
            chunk.pop()
        if not chunk:
            continue
        forms = []
        cut = next((k for k, t in enumerate(chunk) if k > 0 and t[0].lower() in _PREPOSITIONS), None)
        if cut is not None:
            forms.append(chunk[:cut])
        forms.append(chunk)
        for form in forms:
            text = description[form[0][1] : form[-1][2]]
            if text in out or lexicon.names_whole_image(text) or lexicon.is_quality_only(text):
                continue
            if all(w in _POSITION for w in lexicon.words(text)):
                continue
            out.append(text)
    return out


def quality_candidates(description: str) -> list[str]:
    """Quality words as the description writes them, runs joined over "and" ("too dark and grainy") too."""
    spans = lexicon.quality_spans(description)
    out: list[str] = []
    for index, (start, end, word) in enumerate(spans):
        if word not in out:
            out.append(word)
        for next_start, next_end, _ in spans[index + 1 :]:
            if re.fullmatch(r"\s*(?:,\s*)?(?:and|,)\s*", description[end:next_start]) is None:
                break
            run = description[start:next_end]
            if run not in out:
                out.append(run)
            end = next_end
    return out


def candidates(description: str, max_words: int = 8) -> Candidates:
    return Candidates(phrase_candidates(description, max_words), quality_candidates(description))
