"""VQA generation (pure parts): validation of model QA, the keyword filter, Yes/No truth, box insertion,
templates, samples; and the prompt snapshot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from giqa.boxes import Box
from giqa.grounded_text import parse, strip_coordinates
from giqa.llm.jsonout import validate
from giqa.pipeline.vqa import (
    VQA_SCHEMA,
    KeyObject,
    VQARules,
    check_and_ground,
    head_noun,
    template_qa,
    to_samples,
    vqa_messages,
    vqa_prompt_fingerprint,
)

pytestmark = pytest.mark.unit

SNAPSHOT = Path(__file__).parent / "snapshots" / "vqa_prompt.json"
RED = KeyObject("red circle", "blurry and noisy", "negative", (Box(0.1, 0.1, 0.3, 0.3),))
BLUE = KeyObject("blue square", "sharp", "positive", (Box(0.5, 0.5, 0.9, 0.9), Box(0.0, 0.6, 0.2, 0.8)))
OBJECTS = [RED, BLUE]
NO_FILL = VQARules(template_fill=False)


def qa(qtype: str, question: str, answer: str) -> dict[str, str]:
    return {"type": qtype, "question": question, "answer": answer}


def reasons(result) -> list[str]:
    return [d["reason"] for d in result.drops]


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ("junk", "malformed"),
        ({"type": "yes_no"}, "malformed"),
        (qa("maybe", "Is the red circle blurry?", "Yes"), "malformed"),
        (qa("yes_no", "Is the [red circle] blurry?", "Yes"), "malformed"),
        (qa("yes_no", "Tell me about the red circle.", "Yes"), "not_a_yes_no_question"),
        (qa("yes_no", "Is the red circle blurry?", "Perhaps"), "yes_no_answer_not_yes_or_no"),
        (qa("what", "Is the red circle blurry?", "Blur"), "open_question_without_wh_word"),
        (qa("what", "What affects the red circle?", "Yes, blur"), "open_answer_is_yes_or_no"),
        (
            qa("how", "How sharp is the blue square?", "very very sharp and quite clean too"),
            "answer_too_long",
        ),
        (qa("how", "How is the weather today?", "Sunny"), "unrelated"),
        (qa("what", "What distortion is in the image?", "Noise"), "ungroundable"),
    ],
)
def test_bad_pairs_are_dropped_with_a_reason(item: object, reason: str) -> None:
    result = check_and_ground([item], OBJECTS, NO_FILL)
    assert result.items == [] and reasons(result) == [reason]


@pytest.mark.parametrize("raw", [None, "qa", {"qa": []}, 3])
def test_non_list_answer_gives_nothing_without_templates(raw: object) -> None:
    assert check_and_ground(raw, OBJECTS, NO_FILL).items == []


def test_referring_yes_no_puts_the_boxes_in_the_question() -> None:
    result = check_and_ground([qa("yes_no", "Is the blue square sharp", "yes")], OBJECTS, NO_FILL)
    (item,) = result.items
    assert (item.qtype, item.mode, item.answer) == ("yes_no", "referring", "Yes.")
    assert item.question == "Is the [blue square](<210, 378>, <240, 324>) sharp?"
    assert [m.phrase for m in parse(item.question)] == ["blue square"]
    assert strip_coordinates(item.question) == "Is the blue square sharp?"


def test_grounding_puts_the_boxes_in_the_answer() -> None:
    result = check_and_ground([qa("what", "Which object is sharp?", "the blue square")], OBJECTS, NO_FILL)
    (item,) = result.items
    assert (item.qtype, item.mode, item.grounded_in_answer) == ("what", "grounding", True)
    assert item.question == "Which object is sharp?"
    assert item.answer == "The [blue square](<210, 378>, <240, 324>)."


@pytest.mark.parametrize(
    ("question", "given", "expected"),
    [
        ("Is the red circle blurry?", "No", "Yes."),  # stated
        ("Is the red circle noisy?", "No", "Yes."),
        ("Is the red circle sharp?", "Yes", "No."),  # contradicted
        ("Is the blue square blurry?", "Yes", "No."),
        ("Is the blue square sharp?", "No", "Yes."),
        ("Is the red circle large?", "No", "No."),  # not a quality claim: the model's answer stands
    ],
)
def test_yes_no_answers_must_agree_with_the_description(question: str, given: str, expected: str) -> None:
    (item,) = check_and_ground([qa("yes_no", question, given)], OBJECTS, NO_FILL).items
    assert item.answer == expected
    assert item.corrected is (expected.rstrip(".") != given)


def test_question_word_decides_the_open_type() -> None:
    raw = [qa("what", "Why is the red circle poor?", "Blur"), qa("why", "How is the blue square?", "Sharp")]
    assert [i.qtype for i in check_and_ground(raw, OBJECTS, NO_FILL).items] == ["why", "how"]


def test_head_noun_finds_the_object_when_the_model_shortens_it() -> None:
    (item,) = check_and_ground([qa("yes_no", "Is the circle noisy?", "yes")], OBJECTS, NO_FILL).items
    assert item.about == "red circle" and item.question.startswith("Is the [circle](")


def test_ambiguous_head_noun_is_not_guessed() -> None:
    twins = [
        KeyObject("left hand", "blurry", "negative", RED.boxes),
        KeyObject("right hand", "sharp", "positive", BLUE.boxes),
    ]
    result = check_and_ground([qa("yes_no", "Is the hand blurry?", "yes")], twins, NO_FILL)
    assert result.items == [] and reasons(result) == ["ungroundable"]


@pytest.mark.parametrize(
    ("phrase", "head"),
    [("red circle", "circle"), ("The man wearing a white t-shirt", "man"), ("his hands", "hands"), ("", "")],
)
def test_head_noun(phrase: str, head: str) -> None:
    assert head_noun(phrase) == head


def test_duplicates_are_dropped() -> None:
    raw = [qa("yes_no", "Is the red circle blurry?", "Yes"), qa("yes_no", "is the red circle blurry", "yes")]
    result = check_and_ground(raw, OBJECTS, NO_FILL)
    assert len(result.items) == 1 and reasons(result) == ["duplicate"]


def test_templates_fill_each_short_kind_once() -> None:
    result = check_and_ground([], OBJECTS, VQARules(min_yes=1, min_no=1, min_open=1))
    kinds = sorted((i.qtype, i.answer if i.qtype == "yes_no" else "open") for i in result.items)
    assert kinds == [("what", "open"), ("yes_no", "No."), ("yes_no", "Yes.")]
    assert all(i.source == "template" for i in result.items)


def test_templates_follow_the_tags() -> None:
    items = {(i.question, i.answer) for i in template_qa([RED])}
    assert ("Is the red circle blurry?", "Yes.") in items
    assert ("Is the red circle sharp?", "No.") in items
    assert ("Which object is blurry?", "Red circle.") in items
    assert ("What is the quality of the red circle?", "Blurry.") in items
    hands = template_qa([KeyObject("his hands", "motion-blurred", "negative", RED.boxes)])
    assert hands[0].question == "Are his hands motion-blurred?"


def test_objects_without_boxes_give_nothing() -> None:
    bare = KeyObject("red circle", "blurry", "negative", ())
    result = check_and_ground([qa("yes_no", "Is the red circle blurry?", "Yes")], [bare])
    assert result.items == [] and reasons(result) == ["no_key_objects"]


def test_samples_validate_and_list_answer_boxes_only_for_grounding() -> None:
    raw = [
        qa("yes_no", "Is the red circle sharp?", "No"),
        qa("what", "Which object is sharp?", "blue square"),
    ]
    result = check_and_ground(raw, OBJECTS, NO_FILL)
    samples = to_samples("k1", "img.png", result, OBJECTS)
    assert [(s.id, s.task, s.qtype, s.mode) for s in samples] == [
        ("k1-vqa0", "vqa", "yes_no", "referring"),
        ("k1-vqa1", "vqa", "what", "grounding"),
    ]
    assert samples[0].objects == [] and [o.phrase for o in samples[1].objects] == ["blue square"]


def test_prompt_matches_its_snapshot_and_examples_satisfy_the_schema() -> None:
    messages = vqa_messages("The red circle is blurry.", [RED])
    assert {"fingerprint": vqa_prompt_fingerprint(), "messages": messages} == json.loads(SNAPSHOT.read_text())
    validate(json.loads(messages[2]["content"]), VQA_SCHEMA)
    assert messages[-1]["content"].endswith("Key objects: red circle")


if __name__ == "__main__":
    SNAPSHOT.parent.mkdir(exist_ok=True)
    snapshot = {
        "fingerprint": vqa_prompt_fingerprint(),
        "messages": vqa_messages("The red circle is blurry.", [RED]),
    }
    SNAPSHOT.write_text(json.dumps(snapshot, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
