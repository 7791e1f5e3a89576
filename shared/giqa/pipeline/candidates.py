"""Candidate phrases and quality words of a description, for a schema that only allows verbatim spans.

A 135M model cannot copy spans reliably: free extraction returns the few-shot example or whole sentences
(measured in ``bench/stage1_quality.py``). Offering it the description's own noun chunks and quality
words as JSON-schema ``enum`` values turns Stage 1 into a choice the grammar-constrained decoder can only
answer with verbatim text. Chunks come from ``clauses`` (pure rules, no parser): from a determiner or a
clause's first word to the next verb, conjunction, relative word, quality word or punctuation; a chunk with
a prepositional tail that names something is offered with and without it ("bird on the branch" -> "bird").
"""

from __future__ import annotations

from dataclasses import dataclass

from giqa.pipeline import clauses, lexicon


@dataclass(frozen=True, slots=True)
class Candidates:
    phrases: list[str]
    qualities: list[str]


def phrase_candidates(description: str, max_words: int = 8) -> list[str]:
    """Noun chunks (``clauses``' chunker), bare form first, then with the modifier that tells the object
    apart ("bird on the branch"), each once, in text order; whole-image, quality-only and position-only
    chunks are left out."""
    out: list[str] = []
    for s_start, s_end in clauses.sentences(description):
        for segment in clauses.segments(description, s_start, s_end, max_words):
            for chunk in segment.chunks:
                for end in dict.fromkeys((chunk.end, chunk.long_end)):
                    text = description[chunk.start : end]
                    if text in out or lexicon.names_whole_image(text) or lexicon.is_quality_only(text):
                        continue
                    if all(w in clauses.POSITION for w in lexicon.words(text)):
                        continue
                    out.append(text)
    return out


def quality_candidates(description: str) -> list[str]:
    """Quality phrases as the description writes them, with their hedges and negation ("slightly blurry",
    "no noise"), runs joined over "and" ("too dark and grainy") too; each once."""
    return list(dict.fromkeys(text for _s, _e, text in lexicon.quality_phrases(description)))


def candidates(description: str, max_words: int = 8) -> Candidates:
    return Candidates(phrase_candidates(description, max_words), quality_candidates(description))
