"""Shared samples for the GIQA-Synth tests: generated once per session, they are the slow part."""

from __future__ import annotations

from pathlib import Path

import pytest
from synth_support import SAMPLE_SEED, SAMPLE_SIZE, Scene

from giqa.synth import generate_scene
from giqa.synth.bench import write_bench


@pytest.fixture(scope="session")
def sample() -> list[Scene]:
    """200 scenes of one world: enough for every pattern, hard case and degradation kind to appear."""
    return [Scene(*generate_scene(SAMPLE_SEED, i)) for i in range(SAMPLE_SIZE)]


@pytest.fixture(scope="session")
def bench_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    write_bench(0, out, progress=False)
    return out
