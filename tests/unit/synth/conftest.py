"""Shared samples for the GIQA-Synth tests: generated once per session, they are the slow part."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from giqa.synth import SceneRecord, generate_scene
from giqa.synth.bench import write_bench

SAMPLE_SEED = 7
SAMPLE_SIZE = 200


@dataclass(frozen=True)
class Scene:
    image: Image.Image
    record: SceneRecord

    @property
    def pixels(self) -> np.ndarray:
        return np.asarray(self.image)


@pytest.fixture(scope="session")
def sample_seed() -> int:
    return SAMPLE_SEED


@pytest.fixture(scope="session")
def sample() -> list[Scene]:
    """200 scenes of one world: enough for every pattern, hard case and degradation kind to appear."""
    return [Scene(*generate_scene(SAMPLE_SEED, i)) for i in range(SAMPLE_SIZE)]


@pytest.fixture(scope="session")
def bench_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    write_bench(0, out, progress=False)
    return out
