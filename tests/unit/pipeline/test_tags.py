"""Stage 1 validation (pure): verbatim spans, repairs, drops with reasons; the prompt snapshot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from giqa.llm.jsonout import validate
from giqa.pipeline.tags import (
    TAGS_SCHEMA,
    TagRules,
    closest_span,
    find_span,
    prompt_fingerprint,
    tags_messages,
    validate_tags,
)

pytestmark = pytest.mark.unit

SNAPSHOT = Path(__file__).parent / "snapshots" / "tags_prompt.json"
DESC = (
    "The image shows three shapes on a striped background. The red circle in the top left is blurry and "
    "noisy, while the blue square is sharp. The green star at the bottom looks dark. Overall, the image "
    "quality is poor."
)


def tag(phrase: str, quality: str = "blurry", effect: str = "negative") -> dict[str, str]:
    return {"phrase": phrase, "quality": quality, "effect": effect}


def reasons(result) -> list[str]:
    return [d.reason for d in result.drops]


# ----------------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize("raw", [None, "red circle", 3, {"phrase": "x"}])
def test_non_list_is_one_malformed_drop(raw: object) -> None:
    result = validate_tags(DESC, raw)
    assert result.tags == [] and reasons(result) == ["malformed"]


@pytest.mark.parametrize("item", ["red circle", 5, None, ["red circle"]])
def test_non_object_items_are_dropped(item: object) -> None:
    result = validate_tags(DESC, [item, tag("red circle", "blurry and noisy")])
    assert reasons(result) == ["malformed"] and [t.phrase for t in result.tags] == ["red circle"]


@pytest.mark.parametrize("phrase", ["", "   ", "...", None, 7])
def test_empty_phrase_is_dropped(phrase: object) -> None:
    result = validate_tags(DESC, [{"phrase": phrase, "quality": "blurry", "effect": "negative"}])
    assert reasons(result) == ["empty_phrase"]


def test_empty_list_gives_no_tags_and_no_drops() -> None:
    result = validate_tags(DESC, [])
    assert result.tags == [] and result.drops == []


# ----------------------------------------------------------------------------------- phrases


def test_verbatim_phrase_keeps_the_descriptions_spelling() -> None:
    result = validate_tags(DESC, [tag("RED  circle", "blurry and noisy")])
    assert [t.phrase for t in result.tags] == ["red circle"]
    assert [r for r in result.repairs if r.field == "phrase"] == []


@pytest.mark.parametrize(
    ("given_phrase", "expected", "how"),
    [
        ("The red circle is blurry", "The red circle", "trimmed_clause"),
        ("blurry red circle", "red circle", "removed_quality_words"),
        ("the red cirle in the top left", "The red circle in the top left", "fuzzy_span"),
        ("green star at bottom", "green star at the bottom", "fuzzy_span"),
    ],
)
def test_near_misses_are_repaired_to_a_verbatim_span(given_phrase: str, expected: str, how: str) -> None:
    result = validate_tags(DESC, [tag(given_phrase, "blurry")])
    assert [t.phrase for t in result.tags] == [expected]
    assert expected in DESC
    assert result.repairs[0].field == "phrase" and result.repairs[0].how.startswith(how)


@pytest.mark.parametrize("phrase", ["yellow triangle", "a dog on the beach", "the camera"])
def test_phrases_not_in_the_description_are_dropped(phrase: str) -> None:
    result = validate_tags(DESC, [tag(phrase)])
    assert result.tags == [] and reasons(result) == ["phrase_not_in_description"]


@pytest.mark.parametrize(
    ("description", "phrase"),
    [
        ("The image is blurry.", "image"),
        ("The image is blurry.", "The image"),
        ("Overall, the image quality is poor.", "the image quality"),
        ("This photo looks dark.", "This photo"),
        ("The whole picture is noisy.", "whole picture"),
        ("Overall, the image quality is poor.", "Overall"),
    ],
)
def test_whole_image_tags_are_dropped(description: str, phrase: str) -> None:
    assert reasons(validate_tags(description, [tag(phrase, "poor")])) == ["whole_image"]


@pytest.mark.parametrize(
    ("description", "phrase"),
    [("There is noise everywhere.", "noise"), ("The low contrast hurts.", "low contrast")],
)
def test_quality_words_are_not_objects(description: str, phrase: str) -> None:
    assert reasons(validate_tags(description, [tag(phrase, "noisy")])) == ["not_an_object"]


def test_overlong_phrase_is_dropped() -> None:
    long = "The red circle in the top left is blurry and noisy, while the blue square is sharp"
    result = validate_tags(DESC, [tag(long)], TagRules(max_phrase_words=6))
    assert "phrase_too_long" in reasons(result)


def test_duplicates_and_too_many_are_dropped() -> None:
    raw = [
        tag("red circle"),
        tag("Red Circle"),
        tag("blue square", "sharp", "positive"),
        tag("green star", "dark"),
    ]
    result = validate_tags(DESC, raw, TagRules(max_tags=2))
    assert [t.phrase for t in result.tags] == ["red circle", "blue square"]
    assert reasons(result) == ["duplicate", "too_many"]


# ----------------------------------------------------------------------------------- quality and effect


def test_quality_from_another_sentence_is_replaced_by_the_phrases_own() -> None:
    result = validate_tags(DESC, [tag("green star", "sharp", "negative")])
    assert result.tags[0].quality == "dark"
    assert ("quality", "sharp", "dark", "quality_from_sentence") in [
        (r.field, r.before, r.after, r.how) for r in result.repairs
    ]


def test_quality_run_over_and_is_kept_whole() -> None:
    result = validate_tags(DESC, [tag("red circle", "fuzzy")])
    assert result.tags[0].quality == "blurry and noisy"


def test_pair_sentence_gives_each_object_its_own_quality() -> None:
    result = validate_tags(
        DESC, [tag("blue square", "nice", "positive"), tag("red circle", "nice", "negative")]
    )
    assert [(t.phrase, t.quality) for t in result.tags] == [
        ("blue square", "sharp"),
        ("red circle", "blurry and noisy"),
    ]


def test_unfindable_unknown_quality_is_dropped() -> None:
    result = validate_tags("A cat sits on a mat.", [tag("cat", "purple-ish", "negative")])
    assert reasons(result) == ["quality_not_found"]


@pytest.mark.parametrize(
    ("effect", "expected"),
    [("negative", "negative"), ("NEGATIVE", "negative"), ("bad", "negative"), ("positive", "negative"),
     ("no impact", "negative"), ("no_impact", "negative"), ("sideways", "negative")],
)  # fmt: skip
def test_effect_contradicting_a_negative_quality_is_corrected(effect: str, expected: str) -> None:
    result = validate_tags(DESC, [tag("green star", "dark", effect)])
    assert [t.effect for t in result.tags] == [expected]


def test_effect_left_alone_when_correction_is_off() -> None:
    result = validate_tags(
        DESC, [tag("blue square", "sharp", "negative")], TagRules(fix_effect_from_quality=False)
    )
    assert result.tags[0].effect == "negative"


@pytest.mark.parametrize("effect", ["no impact", "none", "neutral", "No-Impact"])
def test_no_impact_tags_are_dropped(effect: str) -> None:
    description = "The sky is blue and the tree is green."
    result = validate_tags(description, [tag("the tree", "green", effect)])
    assert reasons(result) == ["no_impact"]


def test_invalid_effect_without_a_polar_quality_is_dropped() -> None:
    result = validate_tags("The sky is blue.", [tag("The sky", "blue", "meh")])
    assert reasons(result) == ["invalid_effect"]


# ----------------------------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "phrase": st.text(max_size=30),
                "quality": st.text(max_size=15),
                "effect": st.sampled_from(["negative", "positive", "no impact", "x"]),
            }
        ),
        max_size=6,
    )
)
def test_every_kept_phrase_is_a_verbatim_span_and_nothing_is_lost(raw: list[dict[str, str]]) -> None:
    result = validate_tags(DESC, raw)
    for kept in result.tags:
        assert kept.phrase in DESC and kept.effect != "no impact"
    assert len(result.tags) + len(result.drops) == len(raw)


def test_find_span_is_word_bounded_and_whitespace_tolerant() -> None:
    assert find_span("a scar and a car", "car") == (13, 16)
    assert find_span("the  red\ncircle", "red circle") == (5, 15)
    assert find_span("anything", "") is None


def test_closest_span_respects_the_threshold() -> None:
    assert closest_span(DESC, "blu squar", 0.8) is not None
    assert closest_span(DESC, "purple hexagon", 0.8) is None


# ----------------------------------------------------------------------------------- prompt


def test_prompt_matches_its_snapshot() -> None:
    """A prompt edit must be deliberate: regenerate with `python tests/unit/pipeline/test_tags.py`."""
    rendered = {"fingerprint": prompt_fingerprint(), "messages": tags_messages(DESC)}
    assert rendered == json.loads(SNAPSHOT.read_text(encoding="utf-8"))


def test_few_shot_examples_satisfy_the_schema_and_are_verbatim() -> None:
    messages = tags_messages(DESC)
    pairs = list(zip(messages[1:-1:2], messages[2:-1:2], strict=True))
    assert pairs, "the prompt has worked examples"
    for user, assistant in pairs:
        description = user["content"].removeprefix("Description: ")
        answer = json.loads(assistant["content"])
        validate(answer, TAGS_SCHEMA)
        for item in answer["tags"]:
            assert find_span(description, item["phrase"]) and find_span(description, item["quality"])
    assert messages[-1] == {"role": "user", "content": f"Description: {DESC}"}
    assert len(tags_messages(DESC, few_shot=False)) == 2


if __name__ == "__main__":
    SNAPSHOT.parent.mkdir(exist_ok=True)
    snapshot = {"fingerprint": prompt_fingerprint(), "messages": tags_messages(DESC)}
    SNAPSHOT.write_text(json.dumps(snapshot, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
