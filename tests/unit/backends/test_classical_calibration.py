"""Calibration of the classical judge: the logistic fit, the labels and bands it learns, the file written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from giqa.backends.classical import CLASSES, ClassicalJudge
from giqa.backends.classical_calibration import (
    AMBIGUOUS,
    KIND_TO_CLASS,
    calibrate_rows,
    choose_band,
    collect_real,
    collect_synth,
    fit_logistic,
    folds,
    main,
)
from giqa.backends.classical_photos import CALIBRATION, HELDOUT, KIND_CLASS, PHOTOS

pytestmark = pytest.mark.unit

SMALL = ["astronaut", "coins", "moon", "page"]  # four photos: one per fold


@pytest.fixture(scope="module")
def rows():  # type: ignore[no-untyped-def]
    return collect_real(SMALL, 1, 5100, progress=False) + collect_synth(6, 7300, progress=False)


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


def test_ambiguity_covers_synth_confusables_and_every_class() -> None:
    from giqa.synth.words import CONFUSABLE

    assert set(AMBIGUOUS) == set(CLASSES) and set(KIND_CLASS.values()) == set(CLASSES)
    for kind, others in CONFUSABLE.items():
        for other in others:
            own, theirs = KIND_TO_CLASS[kind], KIND_TO_CLASS[other]
            assert own == theirs or theirs in AMBIGUOUS[own], (kind, other)


def test_held_out_photos_never_calibrate() -> None:
    assert not set(CALIBRATION) & set(HELDOUT)
    assert set(CALIBRATION) | set(HELDOUT) <= set(PHOTOS)
    # the stereo pair is one scene: both halves on the same side
    assert {"motorcycle_left", "motorcycle_right"} <= set(CALIBRATION)


def test_choose_band_keeps_confident_answers_precise() -> None:
    rng = np.random.default_rng(1)
    y = np.concatenate([np.zeros(500), np.ones(500)])
    p = np.clip(np.concatenate([rng.beta(2, 5, 500), rng.beta(5, 2, 500)]), 0, 1)
    lo, hi = choose_band(p, y, 0.9)
    assert lo < 0.5 < hi
    assert (y[p >= hi] == 1).mean() >= 0.9 and (y[p <= lo] == 0).mean() >= 0.9
    # measurements that cannot separate: no confident side at all
    lo, hi = choose_band(rng.uniform(0, 1, 1000), y, 0.9)
    assert lo < 0.0 and hi > 1.0


def test_folds_never_split_a_photo(rows) -> None:  # type: ignore[no-untyped-def]
    fold = folds(rows)
    for group in {r.group for r in rows}:
        assert len({int(f) for f, r in zip(fold, rows, strict=True) if r.group == group}) == 1


def test_calibration_is_deterministic(rows) -> None:  # type: ignore[no-untyped-def]
    again = collect_real(SMALL[:1], 1, 5100, progress=False)
    assert [r.values for r in again] == [r.values for r in rows[: len(again)]]
    first, second = calibrate_rows(rows), calibrate_rows(rows)
    assert first == second
    assert set(first["bands"]) == set(CLASSES)


def test_small_calibration_run_writes_a_usable_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "params.json"
    photos = SMALL[:2]
    args = ["--scenes", "3", "--seed", "7100", "--real-per-photo", "1", "--photos", *photos]
    args += ["--out", str(out)]
    assert main(args) == 0
    data = json.loads(out.read_text())
    assert data["command"].endswith(f"--photos astronaut coins --out {out}")
    assert data["real"]["photos"] == photos and data["crops"] > 2 * 31
    assert set(data["bands"]) == set(CLASSES)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves no temp file
    assert ClassicalJudge(out).health().ok


def test_calibration_refuses_held_out_photos(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit):
        main(["--photos", HELDOUT[0], "--out", str(tmp_path / "p.json")])
    assert not (tmp_path / "p.json").exists()
