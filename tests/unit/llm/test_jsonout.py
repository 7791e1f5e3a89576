"""Reading JSON out of model text and validating it: edge cases first."""

from __future__ import annotations

import re

import pytest

from giqa.llm.jsonout import JSONOutputError, check_schema, extract_json, parse_and_validate, validate

pytestmark = pytest.mark.unit

TAGS_SCHEMA = {
    "type": "object",
    "properties": {
        "tags": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"phrase": {"type": "string"}, "effect": {"enum": ["positive", "negative"]}},
                "required": ["phrase", "effect"],
            },
        }
    },
    "required": ["tags"],
}


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_empty_answer_is_refused(text: str) -> None:
    with pytest.raises(JSONOutputError, match="empty"):
        extract_json(text)


@pytest.mark.parametrize(
    "text",
    ["no json here", "{'single': 'quotes'}", '{"unterminated": ', "[1, 2", "tags: phrase=cat"],
)
def test_text_without_a_complete_json_value_is_refused(text: str) -> None:
    with pytest.raises(JSONOutputError, match="no complete JSON"):
        extract_json(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('  {"a": 1}\n', {"a": 1}),
        ('```json\n{"a": 1}\n```', {"a": 1}),
        ("```\n[1, 2]\n```", [1, 2]),
        ('Sure! Here it is: {"a": {"b": [1]}} Hope this helps.', {"a": {"b": [1]}}),
        ('{"a": 1} {"b": 2}', {"a": 1}),  # the first complete value wins
        ('prefix { broken {"a": 1}', {"a": 1}),
        ('"just a string"', "just a string"),
    ],
)
def test_first_complete_json_value_is_found(text: str, expected: object) -> None:
    assert extract_json(text) == expected


def test_valid_value_passes_validation() -> None:
    validate({"tags": [{"phrase": "the cat", "effect": "negative"}]}, TAGS_SCHEMA)


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({}, "(root)"),
        ({"tags": "cat"}, "tags"),
        ({"tags": [{"phrase": "cat", "effect": "sideways"}]}, "tags/0/effect"),
        ({"tags": [{"phrase": 3, "effect": "negative"}]}, "tags/0/phrase"),
    ],
)
def test_violations_name_where_they_are(value: object, where: str) -> None:
    with pytest.raises(JSONOutputError, match=re.escape(f"at {where}")):
        validate(value, TAGS_SCHEMA)


def test_many_violations_are_summarised() -> None:
    bad = {"tags": [{"phrase": i, "effect": "x"} for i in range(4)]}
    with pytest.raises(JSONOutputError, match=r"\(\+\d+ more\)"):
        validate(bad, TAGS_SCHEMA)


def test_malformed_schema_is_refused_before_any_request() -> None:
    with pytest.raises(ValueError, match="invalid JSON schema"):
        check_schema({"type": "no-such-type"})


def test_parse_and_validate_combines_both() -> None:
    assert parse_and_validate('```json\n{"tags": []}\n```', TAGS_SCHEMA) == {"tags": []}
    with pytest.raises(JSONOutputError):
        parse_and_validate('{"tags": [1]}', TAGS_SCHEMA)
