"""Calibration of the classical judge: the logistic fit, the labels it trains on, the file it writes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from giqa.backends.classical import ClassicalJudge
from giqa.backends.classical_calibration import ambiguous_kinds, calibrate, fit_logistic, main

pytestmark = pytest.mark.unit


def test_fit_logistic_separates_and_is_balanced() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-2, 1, (400, 1)), rng.normal(2, 1, (40, 1))])
    y = np.concatenate([np.zeros(400), np.ones(40)])
    fit = fit_logistic(x, y)
    z = (x[:, 0] - fit["mean"][0]) / fit["scale"][0] * fit["coef"][0] + fit["intercept"]
    assert fit["coef"][0] > 0
    # balanced weights put the boundary near the middle (0), not pushed towards the rare class
    boundary = fit["mean"][0] - fit["intercept"] * fit["scale"][0] / fit["coef"][0]
    assert abs(boundary) < 0.5
    assert ((z > 0) == (y == 1)).mean() > 0.95


def test_fit_needs_both_labels() -> None:
    with pytest.raises(ValueError, match="positive and negative"):
        fit_logistic(np.zeros((5, 1)), np.ones(5))


def test_ambiguous_kinds_follow_synth_confusables() -> None:
    assert "jpeg" in ambiguous_kinds("blur") and "blur" not in ambiguous_kinds("blur")
    assert "motion_blur" not in ambiguous_kinds("blur")  # motion blur IS blur for the judge


def test_small_calibration_run_writes_a_usable_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "params.json"
    assert main(["--scenes", "40", "--seed", "7100", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["command"].endswith(f"--out {out}") and data["crops"] > 40
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves no temp file
    assert ClassicalJudge(out).health().ok


def test_calibration_is_deterministic() -> None:
    assert calibrate(15, 7200, progress=False) == calibrate(15, 7200, progress=False)
