"""Descriptions, tags and the GIQA-DES answer: verbatim tags, exact grounding, real variety."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from giqa.grid import max_error
from giqa.grounded_text import parse_text, strip_coordinates
from giqa.questions import des_questions
from giqa.synth import SynthConfig, generate_scene
from giqa.synth.words import NEGATIVE_WORDS, POSITIVE_WORDS

pytestmark = pytest.mark.unit

NEG = {w for words in NEGATIVE_WORDS.values() for w in words}


def _within_grid(a: list[float], b: list[float], n: int = 20, m: int = 20) -> bool:
    ex, ey = max_error(n, m)
    return all(
        abs(p - q) <= (ex if i % 2 == 0 else ey) + 1e-9 for i, (p, q) in enumerate(zip(a, b, strict=True))
    )


def _word_span(text: str, phrase: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", text) is not None


def test_des_answer_strips_back_to_the_description(sample: list) -> None:
    for s in sample:
        assert strip_coordinates(s.record.des_answer) == s.record.description


def test_des_answer_parses_and_its_boxes_match_the_objects(sample: list) -> None:
    for s in sample:
        r = s.record
        result = parse_text(r.des_answer)
        assert not result.problems, (r.id, result.problems)
        key = [o for o in r.objects if o.mentioned]
        # one mention per key object, in order of first mention, each with exactly that object's box
        assert [m.phrase for m in result.mentions] == [t.phrase for t in r.tags]
        assert len(result.mentions) == len(key)
        for mention in result.mentions:
            assert len(mention.boxes) == 1
            owners = [o for o in key if o.phrase == mention.phrase]
            assert len(owners) == 1, "a grounded phrase names exactly one key object"
            assert _within_grid(mention.boxes[0].as_list(), owners[0].box), (r.id, mention)


def test_hard_case_answer_grounds_only_the_degraded_twin(sample: list) -> None:
    hard = [s.record for s in sample if s.record.hard_case]
    assert hard
    for r in hard:
        degraded = next(o for o in r.objects if o.role == "twin_degraded")
        clean = next(o for o in r.objects if o.role == "twin_clean")
        mentions = [m for m in parse_text(r.des_answer).mentions if m.phrase == degraded.phrase]
        assert len(mentions) == 1 and len(mentions[0].boxes) == 1
        box = mentions[0].boxes[0].as_list()
        assert _within_grid(box, degraded.box) and not _within_grid(box, clean.box)
        # the description itself stays ambiguous: no size word and no position words on the twin's phrase
        assert degraded.phrase == f"{degraded.colour} {degraded.category}"
        assert r.description.count(degraded.phrase) >= 1
        assert not re.search(re.escape(degraded.phrase) + r" (in|on|at|near) the", r.description)


def test_tags_are_verbatim_spans_with_the_right_effect(sample: list) -> None:
    for s in sample:
        r = s.record
        for tag in r.tags:
            assert _word_span(r.description, tag.phrase), (r.id, tag)
            assert tag.quality in r.description, (r.id, tag)
            obj = next(o for o in r.objects if o.phrase == tag.phrase and o.mentioned)
            assert obj.quality == tag.quality
            if obj.degradations:
                assert tag.effect == "negative"
                assert all(part in NEG for part in tag.quality.split(" and "))
            else:
                assert tag.effect == "positive"
                assert all(part in POSITIVE_WORDS for part in tag.quality.split(" and "))
        # every degraded object is a key object; unmentioned ones carry no quality or effect
        for o in r.objects:
            if o.degradations:
                assert o.mentioned
            if not o.mentioned:
                assert o.quality is None and o.effect is None


def test_positive_words_never_contradict_the_pixels(sample: list) -> None:
    for s in sample:
        r = s.record
        global_kinds = {d.kind for d in r.global_degradations}
        for o in r.objects:
            if o.effect == "positive":
                for word in o.quality.split(" and "):
                    assert not POSITIVE_WORDS[word] & global_kinds, (r.id, word, global_kinds)


def test_some_clean_objects_praised_some_unmentioned(sample: list) -> None:
    clean = [o for s in sample for o in s.record.objects if not o.degradations]
    praised = sum(o.mentioned for o in clean)
    assert 0.2 * len(clean) < praised < 0.9 * len(clean)


def test_verdict_sentence_present(sample: list) -> None:
    for s in sample:
        r = s.record
        assert re.search(rf"\b{r.verdict}\b", r.description), r.description
    verdicts = Counter(s.record.verdict for s in sample)
    assert set(verdicts) == {"poor", "fair", "good"}


def _pattern(description: str, phrases: list[str], qualities: list[str]) -> str:
    """The sentence skeletons of a description: object phrases, quality words, numbers and places blanked."""
    text = description
    for phrase in sorted(phrases, key=len, reverse=True):
        text = text.replace(phrase, "<obj>")
    for quality in sorted(qualities, key=len, reverse=True):
        text = text.replace(quality, "<q>")
    text = re.sub(r"\b(poor|fair|good)\b", "<v>", text)
    return text


def test_descriptions_are_varied(sample: list) -> None:
    sentences: Counter[str] = Counter()
    openings: Counter[str] = Counter()
    for s in sample:
        r = s.record
        skeleton = _pattern(r.description, [o.phrase for o in r.objects], [t.quality for t in r.tags])
        parts = [p for p in re.split(r"(?<=\.) ", skeleton) if p]
        sentences.update(parts)
        openings[parts[0]] += 1
    assert len({s.record.description for s in sample}) == len(sample)
    assert len(sentences) >= 40, "expected many distinct sentence patterns over 200 scenes"
    assert len(openings) >= 10, "descriptions should not all start the same way"
    assert sentences.most_common(1)[0][1] < 0.5 * len(sample)
    # synonyms: several different negative words for the same degradation kind
    words_per_kind: dict[str, set[str]] = {}
    for s in sample:
        for o in s.record.objects:
            if len(o.degradations) == 1:
                words_per_kind.setdefault(o.degradations[0].kind, set()).add(o.quality or "")
    assert sum(len(w) >= 2 for w in words_per_kind.values()) >= 5


def test_des_question_is_from_the_pool(sample: list) -> None:
    pool = set(des_questions("grid"))
    drawn = {s.record.des_question for s in sample}
    assert drawn <= pool and len(drawn) >= 10


def test_norm_form_answers_parse_too() -> None:
    config = SynthConfig(box_form="norm")
    for index in range(20):
        _, r = generate_scene(4, index, config)
        assert strip_coordinates(r.des_answer) == r.description
        mentions = parse_text(r.des_answer).mentions
        assert all(m.form == "norm" for m in mentions)
        for m in mentions:
            obj = next(o for o in r.objects if o.phrase == m.phrase)
            assert all(abs(p - q) <= 0.005 + 1e-9 for p, q in zip(m.boxes[0].as_list(), obj.box, strict=True))
        assert set(des_questions("norm")) >= {r.des_question}
