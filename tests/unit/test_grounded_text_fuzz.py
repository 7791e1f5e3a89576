"""Fuzzing the grounded-text parser beyond ``test_grounded_text.py`` (which covers arbitrary text and the
render/parse round trip): texts made of the grammar's own characters (brackets, parentheses, angle
brackets, digits, separators), any grid size, hostile inputs for time (the orphan-coordinate pattern
once took minutes on a few thousand spaces: it must stay linear), and the linear rewrite of that pattern
checked against the original on small inputs.
"""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from giqa import grounded_text as gt

pytestmark = pytest.mark.unit

GRAMMAR = "[]()<>,;.- 0123456789\n\tab"
grammar_text = st.text(alphabet=GRAMMAR, max_size=120)
# pieces the parser looks for, glued in any order
pieces = st.sampled_from(
    ["[", "]", "(", ")", "<", ">", ", ", "0.5", "12", "-3", "  ", "[the cat]", "(<", ">)", "\n"]
)
glued = st.lists(pieces, max_size=40).map("".join)

# the pattern as it was (quadratic-to-cubic on long runs of spaces): the oracle for small inputs
ORIGINAL_ORPHAN = re.compile(
    r"\s?\(?\s*<\s*-?[\d.]+(?:\s*[,;\s]\s*-?[\d.]+){1,3}\s*>"
    r"(?:\s*,\s*<\s*-?[\d.]+(?:\s*[,;\s]\s*-?[\d.]+){1,3}\s*>)*(?:\s*\))?"
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(grammar_text, glued), st.integers(1, 64), st.integers(1, 64))
def test_parse_never_raises_and_what_it_finds_is_well_formed(text: str, n: int, m: int) -> None:
    result = gt.parse_text(text, n, m)
    for mention in result.mentions:
        start, end = mention.span
        assert 0 <= start < end <= len(text)
        assert mention.phrase and mention.phrase == " ".join(mention.phrase.split())
        assert mention.boxes and all(0 <= v <= 1 for box in mention.boxes for v in box.as_list())
    for problem in result.problems:
        assert 0 <= problem.span[0] <= problem.span[1] <= len(text) and problem.reason
    stripped = gt.strip_coordinates(text)
    assert isinstance(stripped, str) and len(stripped) <= len(text)


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet=" \t\n(<>),;.-0123456789ax", max_size=40))
def test_the_linear_orphan_pattern_removes_what_the_original_removed(text: str) -> None:
    assert gt._strip_orphans(text) == ORIGINAL_ORPHAN.sub("", text)


HOSTILE = {
    "spaces between numbers": "<1" + " " * 50_000 + "2" + " " * 50_000 + "x",
    "spaces before an open group": " " * 100_000 + "<1 2" + " " * 100_000,
    "open parentheses": " (" * 50_000 + "<1,2>",
    "open brackets": "[" * 100_000 + "](<" * 30_000,
    "many groups": "[a](" + "<1,2>, " * 30_000,
    "numbers without end": "<" + "1 " * 100_000,
}


@pytest.mark.parametrize("text", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_text_is_parsed_in_linear_time(text: str) -> None:
    started = time.perf_counter()
    gt.parse_text(text)
    gt.strip_coordinates(text)
    assert time.perf_counter() - started < 2.0, "parsing is no longer linear"
