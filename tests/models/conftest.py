"""Shared fixtures for model tests: a small GIQA-Synth-Bench slice and a tiny LLaVA checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synth_bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GIQA-Synth-Bench (seed 0, 64 px) written by ``giqa synth bench``; returns bench.jsonl."""
    from typer.testing import CliRunner

    from giqa.cli import app

    out = tmp_path_factory.mktemp("bench")
    result = CliRunner().invoke(
        app, ["synth", "bench", "--seed", "0", "--out", str(out), "--size", "64", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    return out / "bench.jsonl"


@pytest.fixture(scope="session")
def bench_slice(synth_bench: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 items of every kind (4 DES, 4 yes/no, 4 what/why/how) with absolute image paths."""
    rows = [json.loads(line) for line in synth_bench.read_text().splitlines()]
    picked = (
        [r for r in rows if r["task"] == "des"][:4]
        + [r for r in rows if r["qtype"] == "yes_no"][:4]
        + [r for r in rows if r["task"] == "vqa" and r["qtype"] != "yes_no"][:4]
    )
    for r in picked:
        r["image"] = str(synth_bench.parent / r["image"])
    path = tmp_path_factory.mktemp("slice") / "bench.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in picked))
    return path


@pytest.fixture(scope="session")
def tiny_llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from giqa.models.tiny import build_tiny_llava

    return build_tiny_llava(tmp_path_factory.mktemp("tiny") / "llava", seed=0)
