"""Shared pieces of the training tests: a GIQA-Synth export and a very small tiny-preset config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Smaller than the tiny preset's model so a handful of steps takes seconds on a shared 2-core machine.
SMALL_MODEL: dict[str, Any] = {
    "image_size": 64,
    "patch_size": 16,
    "vision_hidden": 32,
    "vision_layers": 2,
    "text_hidden": 48,
    "text_layers": 2,
    "heads": 4,
}


def synth_export(out: Path, n: int = 6, seed: int = 1) -> Path:
    """``giqa synth scenes`` + ``giqa synth export``: the LLaVA JSON a user would train on."""
    from typer.testing import CliRunner

    from giqa.cli import app

    runner = CliRunner()
    scenes = out / "scenes"
    result = runner.invoke(
        app,
        [
            "synth",
            "scenes",
            "--n",
            str(n),
            "--seed",
            str(seed),
            "--size",
            "64",
            "--out",
            str(scenes),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    data = scenes / "llava.json"
    result = runner.invoke(app, ["synth", "export", str(scenes), "--out", str(data)])
    assert result.exit_code == 0, result.output
    return data


def small_config(data: Path, out: Path, **overrides: Any) -> Any:
    from giqa.training.config import build_config

    flags = {
        "data": str(data),
        "output_dir": str(out),
        "preset": "tiny",
        **SMALL_MODEL,
        "per_device_batch": 8,
        "max_steps": 4,
        "logging_steps": 1,
        "save_steps": 100,
        "warmup_ratio": 0.0,
        "progress": False,
        **overrides,
    }
    return build_config({}, flags)


def read_losses(run: Path) -> list[float]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [row["loss"] for row in map(json.loads, lines) if "loss" in row]


def state_dict(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    tensors: dict[str, Any] = {}
    for file in sorted(folder.glob("*.safetensors")):
        tensors.update(load_file(file))
    return tensors
