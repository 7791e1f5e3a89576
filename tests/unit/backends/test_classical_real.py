"""The classical judge on real photographs it was not calibrated on: right, or it says it does not know.

A few windows of the HELD-OUT sample photos (never used by the calibration), one box each, asked every word
about the box clean and with the box degraded at the middle level of each kind that makes the word true.
Small on purpose (a few seconds); ``bench/judge_real.py`` measures the same on many more windows.
"""

from __future__ import annotations

import numpy as np
import pytest

from giqa.backends.classical import ClassicalJudge, parse_quality
from giqa.backends.classical_measure import measure
from giqa.backends.classical_photos import (
    HELDOUT,
    KIND_CLASS,
    LEVELS,
    WORD_KINDS,
    already_shows,
    degrade_region,
    scene_rng,
    scenes,
    shows_change,
)

pytestmark = pytest.mark.unit

PHOTOS = ("chelsea", "coffee", "rocket", "camera")
SEED = 23  # not the bench's seed: other windows of the same held-out photos


@pytest.fixture(scope="module")
def answers() -> dict[str, list[tuple[bool, bool, float, float]]]:
    """word -> (truth, abstained, p_yes, p_raw) for every item."""
    assert set(PHOTOS) <= set(HELDOUT)
    judge = ClassicalJudge()
    out: dict[str, list[tuple[bool, bool, float, float]]] = {w: [] for w in WORD_KINDS}
    for scene in scenes(list(PHOTOS), 1, SEED):
        clean = measure(scene.image, scene.box)
        degraded = {}
        for kind, levels in LEVELS.items():
            image = degrade_region(scene.image, scene.box, kind, levels[1], scene_rng(scene, kind, 1, SEED))
            degraded[kind] = measure(image, scene.box)
        for word, (kinds, positive) in WORD_KINDS.items():
            terms, _ = parse_quality(word)
            # the bench's rules: no clean box already showing the defect, no degradation that changed nothing
            items = [
                (degraded[k], not positive) for k in kinds if shows_change(degraded[k], clean, KIND_CLASS[k])
            ]
            if not any(already_shows(clean, KIND_CLASS[k]) for k in kinds):
                items.append((clean, positive))
            for values, truth in items:
                j = judge.judge_measured(values, terms, {})
                out[word].append((truth, j.abstained, j.p_yes, j.detail["p_raw"]))
    return out


def test_overall_targets_on_held_out_photos(answers) -> None:  # type: ignore[no-untyped-def]
    items = [a for word in answers.values() for a in word]
    confident = [(truth, p) for truth, abstained, p, _ in items if not abstained]
    wrong = sum((p >= 0.5) != truth for truth, p in confident)
    assert wrong / len(items) <= 0.10  # confidently wrong
    assert len(confident) / len(items) >= 0.60  # abstains on at most 40%
    assert (len(confident) - wrong) / len(confident) >= 0.85


@pytest.mark.parametrize("word", list(WORD_KINDS))
def test_every_word_moves_the_right_way_and_is_seldom_confidently_wrong(answers, word: str) -> None:  # type: ignore[no-untyped-def]
    items = answers[word]
    yes = [raw for truth, _, _, raw in items if truth]
    no = [raw for truth, _, _, raw in items if not truth]
    assert np.mean(yes) > np.mean(no), (word, yes, no)
    confident = [(truth, p) for truth, abstained, p, _ in items if not abstained]
    wrong = sum((p >= 0.5) != truth for truth, p in confident)
    assert wrong <= max(1, len(items) // 5), (word, items)
