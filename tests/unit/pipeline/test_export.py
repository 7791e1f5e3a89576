"""Balancing, the split by image, streaming/atomic writers, reading the audit, and the statistics."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from giqa.files import atomic_writer
from giqa.pipeline.export import (
    JsonListWriter,
    balance_vqa,
    iter_audit,
    llava_dict,
    split_of,
    vqa_class,
)
from giqa.pipeline.stats import DatasetStats, RunReport
from giqa.schemas import Sample, to_llava

pytestmark = pytest.mark.unit


def entries(yes: int, no: int, open_: int) -> list[tuple[str, str]]:
    return (
        [(f"y{i}", "yes") for i in range(yes)]
        + [(f"n{i}", "no") for i in range(no)]
        + [(f"o{i}", "open") for i in range(open_)]
    )


def classes(kept: set[str]) -> Counter[str]:
    return Counter({"y": "yes", "n": "no", "o": "open"}[k[0]] for k in kept)


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ((0, 0, 0), (0, 0, 0)),
        ((5, 0, 10), (0, 0, 0)),  # no "No": nothing can be balanced
        ((5, 5, 1), (0, 0, 0)),  # one open item cannot match two yes/no
        ((5, 3, 100), (3, 3, 6)),
        ((10, 10, 7), (3, 3, 6)),
        ((4, 9, 8), (4, 4, 8)),
    ],
)
def test_balance_counts(counts: tuple[int, int, int], expected: tuple[int, int, int]) -> None:
    kept = classes(balance_vqa(entries(*counts), seed=1))
    assert (kept["yes"], kept["no"], kept["open"]) == expected


def test_balance_honours_a_total_limit() -> None:
    kept = classes(balance_vqa(entries(50, 50, 100), limit=20))
    assert (kept["yes"], kept["no"], kept["open"]) == (5, 5, 10)


def test_balance_refuses_unknown_classes() -> None:
    with pytest.raises(ValueError, match="unknown VQA class"):
        balance_vqa([("a", "maybe")])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 30), st.integers(0, 30), st.integers(0, 60), st.integers(0, 5), st.randoms())
def test_balance_is_order_independent_and_balanced(yes: int, no: int, open_: int, seed: int, rnd) -> None:
    items = entries(yes, no, open_)
    kept = balance_vqa(items, seed=seed)
    shuffled = list(items)
    rnd.shuffle(shuffled)
    assert balance_vqa(shuffled, seed=seed) == kept
    counted = classes(kept)
    assert counted["yes"] == counted["no"] and counted["open"] == 2 * counted["yes"]


@pytest.mark.parametrize(
    ("qtype", "answer", "cls"),
    [("yes_no", "Yes.", "yes"), ("yes_no", "No.", "no"), ("what", "Blur.", "open"), ("why", "Yes.", "open")],
)
def test_vqa_class(qtype: str, answer: str, cls: str) -> None:
    assert vqa_class(qtype, answer) == cls


def test_split_is_by_image_stable_and_near_the_fraction() -> None:
    images = [f"img/{i}.png" for i in range(4000)]
    splits = [split_of(i, seed=3, val_fraction=0.1) for i in images]
    assert splits == [split_of(i, seed=3, val_fraction=0.1) for i in images]
    assert 0.08 < splits.count("val") / len(images) < 0.12
    assert {split_of(i, val_fraction=0.0) for i in images} == {"train"}
    with pytest.raises(ValueError):
        split_of("x", val_fraction=1.0)


def test_json_list_writer_streams_valid_json(tmp_path: Path) -> None:
    for count in (0, 1, 3):
        path = tmp_path / f"list{count}.json"
        with atomic_writer(path) as handle:
            writer = JsonListWriter(handle)
            for i in range(count):
                writer.add({"i": i, "text": "é"})
            writer.close()
        assert json.loads(path.read_text(encoding="utf-8")) == [{"i": i, "text": "é"} for i in range(count)]


def test_atomic_writer_leaves_nothing_on_error(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_writer(target) as handle:
        handle.write("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_iter_audit_keeps_the_last_line_per_key_and_skips_a_torn_tail(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    lines = [
        {"key": "a", "status": "failed"},
        {"key": "b", "status": "ok"},
        {"key": "a", "status": "ok"},
        {"key": 'c"q', "status": "ok"},  # an escaped quote defeats the fast path: parsed fully
    ]
    audit.write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"key": "d", "stat')
    got = [(r["key"], r["status"]) for r in iter_audit(audit)]
    assert got == [("b", "ok"), ("a", "ok"), ('c"q', "ok")]


def test_dataset_stats_table_and_histogram(tmp_path: Path) -> None:
    stats = DatasetStats()
    stats.add_sample("train", "a.png", "des", None, "grounding", "text")
    stats.add_sample("train", "a.png", "vqa", "yes_no", "referring", "Yes.")
    stats.add_sample("val", "b.png", "vqa", "yes_no", "referring", "No.")
    stats.add_sample("val", "b.png", "vqa", "what", "grounding", "The cat.")
    stats.add_areas([0.01, 0.5, 1.0], [0.3])
    rows = {r["split"]: r for r in stats.table()}
    assert (rows["all"]["images"], rows["all"]["total"], rows["all"]["des"]) == (2, 4, 1)
    assert (rows["all"]["vqa_y"], rows["all"]["vqa_w"], rows["all"]["yes"], rows["all"]["no"]) == (2, 1, 1, 1)
    assert stats.raw_hist.sum() == 3 and stats.refined_hist.sum() == 1
    assert "| all | 2 | 4 | 1 | 2 | 1 |" in stats.markdown()
    png = tmp_path / "hist.png"
    stats.plot_histogram(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_report_counts_drops_and_failures() -> None:
    report = RunReport()
    report.add({"key": "x", "status": "failed", "failure": {"stage": "input", "reason": "empty description"},
                "timings": {"load": 0.1}})  # fmt: skip
    report.add({
        "key": "y", "status": "ok", "timings": {"stage1": 1.5},
        "stage1": {"tags": [{}], "drops": [{"reason": "whole_image"}],
                   "repairs": [{"how": "fuzzy_span(0.9)"}]},
        "refined": [{"raw": [{}, {}], "merged": [[0, 0, 1, 1]], "dropped_reason": None}],
        "des": {"objects": [{}]},
        "vqa": {"items": [{"source": "llm", "corrected": True}, {"source": "template"}], "drops": []},
    })  # fmt: skip
    data = report.to_dict()
    assert data["counts"]["failed"] == 1 and data["counts"]["ok"] == 1
    assert data["drops"]["stage1"] == {"whole_image": 1} and data["repairs"] == {"fuzzy_span": 1}
    assert data["counts"]["stage2_boxes"] == 2 and data["counts"]["vqa_answers_corrected"] == 1
    assert data["failures"] == {"input: empty description": 1}
    assert data["seconds_per_stage"] == {"load": 0.1, "stage1": 1.5}
    assert "Failures:" in report.markdown()


@pytest.mark.parametrize(
    "sample",
    [
        Sample(
            id="a-des",
            image="i.png",
            task="des",
            mode="grounding",
            question="Q?",
            answer="The [cat](<1, 22>).",
        ),
        Sample(id="a-des", image="i.png", task="des", question="Q?", answer="Plain."),
        Sample(
            id="a-v",
            image="i.png",
            task="vqa",
            qtype="yes_no",
            mode="referring",
            question="Is it?",
            answer="No.",
        ),
    ],
)
def test_llava_dict_equals_the_validated_conversion(sample: Sample) -> None:
    assert llava_dict(sample.model_dump(mode="json")) == to_llava(sample).dump()
