"""Stage 4 fusion: first mention wrapped, nothing else changes, strip_coordinates undoes it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from giqa.boxes import Box
from giqa.grounded_text import normalize_whitespace, parse, render_box, strip_coordinates
from giqa.pipeline import FuseError, fuse
from giqa.pipeline.fuse import fuse_traced

pytestmark = pytest.mark.unit

B1 = Box(0.775, 0.075, 0.975, 0.775)  # <35, 319> on the 20x20 grid (DESIGN §3.1)
B2 = Box(0.1, 0.1, 0.3, 0.3)
G2 = render_box(B2)


def test_wraps_first_mention_only() -> None:
    text = "The dog is blurry. The dog looks sad."
    out = fuse(text, [("dog", [B1])])
    assert out == "The [dog](<35, 319>) is blurry. The dog looks sad."
    assert strip_coordinates(out) == text


def test_several_boxes_and_norm_form() -> None:
    out = fuse("Two candles are dim.", [("candles", [B1, B2])], form="norm")
    assert out == "Two [candles](<0.78, 0.07, 0.97, 0.78>, <0.10, 0.10, 0.30, 0.30>) are dim."
    (mention,) = parse(out)
    assert mention.phrase == "candles" and len(mention.boxes) == 2


def test_grid_size_is_honoured() -> None:
    out = fuse("a cat", [("cat", [Box(0.0, 0.0, 1.0, 1.0)])], n=10, m=10)
    assert out == "a [cat](<0, 99>)"


def test_case_sensitive_first_then_case_insensitive_keeps_description_spelling() -> None:
    text = "The Red Car is sharp; the red car behind is blurry."
    assert fuse(text, [("red car", [B2])]) == f"The Red Car is sharp; the [red car]({G2}) behind is blurry."
    assert fuse(text, [("RED CAR", [B2])]) == f"The [Red Car]({G2}) is sharp; the red car behind is blurry."


def test_whitespace_tier() -> None:
    text = "the red\tcar is noisy"
    out = fuse(text, [("red car", [B2])])
    assert out.startswith("the [red car](") or out.startswith("the [red\tcar](")
    assert normalize_whitespace(strip_coordinates(out)) == normalize_whitespace(text)


def test_missing_phrase_raises_with_names_and_traced_reports() -> None:
    with pytest.raises(FuseError, match="unicorn") as info:
        fuse("A blurry dog.", [("dog", [B1]), ("unicorn", [B2])])
    assert info.value.missing == ["unicorn"]
    result = fuse_traced("A blurry dog.", [("dog", [B1]), ("unicorn", [B2])])
    assert result.missing == ["unicorn"] and result.text == "A blurry [dog](<35, 319>)."
    assert result.to_dict()["placed"][0]["phrase"] == "dog"


def test_entry_without_boxes_stays_plain() -> None:
    assert fuse("A blurry dog.", [("dog", [])]) == "A blurry dog."


def test_nested_phrases_longest_first() -> None:
    text = "The red car is blurry, and the car park is dark."
    out = fuse(text, [("car", [B1]), ("the red car", [B2])])
    # "the red car" matched case-insensitively at the start; "car" takes its next free occurrence
    assert out == f"[The red car]({G2}) is blurry, and the [car](<35, 319>) park is dark."
    assert strip_coordinates(out) == text


def test_nested_phrase_without_free_occurrence_is_missing() -> None:
    text = "The red car is blurry."
    result = fuse_traced(text, [("car", [B1]), ("red car", [B2])])
    assert result.missing == ["car"]
    assert strip_coordinates(result.text) == text


def test_overlapping_phrases_do_not_nest() -> None:
    text = "a dark blue sky"
    result = fuse_traced(text, [("dark blue", [B1]), ("blue sky", [B2])])
    # the longer phrase claims its span first; the other cannot overlap it
    assert result.text == "a [dark blue](<35, 319>) sky" and result.missing == ["blue sky"]


def test_same_phrase_twice_takes_next_occurrence() -> None:
    text = "One hand is blurry, the other hand is sharp."
    out = fuse(text, [("hand", [B1]), ("hand", [B2])])
    assert out == f"One [hand](<35, 319>) is blurry, the other [hand]({G2}) is sharp."


def test_bad_input() -> None:
    with pytest.raises(FuseError):
        fuse("text", [("", [B1])])
    with pytest.raises(TypeError):
        fuse(None, [("x", [B1])])  # type: ignore[arg-type]
    with pytest.raises(FuseError, match="change the description"):
        fuse("the cat <12, 34> is blurry", [("cat", [B1])])


def test_word_boundaries_before_substrings() -> None:
    assert fuse("A scar on the car.", [("car", [B1])]) == "A scar on the [car](<35, 319>)."
    result = fuse_traced("Both hands are blurry.", [("hand", [B1])])
    assert result.text == "Both [hand](<35, 319>)s are blurry." and result.placed[0].match == "substring"


def test_description_with_brackets_elsewhere_is_left_alone() -> None:
    text = "The dog [left] is blurry."
    out = fuse(text, [("dog", [B1])])
    assert strip_coordinates(out) == text


words = st.sampled_from(["the", "dog", "cat", "is", "blurry", "red", "sharp", "and", "a", "noisy", "sky"])


@settings(max_examples=200, deadline=None)
@given(st.lists(words, min_size=1, max_size=15), st.lists(st.integers(0, 14), max_size=4))
def test_invariant_strip_gives_description_back(tokens: list[str], picks: list[int]) -> None:
    text = " ".join(tokens) + "."
    grounded = [(tokens[p % len(tokens)], [B2]) for p in picks]
    result = fuse_traced(text, grounded)
    assert strip_coordinates(result.text) == text
    assert len(parse(result.text)) == len(result.placed)
    assert len(result.placed) + len(result.missing) == len(grounded)
