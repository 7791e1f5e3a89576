"""``giqa demo`` end to end on embedded defaults (shipped detector and VLM, the session's real SmolLM2
server), sized down: the page, the report and the dataset it promises, and a rerun refused without
--overwrite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from giqa.backends.factory import SHIPPED_DETECTOR, SHIPPED_VLM
from giqa.cli import app

pytestmark = pytest.mark.llm


@pytest.mark.skipif(
    not (SHIPPED_VLM / "config.json").is_file() or not (SHIPPED_DETECTOR / "config.json").is_file(),
    reason="the shipped demo models are not in this checkout",
)
def test_demo_writes_page_report_and_dataset(
    llm_server: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from giqa.settings import get_settings

    monkeypatch.setenv("GIQA_LLM__DIALECT", "json_object")  # llama.cpp's structured-output form
    monkeypatch.setenv("GIQA_CACHE_DIR", str(tmp_path / "cache"))
    get_settings.cache_clear()
    out = tmp_path / "demo"
    url = f"{llm_server.url}"  # type: ignore[attr-defined]
    args = ["demo", "--out", str(out), "--scenes", "2", "--bench-items", "8", "--llm-url", url]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["counts"]["bench_items"] == 8
    assert set(report) >= {"des", "vqa", "judge", "counts"}
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "GIQA-Bench metrics" in page and "Annotation run" in page
    assert page.count("<section>") >= 8  # every scored item has its card
    assert (out / "bench" / "preview.html").is_file()
    audit = [json.loads(line) for line in (out / "annotate" / "audit.jsonl").read_text().splitlines()]
    assert len(audit) == 2
    preds = (out / "predictions.jsonl").read_text().splitlines()
    assert len(preds) == 8
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "--overwrite" in again.output
    get_settings.cache_clear()
