"""Grounded quality text: ``[phrase](<a, b>)`` mentions inside natural language (DESIGN §3.2).

Rendering is strict (it refuses what it cannot write back unambiguously); parsing is lenient and never
raises on model output: spaces a tokenizer added, missing spaces, either box form, a missing closing
parenthesis, crossed grid corners. What cannot be read is reported as a :class:`Problem`, not raised.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from giqa.boxes import Box, BoxError, BoxLike, as_box
from giqa.grid import (
    DEFAULT_M,
    DEFAULT_N,
    GridError,
    decode_box,
    encode_box,
    format_grid,
    format_norm,
    quantize,
)
from giqa.grid import round_norm as _round_norm

BoxForm = Literal["grid", "norm"]
BOX_FORMS: tuple[BoxForm, ...] = ("grid", "norm")

# "[phrase]" then "(" then a body without brackets or newlines; the closing ")" may be missing.
_MENTION = re.compile(r"\[(?P<phrase>[^\[\]\n]{0,300})\]\s*\((?P<body>[^()\[\]\n]{0,600})(?P<close>\))?")
_GROUP = re.compile(r"<(?P<inner>[^<>]*)>")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?|-?\.\d+")
_NUMBERS_ONLY = re.compile(r"^[\s,;\d.\-]*$")
# A coordinate group left in text without a phrase, e.g. "the cat <12, 34>" or "(<0.1, 0.2, 0.3, 0.4>)".
# Linear time on any text (the first form, \s?\(?\s*<\s*-?[\d.]+(?:\s*[,;\s]\s*-?[\d.]+){1,3}..., took
# minutes on "<1", 2,000 spaces, "2", 2,000 spaces: a run of spaces split in quadratically many ways,
# and a search restarted at every space before a "<"). Now the separator is a comma or semicolon with
# spaces OR spaces alone (alternatives that cannot match the same text), quantifiers are possessive, the
# pattern starts at the "<", and the spaces and "(" before it are taken by :func:`_strip_orphans`.
_SEP = r"(?:\s*+[,;]\s*+|\s++)"
_COORDS = r"<\s*+-?[\d.]++(?:" + _SEP + r"-?[\d.]++){1,3}+\s*+>"
_ORPHAN = re.compile(_COORDS + r"(?:\s*+,\s*+" + _COORDS + r")*+(?:\s*+\))?+")


def _strip_orphans(text: str) -> str:
    r"""``text`` without its orphan coordinate groups, each with the spaces and the one "(" before it
    (what the pattern \s?\(?\s* in front of the group took)."""
    out: list[str] = []
    cursor = 0
    for match in _ORPHAN.finditer(text):
        start = match.start()
        while start > cursor and text[start - 1].isspace():
            start -= 1
        if start > cursor and text[start - 1] == "(":
            start -= 1
            if start > cursor and text[start - 1].isspace():
                start -= 1
        out.append(text[cursor:start])
        cursor = match.end()
    out.append(text[cursor:])
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Grounded:
    """A phrase to render with its boxes (the input side of :func:`render`)."""

    phrase: str
    boxes: tuple[Box, ...]

    def __init__(self, phrase: str, boxes: Iterable[BoxLike]) -> None:
        object.__setattr__(self, "phrase", phrase)
        object.__setattr__(self, "boxes", tuple(as_box(b) for b in boxes))


@dataclass(frozen=True, slots=True)
class Mention:
    """One ``[phrase](boxes)`` found in a text; ``span`` is its [start, end) in that text."""

    phrase: str
    boxes: tuple[Box, ...]
    span: tuple[int, int]
    form: BoxForm


@dataclass(frozen=True, slots=True)
class Problem:
    """A piece of text that looked like a grounded mention but could not be (fully) read."""

    span: tuple[int, int]
    reason: str
    text: str


@dataclass(slots=True)
class ParseResult:
    mentions: list[Mention] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def objects(self) -> list[tuple[str, Box]]:
        """Every (phrase, box) pair, a phrase with several boxes giving several pairs."""
        return [(m.phrase, b) for m in self.mentions for b in m.boxes]


# ---------------------------------------------------------------------------------------------- render


def _check_phrase(phrase: str) -> str:
    if not isinstance(phrase, str) or not phrase.strip():
        raise ValueError(f"a grounded phrase must be non-empty text, got {phrase!r}")
    if any(ch in phrase for ch in "[]\n\r"):
        raise ValueError(f"a grounded phrase may not contain brackets or line breaks: {phrase!r}")
    if phrase != phrase.strip():
        raise ValueError(f"a grounded phrase may not start or end with whitespace: {phrase!r}")
    return phrase


def render_box(box: BoxLike, form: BoxForm = "grid", n: int = DEFAULT_N, m: int = DEFAULT_M) -> str:
    if form == "grid":
        return format_grid(*encode_box(box, n, m))
    if form == "norm":
        return format_norm(box)
    raise ValueError(f"unknown box form {form!r}; expected one of {BOX_FORMS}")


def render_mention(
    phrase: str, boxes: Iterable[BoxLike], form: BoxForm = "grid", n: int = DEFAULT_N, m: int = DEFAULT_M
) -> str:
    """``[phrase](<a, b>, <c, d>)``. Refuses an empty phrase, brackets in it, or no boxes."""
    _check_phrase(phrase)
    rendered = [render_box(b, form, n, m) for b in boxes]
    if not rendered:
        raise ValueError(f"grounded phrase {phrase!r} has no boxes; write it as plain text instead")
    return f"[{phrase}]({', '.join(rendered)})"


def render(
    parts: Iterable[str | Grounded], form: BoxForm = "grid", n: int = DEFAULT_N, m: int = DEFAULT_M
) -> str:
    """Concatenate plain strings and grounded phrases into one grounded text."""
    out: list[str] = []
    for part in parts:
        if isinstance(part, Grounded):
            out.append(render_mention(part.phrase, part.boxes, form, n, m))
        elif isinstance(part, str):
            out.append(part)
        else:
            raise TypeError(f"render takes strings and Grounded items, got {type(part).__name__}")
    return "".join(out)


def quantize_box(box: BoxLike, form: BoxForm = "grid", n: int = DEFAULT_N, m: int = DEFAULT_M) -> Box:
    """The box a reader gets back after ``box`` is written in ``form``."""
    return quantize(box, n, m) if form == "grid" else _round_norm(box)


# ----------------------------------------------------------------------------------------------- parse


def _read_group(numbers: Sequence[str], n: int, m: int) -> tuple[Box, BoxForm] | str:
    """One box from its numbers, or the reason it cannot be read."""
    values = [float(v) for v in numbers]
    if len(values) == 2:
        if any(v != int(v) for v in values):
            return f"grid indices must be integers, got {numbers}"
        try:
            return decode_box(int(values[0]), int(values[1]), n, m), "grid"
        except GridError as exc:
            return str(exc)
    if len(values) == 4:
        x1, y1, x2, y2 = values
        try:
            return Box(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)), "norm"
        except BoxError as exc:
            return str(exc)
    return f"a box has 2 grid indices or 4 normalized coordinates, got {len(values)} numbers"


def _scan(text: str) -> Iterable[tuple[re.Match[str], str, list[list[str]], tuple[int, int]]]:
    """Each ``[phrase](...)`` whose parentheses hold coordinates: (match, phrase, number groups, span).

    A bracketed phrase followed by parentheses without any number is yielded with no groups.
    """
    for match in _MENTION.finditer(text):
        phrase = " ".join(match.group("phrase").split())
        body = match.group("body")
        groups = list(_GROUP.finditer(body))
        pieces: list[tuple[list[str], int]] = []  # (numbers, end offset within body)
        if groups:
            pieces = [(_NUMBER.findall(g.group("inner")), g.end()) for g in groups]
        elif body.strip() and _NUMBERS_ONLY.match(body):
            pieces = [(_NUMBER.findall(body), len(body.rstrip()))]
        if not pieces:
            yield match, phrase, [], (match.start(), match.end())
            continue
        # a missing ")" ends the mention with its last box
        end = match.end() if match.group("close") else match.start("body") + pieces[-1][1]
        yield match, phrase, [numbers for numbers, _ in pieces], (match.start(), end)


def parse_text(text: str, n: int = DEFAULT_N, m: int = DEFAULT_M) -> ParseResult:
    """Find every grounded mention; report the pieces that could not be read. Never raises on text."""
    result = ParseResult()
    if not isinstance(text, str) or not text:
        return result
    for match, phrase, groups, span in _scan(text):
        raw = text[span[0] : span[1]]
        if not groups:
            if match.group("body").strip():
                result.problems.append(Problem(span, "no box inside the parentheses", raw))
            continue
        boxes: list[Box] = []
        forms: list[BoxForm] = []
        for numbers in groups:
            read = _read_group(numbers, n, m)
            if isinstance(read, str):
                result.problems.append(Problem(span, read, raw))
            else:
                boxes.append(read[0])
                forms.append(read[1])
        if not phrase:
            result.problems.append(Problem(span, "empty phrase before the boxes", raw))
        elif boxes:
            result.mentions.append(Mention(phrase, tuple(boxes), span, forms[0]))
    return result


def parse(text: str, n: int = DEFAULT_N, m: int = DEFAULT_M) -> list[Mention]:
    """The grounded mentions of a text (see :func:`parse_text` for the problems too)."""
    return parse_text(text, n, m).mentions


def strip_coordinates(text: str) -> str:
    """Every ``[phrase](...)`` becomes ``phrase`` (readable boxes or not); stray coordinate groups go.

    Stage 4's invariant: ``strip_coordinates(fused) == description`` (up to whitespace).
    """
    if not isinstance(text, str) or not text:
        return ""
    out: list[str] = []
    cursor = 0
    for _match, phrase, groups, (start, end) in _scan(text):
        if not groups:
            continue
        out.append(text[cursor:start])
        out.append(phrase)
        cursor = end
    out.append(text[cursor:])
    return _strip_orphans("".join(out))


def normalize_whitespace(text: str) -> str:
    return " ".join(text.split())
