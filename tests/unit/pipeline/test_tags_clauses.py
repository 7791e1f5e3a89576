"""Stage 1 on human text (pure): clause splitting, the clause rules, negation and hedges, completion of
the model's answer, and the rules' precision/recall on the hand-written fixture."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from giqa.pipeline import clauses, lexicon
from giqa.pipeline.tags import extract_tags, request_units, rule_tags, stage1_requests

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
FIXTURE = ROOT / "tests" / "fixtures" / "stage1_human.jsonl"
README_EXAMPLE = "The red circle is blurry, the blue square is sharp."


def segment_texts(text: str) -> list[str]:
    return [
        text[seg.start : seg.end].strip(" .")
        for s, e in clauses.sentences(text)
        for seg in clauses.segments(text, s, e)
    ]


def pairs(text: str) -> list[tuple[str, str]]:
    return [
        (text[p.phrase[0] : p.phrase[1]], text[p.quality[0] : p.quality[1]]) for p in clauses.rule_pairs(text)
    ]


def triples(result: Any) -> list[tuple[str, str, str]]:
    return [(t.phrase, t.quality, t.effect) for t in result.tags]


# ----------------------------------------------------------------------------------- clause splitting


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (README_EXAMPLE, ["The red circle is blurry", "the blue square is sharp"]),
        ("The face is in focus while the hair is soft.", ["The face is in focus", "the hair is soft"]),
        ("The face is sharp but the hands are blurry.", ["The face is sharp", "the hands are blurry"]),
        ("The bird is crisp, whereas the branch is soft.", ["The bird is crisp", "the branch is soft"]),
        ("The keys are sharp; the screen is washed out.", ["The keys are sharp", "the screen is washed out"]),
        ("Sunset - the sun is blown out.", ["Sunset", "the sun is blown out"]),
        (
            "The face is sharp and the background is blurry.",
            ["The face is sharp", "the background is blurry"],
        ),
        # "and" between qualities or nouns does not start a clause of its own
        ("The face is sharp and well exposed.", ["The face is sharp and well exposed"]),
        ("The fireworks are nice and bright.", ["The fireworks are nice and bright"]),
        ("The statue is crisp, which is nice.", ["The statue is crisp", "is nice"]),
        ("A close-up of a t-shirt.", ["A close-up of a t-shirt"]),
        ("", []),
    ],
)
def test_segments(text: str, expected: list[str]) -> None:
    assert segment_texts(text) == expected


# ----------------------------------------------------------------------------------- the clause rules


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (README_EXAMPLE, [("red circle", "blurry"), ("blue square", "sharp")]),
        (
            "Her eyes are in focus, while her hair looks slightly soft.",
            [("eyes", "in focus"), ("hair", "slightly soft")],
        ),
        (
            "The mountains are crisp, the sky is overexposed and the lake in front is a little dark.",
            [("mountains", "crisp"), ("sky", "overexposed"), ("lake", "a little dark")],
        ),
        (
            "The cup, the spoon and the saucer are all sharp.",
            [("cup", "all sharp"), ("spoon", "all sharp"), ("saucer", "all sharp")],
        ),  # fmt: skip
        ("The cat's fur is not blurry at all.", [("cat's fur", "not blurry")]),
        ("There is no noise on its face.", [("face", "no noise")]),
        ("No noise in the shadows.", [("shadows", "No noise")]),
        ("Her shoes are not very sharp.", [("shoes", "not very sharp")]),
        (
            "The stairs look kind of dark and the railing is a tad soft.",
            [("stairs", "kind of dark"), ("railing", "a tad soft")],
        ),  # fmt: skip
        ("The bride's dress is somewhat overexposed.", [("bride's dress", "somewhat overexposed")]),
        (
            "The statue is crisp against the sky, which is a bit noisy.",
            [("statue", "crisp"), ("sky", "a bit noisy")],
        ),  # fmt: skip
        ("The black hexagon in the top right, which looks fuzzy.", [("black hexagon", "fuzzy")]),
        ("The moon is a white blob, overexposed.", [("moon", "overexposed")]),
        (
            "Photo is blurry overall, especially the car on the left.",
            [("Photo", "blurry"), ("car", "blurry")],
        ),  # a place-only tail is left off  # fmt: skip
        ("Dog: sharp. Background: noisy.", [("Dog", "sharp"), ("Background", "noisy")]),
        ("the backround is realy bluury", [("backround", "realy bluury")]),
        ("faces r sharp, bg is noisey", [("faces", "sharp"), ("bg", "noisey")]),
        (
            "The pedestrians crossing the road are motion blurred.",
            [("pedestrians crossing the road", "motion blurred")],
        ),  # fmt: skip
        ("There is a blurry car in the back.", [("car", "blurry")]),
        ("There's a lot of grain in the dark areas.", [("dark areas", "a lot of grain")]),
        ("The image is noisy.", [("image", "noisy")]),  # whole image: returned, the caller drops it
        ("The sky is blue and the grass is green.", []),
        ("The soup looks delicious, but the spoon is out of focus.", [("spoon", "out of focus")]),
        ("Burger close-up. The fries are blurry, no big deal.", [("fries", "blurry")]),
        ("The car's headlights create strong flare, unfortunately.", [("car's headlights", "strong flare")]),
    ],
)
def test_rule_pairs(text: str, expected: list[tuple[str, str]]) -> None:
    assert pairs(text) == expected


@pytest.mark.parametrize(
    ("quality", "effect"),
    [("not blurry", "positive"), ("no noise", "positive"), ("Not much noise", "positive"),
     ("not clipped", "positive"), ("isn't sharp", "negative"), ("not very sharp", "negative"),
     ("slightly blurry", "negative"), ("a bit too dark", "negative"), ("tack sharp", "positive"),
     ("bluury", "negative"), ("noisey", "negative"), ("sharp but noisy", "negative"), ("blue", None)],
)  # fmt: skip
def test_polarity_reads_negation_hedges_and_typos(quality: str, effect: str | None) -> None:
    assert lexicon.polarity(quality) == effect


@pytest.mark.parametrize(
    ("word", "meant"),
    [("bluury", "blurry"), ("noisey", "noisy"), ("overexposd", "overexposed"), ("focussed", "focused"),
     ("blocks", None), ("flame", None), ("shadow", None), ("clearly", None), ("detail", None),
     ("blurs", None), ("fades", None), ("blurry", None)],
)  # fmt: skip
def test_typos_are_one_edit_from_a_long_lexicon_word(word: str, meant: str | None) -> None:
    assert lexicon.typo_of(word) == meant


def test_quality_phrases_keep_hedges_and_negation() -> None:
    text = "The cat is not blurry at all, a bit too dark and slightly soft."
    assert [p for _s, _e, p in lexicon.quality_phrases(text, runs=False)] == [
        "not blurry",
        "a bit too dark",
        "slightly soft",
    ]


# ----------------------------------------------------------------------------------- with a model


class ScriptedLLM:
    """A stand-in for the 135M model's habits: it names the first candidate object of each request only,
    with the quality word it is offered first (or answers ``reply`` verbatim)."""

    def __init__(self, reply: Any = None) -> None:
        self.reply = reply
        self.asked: list[str] = []

    def chat_json(self, messages: Sequence[dict[str, Any]], schema: dict[str, Any], **_: Any) -> Any:
        self.asked.append(messages[-1]["content"].split("\n")[0].removeprefix("Description: "))
        if self.reply is not None:
            return self.reply
        item = schema["properties"]["tags"]["items"]["properties"]
        quality = item["quality"].get("enum", ["blurry"])[0]
        return {"tags": [{"phrase": item["phrase"]["enum"][0], "quality": quality, "effect": "negative"}]}


def test_readme_example_yields_both_tags() -> None:
    llm = ScriptedLLM()
    result = extract_tags(llm, README_EXAMPLE)
    assert triples(result) == [("red circle", "blurry", "negative"), ("blue square", "sharp", "positive")]
    assert llm.asked == ["The red circle is blurry", "the blue square is sharp."]  # one request per clause
    assert triples(rule_tags(README_EXAMPLE)) == triples(result)


def test_what_the_model_leaves_out_is_added_from_the_rules_and_recorded() -> None:
    result = extract_tags(ScriptedLLM(reply={"tags": []}), README_EXAMPLE)
    assert [t.phrase for t in result.tags] == ["red circle", "blue square"]
    assert [(r.how, r.after) for r in result.repairs if r.field == "tag"] == [
        ("added_by_rules", "red circle"),
        ("added_by_rules", "blue square"),
    ]


def test_a_malformed_answer_is_recorded_and_the_rules_still_tag() -> None:
    result = extract_tags(ScriptedLLM(reply={"tags": "red circle"}), README_EXAMPLE)
    assert [d.reason for d in result.drops] == ["malformed"]
    assert [t.phrase for t in result.tags] == ["red circle", "blue square"]


def test_positive_tags_are_kept_and_whole_image_ones_dropped_with_the_reason() -> None:
    text = "Overall the photo is pretty good. The mug is nicely in focus, the steam above it is faint."
    result = extract_tags(ScriptedLLM(reply={"tags": []}), text)
    assert triples(result) == [("mug", "nicely in focus", "positive"), ("steam", "faint", "negative")]
    assert ("photo", "whole_image") in [(d.phrase, d.reason) for d in result.drops]


def test_a_negated_quality_keeps_its_negation_even_when_the_model_drops_it() -> None:
    text = "The cat's fur is not blurry."
    result = extract_tags(ScriptedLLM(reply={"tags": [{"phrase": "cat's fur", "quality": "blurry",
                                                        "effect": "negative"}]}), text)  # fmt: skip
    assert triples(result) == [("cat's fur", "not blurry", "positive")]


def test_requests_are_per_clause_and_skip_whole_image_clauses() -> None:
    text = "The image is good. The red circle is blurry, while the blue square is sharp! Nothing else."
    assert request_units(text) == ["The red circle is blurry", "the blue square is sharp!"]
    assert len(stage1_requests(text, mode="sentences")) == 2
    lists = "The cup, the spoon and the saucer are all sharp."
    assert request_units(lists) == [lists]  # overlapping clauses are one request


# ----------------------------------------------------------------------------------- nothing silently lost


def fixture_descriptions() -> list[str]:
    return [json.loads(line)["description"] for line in FIXTURE.read_text(encoding="utf-8").splitlines()]


def assert_every_pair_is_accounted_for(text: str, result: Any) -> None:
    for pair in clauses.rule_pairs(text):
        phrase = text[pair.phrase[0] : pair.phrase[1]]
        tagged = any(t.phrase in phrase or phrase in t.phrase for t in result.tags)
        dropped = any(
            d.phrase and (d.phrase in phrase or phrase in d.phrase) and d.reason for d in result.drops
        )
        assert tagged or dropped, f"{phrase!r} in {text!r} is neither tagged nor dropped"


@pytest.mark.parametrize("text", fixture_descriptions())
def test_every_object_a_clause_rates_is_tagged_or_dropped(text: str) -> None:
    assert_every_pair_is_accounted_for(text, extract_tags(ScriptedLLM(), text))
    for tag in rule_tags(text).tags:
        assert tag.phrase in text and tag.quality in text and tag.effect in ("positive", "negative")


_WORDS = st.sampled_from(
    ["the", "a", "red", "circle", "sky", "face", "is", "are", "blurry", "not", "sharp", "slightly", "and",
     "while", "but", "which", ",", ";", "-", "no", "noise", "in", "on", "image", "dark", "too", "."]
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.lists(_WORDS, max_size=25).map(" ".join))
def test_rules_never_invent_text_and_never_lose_a_pair(text: str) -> None:
    result = rule_tags(text)
    for tag in result.tags:
        assert tag.phrase in text and tag.quality in text
    assert_every_pair_is_accounted_for(text, result)


# ----------------------------------------------------------------------------------- the human fixture


def load_bench() -> Any:
    spec = importlib.util.spec_from_file_location("stage1_bench", ROOT / "bench" / "stage1_quality.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("stage1_bench", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("split", ["all", "blind"])
def test_rules_only_reach_the_target_on_the_human_fixture(split: str) -> None:
    bench = load_bench()
    items = [i for i in bench.fixture_items(FIXTURE) if split in ("all", i.split)]
    assert len(items) >= (50 if split == "all" else 20)
    scores = [bench.score(item, bench.rules_only(item.description)) for item in items]
    row = bench.table_row(split, scores, 0.0, 0)
    assert row["precision"] >= 0.8 and row["recall"] >= 0.8, row
    assert row["effect_acc"] >= 0.95, row


def test_bench_matching_rules() -> None:
    bench = load_bench()
    text = "The man wearing a white t-shirt is blurry, his hands too."
    item = bench.Item(text, [("man wearing a white t-shirt", "blurry", "negative")])
    assert bench.score(item, [("man", "blurry", "negative")])["matched"] == 1  # same object, bare form
    assert bench.score(item, [("white t-shirt", "blurry", "negative")])["matched"] == 0
    assert bench.score(item, [("The man", "slightly blurry", "negative")])["quality_ok"] == 1
    assert bench.score(item, [("a dog", "blurry", "negative")]) == {
        "pred": 1, "true": 1, "matched": 0, "quality_ok": 0, "effect_ok": 0
    }  # fmt: skip


def test_a_modifier_the_model_picks_is_dropped_and_the_object_kept() -> None:
    text = "The man wearing a white t-shirt is blurry."
    reply = {"tags": [{"phrase": "white t-shirt", "quality": "blurry", "effect": "negative"}]}
    result = extract_tags(ScriptedLLM(reply=reply), text)
    assert triples(result) == [("man wearing a white t-shirt", "blurry", "negative")]
    assert [(d.phrase, d.reason) for d in result.drops] == [("white t-shirt", "not_the_subject")]
