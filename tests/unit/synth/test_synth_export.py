"""The LLaVA export's Yes/No answer styles: 'plain' keeps the paper's answers, 'restate' says what the region
is like before the verdict without ever changing what Acc(Y) reads."""

from __future__ import annotations

import json

import pytest

from giqa.metrics.text import yes_no_correct, yes_no_word
from giqa.synth import generate_scene
from giqa.synth.export import restated_answer, to_samples
from giqa.synth.words import CLAIMS

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def records():
    return [generate_scene(11, i)[1] for i in range(40)]


def test_plain_keeps_every_answer(records):
    for record in records:
        answers = [s.answer for s in to_samples(record)[1:]]
        assert answers == [q.answer for q in record.vqa]


def test_restated_yes_no_scores_as_the_original(records):
    seen = 0
    for record in records:
        for qa in record.vqa:
            text = restated_answer(record, qa)
            if qa.qtype != "yes_no":
                assert text == qa.answer
                continue
            seen += 1
            assert text.endswith(" " + qa.answer)
            # the restatement itself holds no yes/no word: Acc(Y) reads the verdict
            assert yes_no_word(text[: -len(qa.answer)]) is None
            assert yes_no_correct(text, qa.answer)
    assert seen > 40


def test_restated_object_answer_names_its_state(records):
    objects_seen = 0
    for record in records:
        by_id = {o.id: o for o in record.objects}
        for qa in record.vqa:
            if qa.qtype != "yes_no" or qa.question.startswith(("Is any ", "Do any ")):
                continue
            obj = by_id[qa.about[0]]
            state = " and ".join(CLAIMS[d.kind] for d in obj.degradations) or "clean"
            assert restated_answer(record, qa) == f"The {obj.phrase} is {state}. {qa.answer}"
            objects_seen += 1
    assert objects_seen > 20


def test_restated_any_question_names_the_holders_or_nothing(records):
    kinds = 0
    for record in records:
        by_id = {o.id: o for o in record.objects}
        for qa in record.vqa:
            if qa.qtype != "yes_no" or not qa.question.startswith(("Is any ", "Do any ")):
                continue
            text = restated_answer(record, qa)
            claim = text.split(" is " if " is " in text else " are ")[-1].rsplit(".", 2)[0]
            assert qa.question.endswith(f" {claim}?")
            if qa.about:
                assert all(by_id[i].phrase in text for i in qa.about)
            else:
                assert text.startswith("Nothing is ")
            kinds += 1
    assert kinds > 0


def test_export_cli_style_option(tmp_path):
    from typer.testing import CliRunner

    from giqa.cli import app
    from giqa.synth import write_scenes

    write_scenes(3, 2, tmp_path / "s", progress=False)
    runner = CliRunner()
    ok = runner.invoke(
        app,
        [
            "synth",
            "export",
            str(tmp_path / "s"),
            "--out",
            str(tmp_path / "r.json"),
            "--yes-no-style",
            "restate",
        ],
    )
    assert ok.exit_code == 0, ok.output
    rows = json.loads((tmp_path / "r.json").read_text())
    yes_no = [r for r in rows if r.get("qtype") == "yes_no"]
    assert yes_no and all(r["conversations"][1]["value"].endswith(("Yes.", "No.")) for r in yes_no)
    assert any(r["conversations"][1]["value"] not in ("Yes.", "No.") for r in yes_no)
    bad = runner.invoke(
        app,
        ["synth", "export", str(tmp_path / "s"), "--out", str(tmp_path / "x.json"), "--yes-no-style", "loud"],
    )
    assert bad.exit_code == 2
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize(
    ("kinds", "expected"),
    [(["des"], {"des"}), (["yes_no"], {"yes_no"}), (["des", "what", "how"], {"des", "what", "how"})],
)
def test_llava_rows_keep_only_the_named_kinds(records, kinds, expected):
    from giqa.synth.export import llava_rows

    rows = llava_rows(records[:10], kinds=kinds)
    assert {r["task"] if r["task"] == "des" else r["qtype"] for r in rows} == expected
    if kinds == ["des"]:
        assert len(rows) == 10


@pytest.mark.parametrize("kinds", [[], ["des", "poem"]])
def test_llava_rows_refuse_unknown_or_no_kinds(records, kinds):
    from giqa.synth.export import llava_rows

    with pytest.raises(ValueError, match="sample kinds"):
        llava_rows(records[:2], kinds=kinds)


@pytest.mark.parametrize("cap", [0, 1, 3])
def test_vqa_per_scene_caps_vqa_and_keeps_every_des(records, cap):
    from giqa.synth.export import llava_rows

    full = llava_rows(records[:12])
    capped = llava_rows(records[:12], vqa_per_scene=cap)
    scene = lambda r: r["image"]  # noqa: E731 - one scene per image
    for image in {scene(r) for r in full}:
        vqa_full = [r for r in full if scene(r) == image and r["task"] != "des"]
        vqa_capped = [r for r in capped if scene(r) == image and r["task"] != "des"]
        assert len(vqa_capped) == min(cap, len(vqa_full))
        assert all(r in vqa_full for r in vqa_capped)  # chosen among the scene's own items, unchanged
        assert sum(1 for r in capped if scene(r) == image and r["task"] == "des") == 1
    if cap >= 3:  # spread over the items, not the first few: more than one question kind survives
        assert len({r["qtype"] for r in capped if r["task"] != "des"}) > 1


def test_vqa_per_scene_refuses_a_negative_cap(records):
    from giqa.synth.export import llava_rows

    with pytest.raises(ValueError, match="vqa_per_scene"):
        llava_rows(records[:2], vqa_per_scene=-1)
