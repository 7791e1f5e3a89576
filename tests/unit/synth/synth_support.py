"""Helpers shared by the GIQA-Synth tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from giqa.synth import SceneRecord

SAMPLE_SEED = 7
SAMPLE_SIZE = 200


@dataclass(frozen=True)
class Scene:
    image: Image.Image
    record: SceneRecord

    @property
    def pixels(self) -> np.ndarray:
        return np.asarray(self.image)
