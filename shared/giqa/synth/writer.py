"""Writing GIQA-Synth sets to disk: ``images/*.png`` + ``annotations.jsonl``, atomically and reproducibly.

A set is built in a temporary folder and moved into place whole (:func:`giqa.files.staged_dir`), so an
interrupted run never leaves a half-written set; the same arguments give the same bytes on every run.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from giqa.files import InputFileError, iter_lines, staged_dir
from giqa.synth.config import SynthConfig
from giqa.synth.generate import DEFAULT_CONFIG, generate_scene
from giqa.synth.schema import SceneRecord

ANNOTATIONS = "annotations.jsonl"
CONFIG_FILE = "synth_config.json"
IMAGES = "images"
# Training worlds use seeds below this; the bench adds it to its seed so the two never share a scene.
MAX_TRAIN_SEED = 1_000_000_000


def png_bytes(image: Image.Image) -> bytes:
    """PNG without metadata or timestamps: identical pixels give identical bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def config_json(config: SynthConfig, **extra: object) -> str:
    return json.dumps({**extra, "config": dataclasses.asdict(config)}, indent=2, sort_keys=True) + "\n"


def write_scenes(
    n: int,
    seed: int,
    out_dir: str | Path,
    config: SynthConfig | None = None,
    progress: bool = True,
    start: int = 0,
    *,
    overwrite: bool = False,
) -> Path:
    """Scenes ``start .. start+n-1`` of world ``seed`` under ``out_dir``; returns the annotations path.

    The set is built in a temporary folder beside ``out_dir`` and moved into place whole, so an interrupted
    run leaves ``out_dir`` as it was. A non-empty ``out_dir`` is refused unless ``overwrite`` (then it is
    replaced whole: no image or export of an earlier run stays beside the new annotations); a file in its
    place is refused.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < MAX_TRAIN_SEED:
        raise ValueError(f"seed must be an integer in [0, {MAX_TRAIN_SEED}), got {seed!r}")
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    config = config or DEFAULT_CONFIG
    out = Path(out_dir)
    with staged_dir(out, overwrite=overwrite) as stage:
        indices = tqdm(range(start, start + n), desc="synth scenes", unit="scene", disable=not progress)
        (stage / IMAGES).mkdir()
        # plain writes: nothing in the staging folder is visible until the swap publishes it whole;
        # records stream into the file so memory stays flat
        with (stage / ANNOTATIONS).open("w", encoding="utf-8", newline="\n") as handle:
            for index in indices:
                image, record = generate_scene(seed, index, config)
                (stage / record.image).write_bytes(png_bytes(image))
                handle.write(record.model_dump_json() + "\n")
        (stage / CONFIG_FILE).write_bytes(config_json(config, seed=seed, n=n, start=start).encode())
    return out / ANNOTATIONS


def read_scenes(path: str | Path) -> list[SceneRecord]:
    """Records of an ``annotations.jsonl`` (or of a directory holding one); a bad line names its number."""
    p = Path(path)
    if p.is_dir():
        p = p / ANNOTATIONS
    if not p.is_file():
        raise FileNotFoundError(f"no annotations file at {p}")
    records: list[SceneRecord] = []
    for line in iter_lines(p):
        if line.problem:
            raise InputFileError(f"{p}:{line.number}: {line.problem}")
        try:
            records.append(SceneRecord.model_validate_json(line.text))
        except ValueError as exc:
            raise ValueError(f"{p}:{line.number}: not a scene record: {exc}") from exc
    return records
