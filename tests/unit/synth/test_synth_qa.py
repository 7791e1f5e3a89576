"""GIQA-VQA items: every qtype in both modes, boxes where the mode says, answers true of the scene."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from giqa.grid import max_error
from giqa.grounded_text import parse_text, strip_coordinates
from giqa.synth import qa_pool

pytestmark = pytest.mark.unit

# What each yes/no claim means, written here independently of the generator's tables.
CLAIM_KINDS = {
    "blurry": {"blur"},
    "motion-blurred": {"motion_blur"},
    "noisy": {"noise"},
    "underexposed": {"low_light"},
    "overexposed": {"overexposure"},
    "blocky": {"jpeg"},
    "low in contrast": {"low_contrast"},
}
POSITIVE_CLAIMS = {
    "sharp": {"blur", "motion_blur", "jpeg"},
    "well-exposed": {"low_light", "overexposure"},
    "clear": {"blur", "motion_blur", "jpeg", "noise", "low_contrast", "low_light", "overexposure"},
}
PATTERNS = [
    re.compile(
        rf"^Is the (?P<obj>.+) (?P<claim>{c})\?$|^Does the (?P<obj2>.+) look (?P<claim2>{c})\?$"
        rf"|^Would you say the (?P<obj3>.+) is (?P<claim3>{c})\?$"
    )
    for c in sorted(map(re.escape, [*CLAIM_KINDS, *POSITIVE_CLAIMS]), key=len, reverse=True)
]


def _claim(question: str) -> tuple[str, str] | None:
    """(object text, claim) of a yes/no question, the claim being one of the known ones."""
    for pattern in PATTERNS:
        m = pattern.match(question)
        if m:
            groups = [(m[o], m[c]) for o, c in (("obj", "claim"), ("obj2", "claim2"), ("obj3", "claim3"))]
            return next(g for g in groups if g[0])
    return None


def _close(a: list[float], b: list[float]) -> bool:
    ex, ey = max_error()
    return all(
        abs(p - q) <= (ex if i % 2 == 0 else ey) + 1e-9 for i, (p, q) in enumerate(zip(a, b, strict=True))
    )


def _object_by_box(record, box: list[float]):  # noqa: ANN001, ANN202
    hits = [o for o in record.objects if _close(box, o.box)]
    assert len(hits) == 1, (record.id, box)
    return hits[0]


def _all_items(sample: list) -> list:
    return [(s.record, q) for s in sample for q in s.record.vqa]


def test_every_qtype_in_both_modes(sample: list) -> None:
    kinds = Counter((q.qtype, q.mode) for _, q in _all_items(sample))
    for qtype in ("yes_no", "what", "why", "how"):
        for mode in ("referring", "grounding"):
            assert kinds[(qtype, mode)] >= 5, (qtype, mode, kinds)


def test_yes_no_balance_per_scene(sample: list) -> None:
    for s in sample:
        answers = Counter(q.answer for q in s.record.vqa if q.qtype == "yes_no")
        assert answers["Yes."] == answers["No."]
        assert set(answers) <= {"Yes.", "No."}
        others = sum(q.qtype != "yes_no" for q in s.record.vqa)
        assert others >= sum(answers.values()) or others == 0 or len(s.record.vqa) < 8
    total = Counter(q.qtype == "yes_no" for _, q in _all_items(sample))
    assert abs(total[True] - total[False]) < 0.2 * sum(total.values())


def test_referring_puts_the_box_in_the_question_grounding_in_the_answer(sample: list) -> None:
    for record, q in _all_items(sample):
        in_question = parse_text(q.question).mentions
        in_answer = parse_text(q.answer).mentions
        if q.mode == "referring":
            assert len(in_question) == 1 and not in_answer and q.objects == []
            _object_by_box(record, in_question[0].boxes[0].as_list())
        else:
            assert not in_question
            if q.qtype == "yes_no":
                assert q.objects == []
            else:
                assert in_answer, q
                assert [m.phrase for m in in_answer] == [o.phrase for o in q.objects]
                for mention, obj in zip(in_answer, q.objects, strict=True):
                    assert _close(mention.boxes[0].as_list(), obj.box.as_list())
                    owner = _object_by_box(record, obj.box.as_list())
                    assert owner.phrase == obj.phrase and owner.degradations


def test_yes_no_answers_are_correct_by_construction(sample: list) -> None:
    checked = Counter()
    for s in sample:
        r = s.record
        global_kinds = {d.kind for d in r.global_degradations}
        for q in qa_pool(r):
            if q.qtype != "yes_no":
                continue
            if q.question.startswith(("Is any", "Do any")):
                claim = q.question.rsplit(" ", 1)[-1].rstrip("?")
                claim = "low in contrast" if q.question.endswith("low in contrast?") else claim
                holders = [o for o in r.objects if CLAIM_KINDS[claim] & {d.kind for d in o.degradations}]
                assert (q.answer == "Yes.") == bool(holders), q
                checked["any"] += 1
                continue
            match = _claim(strip_coordinates(q.question))
            assert match, q.question
            obj_text, claim = match
            mentions = parse_text(q.question).mentions
            if mentions:
                obj = _object_by_box(r, mentions[0].boxes[0].as_list())
            else:
                owners = [o for o in r.objects if o.phrase == obj_text]
                assert len(owners) == 1, "a phrase-only question must name one object"
                obj = owners[0]
            kinds = {d.kind for d in obj.degradations}
            if claim in CLAIM_KINDS:
                expected = bool(kinds & CLAIM_KINDS[claim])
                if not expected:
                    assert not CLAIM_KINDS[claim] & global_kinds, "a doubtful claim must not be asked"
            else:
                expected = not kinds & POSITIVE_CLAIMS[claim]
                if expected:
                    assert not POSITIVE_CLAIMS[claim] & global_kinds
            assert q.answer == ("Yes." if expected else "No."), (r.id, q.question, kinds)
            checked[q.answer] += 1
    assert checked["Yes."] > 200 and checked["No."] > 200 and checked["any"] > 50


def test_open_answers_are_short_and_true(sample: list) -> None:
    nouns = {
        "blur": "blur",
        "motion_blur": "motion blur",
        "noise": "noise",
        "low_light": ("underexposure", "low light"),
        "overexposure": "overexposure",
        "jpeg": ("compression", "jpeg"),
        "low_contrast": "low contrast",
    }
    for s in sample:
        r = s.record
        for q in qa_pool(r):
            if q.qtype == "yes_no":
                continue
            assert q.answer.endswith(".") and len(strip_coordinates(q.answer).split()) <= 30
            if q.qtype == "what" and q.mode == "referring":
                obj = _object_by_box(r, parse_text(q.question).mentions[0].boxes[0].as_list())
                for d in obj.degradations:
                    expected = nouns[d.kind]
                    options = expected if isinstance(expected, tuple) else (expected,)
                    assert any(o in q.answer.lower() for o in options), (q.answer, d.kind)
            if q.qtype == "why" and q.mode == "grounding":
                assert q.question == f"Why is the image quality {r.verdict}?"
                assert q.answer.startswith("Because the [")
            if q.qtype == "how" and q.question.startswith("How is the sharpness"):
                obj = _object_by_box(r, parse_text(q.question).mentions[0].boxes[0].as_list())
                blurred = {d.kind for d in obj.degradations} & {"blur", "motion_blur"}
                assert q.answer == ("Low." if blurred else "High.")


def test_hard_case_questions_never_name_a_twin_by_phrase_alone(sample: list) -> None:
    for s in sample:
        r = s.record
        if not r.hard_case:
            continue
        twin_phrase = next(o.phrase for o in r.objects if o.role == "twin_degraded")
        for q in qa_pool(r):
            if q.mode == "grounding" and q.qtype == "yes_no":
                assert twin_phrase not in q.question
            for obj in q.objects:  # grounded answers box only degraded objects, never the clean twin
                owner = _object_by_box(r, obj.box.as_list())
                assert owner.role != "twin_clean"
