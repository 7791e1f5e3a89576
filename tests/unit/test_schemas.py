import json

import pytest
from pydantic import ValidationError

from giqa.boxes import Box
from giqa.schemas import BenchItem, GroundedObject, LlavaRecord, Prediction, Sample, Tag, from_llava, to_llava

pytestmark = pytest.mark.unit


def test_tag_normalizes_whitespace_and_refuses_unknown_effects():
    tag = Tag(phrase="  red   circle ", quality="blurry", effect="negative")
    assert tag.phrase == "red circle"
    with pytest.raises(ValidationError, match="effect"):
        Tag(phrase="x", quality="blurry", effect="bad")
    with pytest.raises(ValidationError):
        Tag(phrase="   ", quality="blurry", effect="negative")


def test_boxes_in_models_are_validated_and_serialize_as_lists():
    obj = GroundedObject(phrase="cat", boxes=[[0.1, 0.2, 0.3, 0.4], Box(0, 0, 1, 1)])
    assert obj.boxes[0] == Box(0.1, 0.2, 0.3, 0.4)
    assert json.loads(obj.model_dump_json())["boxes"] == [[0.1, 0.2, 0.3, 0.4], [0.0, 0.0, 1.0, 1.0]]
    with pytest.raises(ValidationError, match="inverted"):
        GroundedObject(phrase="cat", boxes=[[0.5, 0.2, 0.3, 0.4]])
    with pytest.raises(ValidationError, match="4 coordinates"):
        GroundedObject(phrase="cat", boxes=[[0.5, 0.2, 0.3]])
    with pytest.raises(ValidationError):
        GroundedObject(phrase="cat", boxes=[])


BASE = {"id": "1", "image": "a.png", "question": "q?", "answer": "Yes."}


@pytest.mark.parametrize(
    ("fields", "ok"),
    [
        ({"task": "des"}, True),
        ({"task": "des", "qtype": "what"}, False),
        ({"task": "vqa", "qtype": "yes_no", "mode": "referring"}, True),
        ({"task": "vqa", "mode": "referring"}, False),  # no qtype
        ({"task": "vqa", "qtype": "how", "mode": "none"}, False),
        ({"task": "vqa", "qtype": "when", "mode": "grounding"}, False),
        ({"task": "other"}, False),
    ],
)
def test_sample_kind_rules(fields, ok):
    if ok:
        Sample(**BASE, **fields)
    else:
        with pytest.raises(ValidationError):
            Sample(**BASE, **fields)


def test_bench_item_round_trips_the_design_format():
    line = {
        "id": "d1",
        "task": "des",
        "image": "images/1.png",
        "question": "Assess?",
        "answer": "The [cat](<0, 42>) is blurry.",
        "objects": [{"phrase": "cat", "box": [0.0, 0.0, 0.1, 0.1]}],
    }
    item = BenchItem.model_validate(line)
    assert json.loads(item.model_dump_json(exclude_none=True)) == line


@pytest.mark.parametrize("answer", ["Maybe.", "Yes, it is."])
def test_yes_no_bench_answers_must_be_yes_or_no(answer):
    with pytest.raises(ValidationError, match="Yes"):
        BenchItem(
            id="v", task="vqa", qtype="yes_no", mode="referring", image="i", question="q", answer=answer
        )


def test_bench_item_refuses_unknown_fields():
    with pytest.raises(ValidationError, match="extra"):
        BenchItem(id="d", task="des", image="i", question="q", answer="a", score=3)


def test_prediction_keeps_empty_responses_and_ignores_extra_fields():
    assert Prediction.model_validate({"id": "1", "response": "", "latency": 3}).response == ""
    with pytest.raises(ValidationError):
        Prediction.model_validate({"response": "x"})


def test_llava_export_is_the_conversation_format():
    sample = Sample(**BASE, task="vqa", qtype="yes_no", mode="referring")
    record = to_llava(sample).dump()
    assert record == {
        "id": "1",
        "image": "a.png",
        "conversations": [{"from": "human", "value": "<image>\nq?"}, {"from": "gpt", "value": "Yes."}],
        "task": "vqa",
        "qtype": "yes_no",
        "mode": "referring",
    }
    assert from_llava(record) == ("a.png", "q?", "Yes.")
    # plain LLaVA / Q-Instruct records without our extra fields read too
    assert from_llava({"image": "b.jpg", "conversations": record["conversations"]}) == ("b.jpg", "q?", "Yes.")


def test_llava_record_needs_the_image_token_in_the_first_human_turn():
    with pytest.raises(ValidationError, match="image"):
        LlavaRecord.model_validate(
            {
                "id": "1",
                "image": "a",
                "task": "des",
                "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}],
            }
        )
