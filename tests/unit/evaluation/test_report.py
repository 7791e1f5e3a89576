"""The evaluator end to end on a hand-written bench: report keys, values, null rules, bad prediction files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from giqa.evaluation.io import BenchError, PredictionsError, read_bench, read_predictions
from giqa.evaluation.report import evaluate
from giqa.grid import encode_box, format_grid
from giqa.metrics.similarity import MiniLMSimilarity

from .conftest import BENCH, CANDLE_1, CANDLE_2, RED, SKY, ScriptedLLM, write_jsonl

pytestmark = pytest.mark.unit


def run(bench_file: Path, tmp_path: Path, rows: list, minilm: MiniLMSimilarity) -> tuple[dict, list[dict]]:
    items = read_bench(bench_file)
    preds = read_predictions(write_jsonl(tmp_path / "pred.jsonl", rows), [it.id for it in items])
    result = evaluate(items, preds, similarity=minilm, judge=None)
    return result.report, result.items


def test_report_has_exactly_the_design_keys(
    bench_file: Path, tmp_path: Path, minilm: MiniLMSimilarity
) -> None:
    report, _ = run(bench_file, tmp_path, [{"id": "d1", "response": ""}], minilm)
    assert set(report) == {"des", "vqa", "judge", "counts"}
    assert set(report["des"]) == {"miou", "tag_recall", "bleu4", "llm_score"}
    assert set(report["vqa"]) == {"miou", "tag_recall", "acc_y", "acc_w", "acc_total"}
    json.dumps(report)  # serializable as is


def test_ground_truth_as_predictions_scores_perfectly(
    bench_file: Path, tmp_path: Path, minilm: MiniLMSimilarity
) -> None:
    report, items = run(
        bench_file, tmp_path, [{"id": b["id"], "response": b["answer"]} for b in BENCH], minilm
    )
    assert report["des"]["miou"] == pytest.approx(1.0)
    assert report["des"]["tag_recall"] == pytest.approx(1.0)
    assert report["des"]["bleu4"] == pytest.approx(100.0)
    assert report["vqa"]["miou"] == pytest.approx(1.0)
    assert report["vqa"]["tag_recall"] == pytest.approx(1.0)
    assert report["vqa"]["acc_y"] == 1.0
    # no judge: LLM-Score, Acc(W) and therefore Acc(Total) cannot be computed
    assert report["des"]["llm_score"] is None and report["vqa"]["acc_w"] is None
    assert report["vqa"]["acc_total"] is None
    assert report["judge"]["enabled"] is False
    assert report["counts"]["missing_predictions"] == 0
    d2 = next(i for i in items if i["id"] == "d2")
    assert d2["gt_boxes"] == 2 and d2["pred_boxes"] == 2 and d2["tags_recalled"] == [True, True]


def test_empty_predictions_are_zero_or_na(bench_file: Path, tmp_path: Path, minilm: MiniLMSimilarity) -> None:
    report, items = run(bench_file, tmp_path, [{"id": b["id"], "response": ""} for b in BENCH], minilm)
    assert report["des"]["miou"] is None and report["des"]["tag_recall"] is None  # no box anywhere: N/A
    assert report["vqa"]["miou"] is None
    assert report["des"]["bleu4"] == 0.0
    assert report["vqa"]["acc_y"] == 0.0
    assert report["counts"]["empty_responses"] == len(BENCH)
    assert "no response" in report["counts"]["null_reasons"]["des.miou"]
    assert all(i["status"] == "empty" for i in items)


def test_grid_and_normalized_forms_score_the_same(
    bench_file: Path, tmp_path: Path, minilm: MiniLMSimilarity
) -> None:
    # The same boxes written in either form: the decoded grid box, and that box written as 4 numbers.
    from giqa.grid import decode_box

    def both(box: list[float]) -> tuple[str, str]:
        cells = encode_box(box)
        b = decode_box(*cells)
        return format_grid(*cells), f"<{b.x1}, {b.y1}, {b.x2}, {b.y2}>"

    (g_red, n_red), (g_sky, n_sky) = both(RED), both(SKY)
    grid = [{"id": "d1", "response": f"The [red circle]({g_red}) is blurry, the [sky]({g_sky}) is sharp."}]
    norm = [{"id": "d1", "response": f"The [red circle]({n_red}) is blurry, the [sky]({n_sky}) is sharp."}]
    r_grid, i_grid = run(bench_file, tmp_path, grid, minilm)
    r_norm, i_norm = run(bench_file, tmp_path, norm, minilm)
    assert r_grid["des"] == r_norm["des"]
    assert i_grid[0]["ious"] == i_norm[0]["ious"] and i_grid[0]["tags_recalled"] == [True, True]
    assert all(0.6 < v < 1.0 for v in i_grid[0]["ious"])  # the grid quantizes: close, not exact
    assert r_grid["des"]["miou"] == pytest.approx(sum(i_grid[0]["ious"]) / 4, abs=1e-4)  # d2 missing: 0, 0


def test_a_wrong_name_keeps_miou_but_loses_the_tag(
    bench_file: Path, tmp_path: Path, minilm: MiniLMSimilarity
) -> None:
    rows = [
        {
            "id": "d2",
            "response": "Dark. The [candles](<0.6, 0.5, 0.7, 0.9>) and the "
            "[blue ocean waves](<0.8, 0.5, 0.9, 0.9>) glow.",
        }
    ]
    report, items = run(bench_file, tmp_path, rows, minilm)
    d2 = next(i for i in items if i["id"] == "d2")
    assert d2["ious"] == [1.0, 1.0]
    assert d2["tags_recalled"].count(True) == 1
    # DES split: d1 (2 boxes) missing -> 0, 0; d2 -> 1, 1: mIoU 2/4; Tag-Recall 1/4
    assert report["des"]["miou"] == pytest.approx(0.5)
    assert report["des"]["tag_recall"] == pytest.approx(0.25)


def test_candles_with_several_boxes_in_one_mention(
    bench_file: Path, tmp_path: Path, minilm: MiniLMSimilarity
) -> None:
    c1, c2 = format_grid(*encode_box(CANDLE_1)), format_grid(*encode_box(CANDLE_2))
    rows = [{"id": "d2", "response": f"The [candles]({c1}, {c2}) are overexposed."}]
    _, items = run(bench_file, tmp_path, rows, minilm)
    d2 = next(i for i in items if i["id"] == "d2")
    assert d2["pred_boxes"] == 2 and d2["tags_recalled"] == [True, True]


def test_yes_no_details(bench_file: Path, tmp_path: Path, minilm: MiniLMSimilarity) -> None:
    rows = [
        {"id": "y1", "response": "Yes, but no more than the sky."},
        {"id": "y2", "response": "YES it is."},
    ]
    report, items = run(bench_file, tmp_path, rows, minilm)
    assert report["vqa"]["acc_y"] == 0.5
    y2 = next(i for i in items if i["id"] == "y2")
    assert y2["yes_no"] == {"expected": "no", "got": "yes", "correct": False}


def test_bad_prediction_file_is_counted_not_fatal(
    bench_file: Path, tmp_path: Path, minilm: MiniLMSimilarity
) -> None:
    rows = [
        {"id": "d1", "response": BENCH[0]["answer"]},
        {"id": "d1", "response": "a later duplicate, ignored"},
        "this is not json",
        '{"id": "y1"}',  # no response: not a prediction
        "[1, 2, 3]",
        {"id": "zzz", "response": "unknown id"},
        {"id": "y2", "response": "   "},
        {"id": "w1", "response": "The red circle."},
    ]
    report, items = run(bench_file, tmp_path, rows, minilm)
    c = report["counts"]
    assert c["prediction_lines"] == 8
    assert c["invalid_lines"] == 3 and c["invalid_line_numbers"] == [3, 4, 5]
    assert c["duplicate_ids"] == 1 and c["duplicate_id_list"] == ["d1"]
    assert c["unknown_ids"] == 1 and c["unknown_id_list"] == ["zzz"]
    assert c["empty_responses"] == 1 and c["empty_id_list"] == ["y2"]
    assert c["missing_id_list"] == ["d2", "y1", "w2"]
    assert c["predictions_used"] == 3  # d1, y2 (empty, scored as such), w1
    assert next(i for i in items if i["id"] == "d2")["status"] == "missing"
    # the first d1 line counts: d1 perfect (2 boxes), d2 missing (2 boxes) -> DES mIoU 0.5
    assert report["des"]["miou"] == pytest.approx(0.5)


def test_missing_predictions_file_is_an_error(bench_file: Path, tmp_path: Path) -> None:
    with pytest.raises(PredictionsError, match="not found"):
        read_predictions(tmp_path / "nope.jsonl", ["d1"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"\n\n", "is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x10", "3 not {id, response}"),
        (b'{"id": "zz", "response": "No."}\n', "1 with ids not in the bench"),
    ],
)
def test_a_file_without_a_single_prediction_is_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(content)
    with pytest.raises(PredictionsError, match=message):
        read_predictions(path, ["d1", "y1"])


def test_the_bench_file_given_as_predictions_is_refused(bench_file: Path) -> None:
    with pytest.raises(PredictionsError, match="holds no prediction for this bench"):
        read_predictions(bench_file, [it.id for it in read_bench(bench_file)])


def test_a_bom_is_dropped_and_non_utf8_lines_are_invalid_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(
        b'\xef\xbb\xbf{"id": "d1", "response": "ok"}\n'
        + '{"id": "y1", "response": "caf\u00e9"}\n'.encode("latin-1")
        + '{"id": "y2", "response": "caf\u00e9"}\n'.encode()
    )
    preds = read_predictions(path, ["d1", "y1", "y2"])
    assert preds.responses == {"d1": "ok", "y2": "caf\u00e9"}
    assert preds.invalid_lines == [2] and preds.missing_ids == ["y1"]


def test_a_bom_in_the_bench_is_dropped_and_non_utf8_is_refused(bench_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + bench_file.read_bytes())
    assert [it.id for it in read_bench(path)] == [it.id for it in read_bench(bench_file)]
    path.write_bytes(bench_file.read_bytes() + '{"id": "caf\u00e9"}\n'.encode("latin-1"))
    with pytest.raises(BenchError, match=r"bom.jsonl:\d+: not UTF-8"):
        read_bench(path)


def test_whole_image_vqa_items_are_scored_and_counted(tmp_path: Path, minilm: MiniLMSimilarity) -> None:
    rows = [
        {"id": "q1", "task": "vqa", "qtype": "yes_no", "mode": "none", "image": "a.png",
         "question": "Is the image noisy?", "answer": "Yes."},
        {"id": "q2", "task": "vqa", "qtype": "yes_no", "image": "a.png",
         "question": "Is the image dark?", "answer": "No."},
        {"id": "q3", "task": "vqa", "qtype": "what", "mode": "none", "image": "a.png",
         "question": "What is wrong with the image?", "answer": "It is blurry."},
    ]  # fmt: skip
    bench = write_jsonl(tmp_path / "qbench.jsonl", rows)
    report, items = run(bench, tmp_path, [{"id": "q1", "response": "Yes, it is."},
                                          {"id": "q2", "response": "Yes."}], minilm)  # fmt: skip
    assert report["vqa"]["acc_y"] == pytest.approx(0.5)
    assert report["counts"]["whole_image_vqa_items"] == 3 and report["counts"]["yes_no_items"] == 2
    assert report["vqa"]["miou"] is None and "vqa.miou" in report["counts"]["null_reasons"]
    assert [i["yes_no"]["correct"] for i in items[:2]] == [True, False]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not a bench item"),
        (json.dumps({**BENCH[2], "answer": "Maybe."}), "yes_no"),
        (json.dumps({**BENCH[0], "objects": [{"phrase": "x", "box": [0.5, 0.5, 0.1, 0.1]}]}), "inverted"),
    ],
)
def test_a_bad_bench_is_refused_with_its_line(tmp_path: Path, line: str, message: str) -> None:
    path = write_jsonl(tmp_path / "b.jsonl", [BENCH[1], line])
    with pytest.raises(BenchError, match=rf"b.jsonl:2: .*{message}"):
        read_bench(path)


def test_duplicate_bench_ids_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="duplicate bench id"):
        read_bench(write_jsonl(tmp_path / "b.jsonl", [BENCH[0], BENCH[0]]))


def test_with_a_judge_llm_score_acc_w_and_total(
    bench_file: Path, tmp_path: Path, minilm: MiniLMSimilarity
) -> None:
    from giqa.evaluation.judge import Judge

    # d1 -> 4, w1 -> 2 (bench order); d2 and w2 have no response: scored 0 without a call
    llm = ScriptedLLM([{"score": 4}, {"score": 2}])
    items = read_bench(bench_file)
    rows = [
        {"id": "d1", "response": "Fair; the red circle is blurry."},
        {"id": "w1", "response": "The circle."},
    ]
    rows += [{"id": "y1", "response": "Yes."}, {"id": "y2", "response": "Yes."}]
    preds = read_predictions(write_jsonl(tmp_path / "p.jsonl", rows), [it.id for it in items])
    result = evaluate(items, preds, similarity=minilm, judge=Judge(llm, concurrency=1))
    report = result.report
    assert len(llm.calls) == 2
    assert "Fair; the red circle is blurry." in llm.calls[0][1]["content"]
    assert report["des"]["llm_score"] == pytest.approx(25 * (4 + 0) / 2)
    assert report["vqa"]["acc_w"] == pytest.approx((2 + 0) / 8)
    assert report["vqa"]["acc_y"] == 0.5
    assert report["vqa"]["acc_total"] == pytest.approx((2 * 0.5 + 2 * 0.25) / 4)
    assert report["judge"]["enabled"] and report["judge"]["calls"] == 2 and report["judge"]["prompt_hash"]
    w2 = next(i for i in result.items if i["id"] == "w2")
    assert w2["judge"] == {"score": 0, "cached": False, "error": "not judged: response missing"}


def test_judge_sees_text_without_coordinates(
    bench_file: Path, tmp_path: Path, minilm: MiniLMSimilarity
) -> None:
    from giqa.evaluation.judge import Judge

    llm = ScriptedLLM([])
    items = [it for it in read_bench(bench_file) if it.id == "w1"]
    preds = read_predictions(
        write_jsonl(tmp_path / "p.jsonl", [{"id": "w1", "response": "The [disc](<1, 2>)."}]), ["w1"]
    )
    evaluate(items, preds, similarity=minilm, judge=Judge(llm))
    prompt = llm.calls[0][1]["content"]
    assert (
        "The disc." in prompt
        and "The red circle." in prompt
        and "<" not in prompt.split("Model answer:")[1][:20]
    )
