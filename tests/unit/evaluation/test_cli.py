"""``giqa eval`` and ``giqa eval compare`` as a user meets them: files, printed table, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from giqa.cli import app

from .conftest import BENCH, write_jsonl

pytestmark = pytest.mark.unit

runner = CliRunner()


def eval_args(bench: Path, preds: Path, out: Path, *extra: str) -> list[str]:
    return ["eval", "--bench", str(bench), "--predictions", str(preds), "--out", str(out), "--quiet", *extra]


def test_eval_writes_report_items_and_prints_table_5(bench_file: Path, tmp_path: Path) -> None:
    preds = write_jsonl(
        tmp_path / "model-a.jsonl", [{"id": b["id"], "response": b["answer"]} for b in BENCH[:4]]
    )
    out = tmp_path / "reports" / "a.json"
    result = runner.invoke(app, eval_args(bench_file, preds, out, "--no-judge"))
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["des"]["bleu4"] == pytest.approx(100.0)
    items = [json.loads(line) for line in (tmp_path / "reports" / "a.items.jsonl").read_text().splitlines()]
    assert [i["id"] for i in items] == [b["id"] for b in BENCH]
    assert items[-1]["status"] == "missing" and "scores 0" in items[-1]["why"]
    assert "model-a" in result.output and "100.00" in result.output and "N/A" in result.output
    assert "missing ids: w1, w2" in result.output


def test_eval_errors_are_clear(bench_file: Path, tmp_path: Path) -> None:
    preds = write_jsonl(tmp_path / "p.jsonl", [])
    missing = runner.invoke(
        app, eval_args(bench_file, tmp_path / "nope.jsonl", tmp_path / "r.json", "--no-judge")
    )
    assert missing.exit_code == 2 and "predictions file not found" in missing.output
    bad_bench = write_jsonl(tmp_path / "bad.jsonl", ["{}"])
    bad = runner.invoke(app, eval_args(bad_bench, preds, tmp_path / "r.json", "--no-judge"))
    assert bad.exit_code == 2 and "bad.jsonl:1" in bad.output
    both = runner.invoke(
        app, eval_args(bench_file, preds, tmp_path / "r.json", "--no-judge", "--embedded-judge")
    )
    assert both.exit_code != 0 and "choose one" in both.output
    assert not (tmp_path / "r.json").exists()


def test_compare_draws_and_tabulates(bench_file: Path, tmp_path: Path) -> None:
    paths = []
    truth = [{"id": b["id"], "response": b["answer"]} for b in BENCH]
    for name, rows in (("truth", truth), ("empty", [{**r, "response": ""} for r in truth])):
        preds = write_jsonl(tmp_path / f"{name}.jsonl", rows)
        paths.append(tmp_path / f"{name}.json")
        assert runner.invoke(app, eval_args(bench_file, preds, paths[-1], "--no-judge")).exit_code == 0
    chart = tmp_path / "chart.png"
    result = runner.invoke(app, ["eval", "compare", *map(str, paths), "--out", str(chart), "--kind", "bars"])
    assert result.exit_code == 0, result.output
    assert chart.read_bytes()[:4] == b"\x89PNG"
    assert "truth" in result.output and "empty" in result.output


def test_compare_refuses_a_file_that_is_not_a_report(tmp_path: Path) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text('{"hello": 1}')
    result = runner.invoke(app, ["eval", "compare", str(junk), "--out", str(tmp_path / "c.png")])
    assert result.exit_code == 2 and "not a GIQA-Bench report" in result.output


@pytest.mark.parametrize("n", [10, 20])
def test_eval_decodes_boxes_on_the_settings_grid(
    bench_file: Path, tmp_path: Path, n: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIQA_GRID_N/M reach the evaluator: a model trained on a 10×10 grid is scored on that grid."""
    from giqa.grid import encode_box, format_grid
    from giqa.settings import get_settings

    from .conftest import RED, SKY

    def grid(box: list[float]) -> str:
        return format_grid(*encode_box(box, n, n))

    text = f"The [red circle]({grid(RED)}) is blurry, the [sky]({grid(SKY)}) is sharp."
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": "d1", "response": text}])
    monkeypatch.setenv("GIQA_GRID_N", str(n))
    monkeypatch.setenv("GIQA_GRID_M", str(n))
    get_settings.cache_clear()
    try:
        out = tmp_path / "r.json"
        assert runner.invoke(app, eval_args(bench_file, preds, out, "--no-judge")).exit_code == 0
    finally:
        get_settings.cache_clear()
    items = [json.loads(line) for line in (tmp_path / "r.items.jsonl").read_text().splitlines()]
    ious = items[0]["ious"]
    # decoded on the right grid, each box lands within one cell of the truth
    assert len(ious) == 2 and all(v > (0.45 if n == 10 else 0.6) for v in ious), ious


def test_a_grid_mismatch_would_show(bench_file: Path, tmp_path: Path) -> None:
    """The control for the test above: 10×10 indices read on the default 20×20 grid land elsewhere."""
    from giqa.grid import encode_box, format_grid

    from .conftest import RED, SKY

    text = "The [red circle]({}) is blurry, the [sky]({}) is sharp.".format(
        *(format_grid(*encode_box(b, 10, 10)) for b in (RED, SKY))
    )
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": "d1", "response": text}])
    assert runner.invoke(app, eval_args(bench_file, preds, tmp_path / "r.json", "--no-judge")).exit_code == 0
    items = [json.loads(line) for line in (tmp_path / "r.items.jsonl").read_text().splitlines()]
    assert max(items[0]["ious"]) < 0.45
