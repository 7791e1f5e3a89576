"""Fixtures of the service tests: a few GIQA-Synth scenes (images, their tags and true boxes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from giqa.backends.images import load_image
from giqa.boxes import Box
from giqa.synth import SceneRecord, write_scenes


@dataclass
class Scenes:
    root: Path
    records: list[SceneRecord]
    images: list[Image.Image]

    def judge_items(self) -> list[tuple[Image.Image, Box, str]]:
        """Every (image, true box, tag quality) of the scenes, plus a word no judge knows."""
        items = []
        for record, image in zip(self.records, self.images, strict=True):
            quality = {t.phrase: t.quality for t in record.tags}
            for obj in record.objects:
                items.append((image, Box(*obj.box), quality.get(obj.phrase, "blurry")))
        items.append((self.images[0], Box(0.1, 0.1, 0.6, 0.6), "zorgy"))
        return items


@pytest.fixture(scope="session")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Scenes:
    root = tmp_path_factory.mktemp("service_scenes")
    annotations = write_scenes(3, 11, root, progress=False)
    records = [SceneRecord.model_validate_json(line) for line in annotations.read_text().splitlines()]
    return Scenes(root, records, [load_image(root / r.image) for r in records])
