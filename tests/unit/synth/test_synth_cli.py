"""``giqa synth`` scenes / bench / preview through Typer's CliRunner, good and bad arguments."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from giqa.cli import app
from giqa.synth.writer import read_scenes

pytestmark = pytest.mark.unit

runner = CliRunner()


def test_scenes_then_preview(tmp_path: Path) -> None:
    out = tmp_path / "set"
    result = runner.invoke(
        app, ["synth", "scenes", "--n", "6", "--seed", "3", "--out", str(out), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 6 scenes" in result.output
    records = read_scenes(out)
    assert len(records) == 6

    page, sheet = tmp_path / "p.html", tmp_path / "s.png"
    result = runner.invoke(app, ["synth", "preview", str(out), "--out", str(page), "--png", str(sheet)])
    assert result.exit_code == 0, result.output
    html = page.read_text()
    assert html.count("<svg") == 6
    assert html.count("<rect") == sum(len(r.objects) for r in records)
    assert html.count("data:image/png;base64,") == 6
    for r in records:
        assert r.objects[0].phrase in html
    with Image.open(sheet) as image:
        assert image.width > 2 * 128

    result = runner.invoke(app, ["synth", "export", str(out), "--out", str(tmp_path / "llava.json")])
    assert result.exit_code == 0, result.output
    assert f"wrote {sum(1 + len(r.vqa) for r in records)} samples" in result.output


def test_scenes_options_reach_the_generator(tmp_path: Path) -> None:
    out = tmp_path / "big"
    args = [
        "synth",
        "scenes",
        "--n",
        "8",
        "--out",
        str(out),
        "--size",
        "96",
        "--box-form",
        "norm",
        "--backgrounds",
        "plain, checker",
        "--no-progress",
    ]
    assert runner.invoke(app, args).exit_code == 0
    records = read_scenes(out)
    assert records[0].width == 96
    assert {r.background for r in records} <= {"plain", "checker"}
    assert re.search(r"\]\(<0\.\d\d, ", records[0].des_answer)


def test_bench_command_reports_the_mix(bench_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["synth", "bench", "--seed", "0", "--out", str(tmp_path / "b"), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "250 items" in result.output and "yes 35, no 55" in result.output
    assert (tmp_path / "b" / "bench.jsonl").read_bytes() == (bench_dir / "bench.jsonl").read_bytes()
    page = tmp_path / "bench.html"
    result = runner.invoke(
        app, ["synth", "preview", str(tmp_path / "b"), "--out", str(page), "--limit", "100"]
    )
    assert result.exit_code == 0, result.output
    assert page.read_text().count("<svg") == 100


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["synth", "scenes", "--n", "0", "--out", "x"], "--n"),
        (["synth", "scenes", "--n", "2", "--seed", "-4", "--out", "x"], "--seed"),
        (["synth", "scenes", "--n", "2", "--out", "x", "--size", "16"], "--size"),
        (["synth", "scenes", "--n", "2", "--out", "x", "--box-form", "xyxy"], "box_form"),
        (
            ["synth", "scenes", "--n", "2", "--out", "x", "--min-objects", "5", "--max-objects", "2"],
            "min_objects",
        ),
        (["synth", "scenes", "--n", "2"], "--out"),
        (["synth", "scenes", "--n", "2", "--out", "x", "--backgrounds", "plain,sky"], "unknown backgrounds"),
        (["synth", "preview", "does-not-exist"], "not a directory"),
        (["synth", "export", "does-not-exist", "--out", "x.json"], "not a directory"),
    ],
)
def test_bad_arguments_fail_clearly(args: list[str], message: str, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "x").exists(), "nothing is written when the arguments are wrong"


def test_preview_of_a_folder_without_data(tmp_path: Path) -> None:
    result = runner.invoke(app, ["synth", "preview", str(tmp_path), "--out", str(tmp_path / "p.html")])
    assert result.exit_code == 2
    assert "neither annotations.jsonl nor bench.jsonl" in result.output
    assert not (tmp_path / "p.html").exists()


def test_out_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_text("keep")
    result = runner.invoke(app, ["synth", "scenes", "--n", "1", "--out", str(target)])
    assert result.exit_code == 2 and "not a directory" in result.output
    assert target.read_text() == "keep"
