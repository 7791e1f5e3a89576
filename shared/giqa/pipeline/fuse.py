"""Stage 4: fuse a tag's boxes into the description as ``[phrase](<l, r>)`` (paper §3.2, DESIGN §3.5).

Each grounded phrase wraps its FIRST mention in the description and nothing else in the text changes, so
``strip_coordinates(fused) == description`` holds (checked on every call).

How a mention is found **(decided)**, in this order, the first tier that finds a free place wins:
1. the phrase verbatim (case-sensitive);
2. case-insensitively;
3. case-insensitively with any run of whitespace standing for the phrase's spaces;
4. as (3) but inside a longer word ("hand" in "hands"), the last resort.
Tiers 1–3 need word boundaries at both ends of the match, so "car" never wraps the middle of "scar".
The wrapped text is the description's own span, never the tag's spelling, so the text stays as it was.

Overlapping or nested phrases ("the red car" and "car"): mentions cannot nest in the grammar, so phrases
claim spans one at a time — longest phrase first, ties in input order — and each takes its first occurrence
that does not overlap an already claimed span. A phrase listed twice takes its next free occurrence. A
phrase with no free occurrence is reported as missing (:func:`fuse` raises :class:`FuseError`;
:func:`fuse_traced` returns it in ``missing``). An entry with no boxes is left as plain text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from giqa.boxes import Box, BoxLike, as_box
from giqa.grid import DEFAULT_M, DEFAULT_N
from giqa.grounded_text import BoxForm, normalize_whitespace, render_mention, strip_coordinates


class FuseError(ValueError):
    """A grounded phrase that cannot be placed in the description (names the phrases)."""

    def __init__(self, message: str, missing: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.missing = list(missing)


@dataclass(frozen=True, slots=True)
class Placement:
    phrase: str  # as given by the tag
    span: tuple[int, int]  # [start, end) in the description
    text: str  # the description's own text of the mention
    boxes: tuple[Box, ...]
    match: str  # "exact" | "casefold" | "whitespace" | "substring"


@dataclass(slots=True)
class FuseResult:
    text: str
    placed: list[Placement] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "placed": [
                {
                    "phrase": p.phrase,
                    "span": list(p.span),
                    "match": p.match,
                    "boxes": [b.as_list() for b in p.boxes],
                }
                for p in self.placed
            ],
            "missing": list(self.missing),
        }


def _bounded(pattern: str) -> str:
    # a mention starts and ends on word boundaries so "car" never lands inside "scar"
    return rf"(?<!\w){pattern}(?!\w)"


_LOOSE_TIERS = ("casefold", "whitespace", "substring")


@lru_cache(maxsize=16384)
def _tier_pattern(phrase: str, tier: str) -> re.Pattern[str]:
    # compiled lazily and once per phrase: at dataset scale re's own 512-entry cache thrashes, and most
    # phrases never get past the exact tier, which needs no regex at all
    if tier == "casefold":
        return re.compile(_bounded(re.escape(phrase)), re.IGNORECASE)
    loose = r"\s+".join(re.escape(w) for w in phrase.split())
    return re.compile(_bounded(loose) if tier == "whitespace" else loose, re.IGNORECASE)


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _exact(description: str, phrase: str) -> Iterator[tuple[int, int]]:
    r"""Verbatim occurrences on word boundaries (what ``(?<!\w)phrase(?!\w)`` finds), via str.find."""
    start = description.find(phrase)
    while start != -1:
        end = start + len(phrase)
        if (start == 0 or not _is_word(description[start - 1])) and (
            end == len(description) or not _is_word(description[end])
        ):
            yield start, end
        start = description.find(phrase, start + 1)


def _candidates(description: str, phrase: str) -> Iterator[tuple[str, tuple[int, int]]]:
    """Occurrences of ``phrase``, tier by tier, each tier in text order (lazy: most stop at the first)."""
    for span in _exact(description, phrase):
        yield "exact", span
    for tier in _LOOSE_TIERS:
        for match in _tier_pattern(phrase, tier).finditer(description):
            yield tier, (match.start(), match.end())


def _free(span: tuple[int, int], taken: list[tuple[int, int]]) -> bool:
    return all(span[1] <= s or span[0] >= e for s, e in taken)


def _wrappable(text: str) -> bool:
    # render refuses brackets and line breaks in a phrase; such a span cannot carry a mention
    return bool(text.strip()) and text == text.strip() and not any(ch in text for ch in "[]\n\r")


def fuse_traced(
    description: str,
    grounded: Sequence[tuple[str, Sequence[BoxLike]]],
    *,
    form: BoxForm = "grid",
    n: int = DEFAULT_N,
    m: int = DEFAULT_M,
) -> FuseResult:
    """Fuse and report: the fused text, where each phrase went, and the phrases that found no place."""
    if not isinstance(description, str):
        raise TypeError(f"description must be text, got {type(description).__name__}")
    entries = [(i, phrase, tuple(as_box(b) for b in boxes)) for i, (phrase, boxes) in enumerate(grounded)]
    for _, phrase, _ in entries:
        if not isinstance(phrase, str) or not phrase.strip():
            raise FuseError(f"a grounded phrase must be non-empty text, got {phrase!r}")
    order = sorted((e for e in entries if e[2]), key=lambda e: (-len(e[1]), e[0]))
    taken: list[tuple[int, int]] = []
    placed: list[Placement] = []
    missing: list[str] = []
    for _, phrase, boxes in order:
        chosen = next(
            (
                (tier, span)
                for tier, span in _candidates(description, phrase.strip())
                if _free(span, taken) and _wrappable(description[span[0] : span[1]])
            ),
            None,
        )
        if chosen is None:
            missing.append(phrase)
            continue
        tier, span = chosen
        taken.append(span)
        placed.append(Placement(phrase, span, description[span[0] : span[1]], boxes, tier))

    pieces: list[str] = []
    cursor = 0
    for p in sorted(placed, key=lambda p: p.span):
        pieces.append(description[cursor : p.span[0]])
        pieces.append(render_mention(p.text, p.boxes, form, n, m))
        cursor = p.span[1]
    pieces.append(description[cursor:])
    fused = "".join(pieces)
    if normalize_whitespace(strip_coordinates(fused)) != normalize_whitespace(description):
        # Only a description that already holds grounded markup or stray coordinate groups gets here.
        raise FuseError(f"fusing would change the description's text; refusing: {description!r}")
    placed.sort(key=lambda p: p.span)
    return FuseResult(fused, placed, missing)


def fuse(
    description: str,
    grounded: Sequence[tuple[str, Sequence[BoxLike]]],
    *,
    form: BoxForm = "grid",
    n: int = DEFAULT_N,
    m: int = DEFAULT_M,
) -> str:
    """The description with each grounded phrase's first mention wrapped as ``[phrase](boxes)``.

    Raises :class:`FuseError` naming every phrase that is not in the text (see :func:`fuse_traced` for a
    version that reports instead of raising).
    """
    result = fuse_traced(description, grounded, form=form, n=n, m=m)
    if result.missing:
        raise FuseError(
            f"grounded phrase(s) not found in the description: {result.missing!r}; "
            f"description: {description!r}",
            result.missing,
        )
    return result.text
