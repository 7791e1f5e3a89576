"""The shipped demo VLM (``shared/giqa/assets/vlm``) loads with nothing configured, answers in the grounded
format, and still grounds and judges on a GIQA-Synth-Bench it never saw (seed 3; training used world seed
100 and the reported bench is seed 0). The floors sit below what the shipped checkpoint measured here
(its MODEL_CARD.md), so a regression in the model, its processor or the decoding path fails this test."""

from __future__ import annotations

import json

import pytest

from giqa.grounded_text import parse_text

pytestmark = pytest.mark.models

N_DES = 30  # the first 30 DES items and every Yes/No item of the bench
# measured with the shipped checkpoint on these 120 items: mIoU 0.328, Tag-Recall 0.089, BLEU@4 16.4, Acc(Y)
# 0.822 (always "No" scores about 0.6); the previous demo VLM (mIoU 0.189 here, Tag-Recall 0.035 on seed 0)
# fails the first two floors
FLOOR_MIOU = 0.25
FLOOR_TAG_RECALL = 0.05
FLOOR_BLEU4 = 10.0
FLOOR_ACC_Y = 0.72


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory):
    from giqa.backends.factory import make_vlm
    from giqa.evaluation.run import predict_and_score
    from giqa.synth.bench import write_bench

    root = tmp_path_factory.mktemp("shipped")
    bench = write_bench(3, root / "bench", progress=False)
    rows = [json.loads(line) for line in bench.read_text().splitlines()]
    keep = [r for r in rows if r["task"] == "des"][:N_DES] + [r for r in rows if r.get("qtype") == "yes_no"]
    small = bench.with_name("small.jsonl")
    small.write_text("".join(json.dumps(r) + "\n" for r in keep))
    return predict_and_score(make_vlm(), small, root / "predictions.jsonl", max_new_tokens=160)


def test_the_shipped_vlm_is_the_default_and_small() -> None:
    from giqa.backends.factory import SHIPPED_VLM

    assert (SHIPPED_VLM / "config.json").is_file() and (SHIPPED_VLM / "MODEL_CARD.md").is_file()
    size = sum(p.stat().st_size for p in SHIPPED_VLM.rglob("*") if p.is_file())
    assert size < 20 * 2**20  # the budget is 30 MB for both shipped models


def test_answers_are_grounded_text_with_readable_boxes(scored) -> None:
    des = [it for it in scored.bench if it.task == "des"]
    answers = [scored.predictions.responses[it.id] for it in des]
    parsed = [parse_text(a) for a in answers]
    unreadable = [a for a, p in zip(answers, parsed, strict=True) if p.problems or not p.mentions]
    assert not unreadable
    # answers differ from image to image: the model looks at the picture, it does not recite one text
    assert len(set(answers)) > 0.8 * len(answers)


def test_grounding_and_yes_no_floors(scored) -> None:
    report = scored.result.report
    assert report["des"]["miou"] >= FLOOR_MIOU
    assert report["des"]["tag_recall"] >= FLOOR_TAG_RECALL
    assert report["des"]["bleu4"] >= FLOOR_BLEU4
    assert report["vqa"]["acc_y"] >= FLOOR_ACC_Y
