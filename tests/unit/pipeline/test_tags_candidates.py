"""Stage 1's candidate spans and quality lexicon (pure), and the constrained schema built from them."""

from __future__ import annotations

import pytest

from giqa.llm.jsonout import JSONOutputError, validate
from giqa.pipeline import lexicon
from giqa.pipeline.candidates import candidates, phrase_candidates, quality_candidates
from giqa.pipeline.tags import constrained_schema, stage1_request, stage1_requests

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("", []),
        ("Blurry.", []),
        ("The image is blurry.", []),  # whole image
        ("There is noise in the image.", []),  # no determiner-led chunk that is an object
        ("The red star on the right remains clear.", ["red star"]),
        ("The red star on green grass remains clear.", ["red star", "red star on green grass"]),
        (
            "The man wearing a white t-shirt is blurry.",
            ["man", "man wearing a white t-shirt", "white t-shirt"],
        ),
        ("The bird on the branch is crisp.", ["bird", "bird on the branch", "branch"]),
        ("Sky is noisy, the dark areas have banding.", ["Sky", "areas"]),  # a clause's first word; "dark" is
        ("faces r sharp, bg is noisey", ["faces", "bg"]),  # a quality word, not part of the name
        ("The dog and the cat are sharp.", ["dog", "cat"]),
        ("The quality drops at the white star at the top.", ["white star"]),
        ("The centre is dark, the bottom left too.", []),  # positions only
    ],
)
def test_phrase_candidates(description: str, expected: list[str]) -> None:
    found = phrase_candidates(description)
    assert found == expected
    assert all(c in description for c in found)


def test_quality_candidates_include_runs_over_and() -> None:
    assert quality_candidates("The square is too dark and grainy, the ring is crisp.") == [
        "too dark",
        "too dark and grainy",
        "grainy",
        "crisp",
    ]
    assert quality_candidates("Nothing to see.") == []


@pytest.mark.parametrize(
    ("quality", "expected"),
    [("blurry", "negative"), ("sharp and clean", "positive"), ("sharp but noisy", "negative"),
     ("blue", None), ("", None), ("too dark and grainy", "negative")],
)  # fmt: skip
def test_polarity(quality: str, expected: str | None) -> None:
    assert lexicon.polarity(quality) == expected


@pytest.mark.parametrize(
    ("quality", "expected"),
    [
        ("blurry", "sharp"),
        ("sharp", "blurry"),
        ("too dark", "well-exposed"),
        ("blue", None),
        ("crisp and clean", "blurry"),
    ],
)
def test_opposite(quality: str, expected: str | None) -> None:
    assert lexicon.opposite(quality) == expected


@pytest.mark.parametrize(
    ("phrase", "whole"),
    [("image", True), ("the whole picture", True), ("Overall", True), ("this photo's quality", True),
     ("the background", False), ("red car", False)],
)  # fmt: skip
def test_names_whole_image(phrase: str, whole: bool) -> None:
    assert lexicon.names_whole_image(phrase) is whole


def test_constrained_schema_only_admits_candidate_spans() -> None:
    description = "The red circle is blurry, while the blue square is sharp."
    schema = constrained_schema(candidates(description))
    validate({"tags": [{"phrase": "red circle", "quality": "blurry", "effect": "negative"}]}, schema)
    for bad in ({"phrase": "billiard table", "quality": "blurry", "effect": "negative"},
                {"phrase": "red circle", "quality": "fair", "effect": "negative"}):  # fmt: skip
        with pytest.raises(JSONOutputError):
            validate({"tags": [bad]}, schema)


def test_stage1_request_modes() -> None:
    description = "The red circle is blurry."
    messages, schema = stage1_request(description, mode="constrained")  # type: ignore[misc]
    assert "Candidate objects: red circle" in messages[-1]["content"]
    assert schema["properties"]["tags"]["items"]["properties"]["phrase"]["enum"] == ["red circle"]
    free = stage1_request(description, mode="free")
    assert free is not None and "Candidate" not in free[0][-1]["content"]
    assert stage1_request("The image is blurry.", mode="constrained") is None
    with pytest.raises(ValueError, match="unknown Stage-1 request mode"):
        stage1_request(description, mode="magic")


def test_stage1_requests_per_sentence() -> None:
    description = "The image is good. The red circle is blurry! The blue square is sharp? Nothing else."
    requests = stage1_requests(description, mode="sentences")
    assert [r[1]["properties"]["tags"]["items"]["properties"]["phrase"]["enum"] for r in requests] == [
        ["red circle"],
        ["blue square"],
    ]
    assert requests[0][0][-1]["content"].startswith("Description: The red circle is blurry!")
    assert len(stage1_requests(description, mode="constrained")) == 1
    assert stage1_requests("The image is fine.", mode="sentences") == []
    with pytest.raises(ValueError, match="unknown Stage-1 mode"):
        stage1_requests(description, mode="magic")
