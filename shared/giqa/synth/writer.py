"""Writing GIQA-Synth sets to disk: ``images/*.png`` + ``annotations.jsonl``, atomically and reproducibly.

Every file goes to a temporary name first and is renamed into place, so an interrupted run never leaves
a half-written file under a final name; the same arguments give the same bytes on every run.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from giqa.synth.config import SynthConfig
from giqa.synth.generate import DEFAULT_CONFIG, generate_scene
from giqa.synth.schema import SceneRecord

ANNOTATIONS = "annotations.jsonl"
CONFIG_FILE = "synth_config.json"
IMAGES = "images"
# Training worlds use seeds below this; the bench adds it to its seed so the two never share a scene.
MAX_TRAIN_SEED = 1_000_000_000


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes files private; these are data sets to share
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_lines(path: Path, lines: Iterable[str]) -> None:
    atomic_write_bytes(path, "".join(line + "\n" for line in lines).encode("utf-8"))


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
) -> Path:
    """Scenes ``start .. start+n-1`` of world ``seed`` under ``out_dir``; returns the annotations path.

    ``out_dir`` may exist (a re-run overwrites the same files with the same bytes); a file in its place
    is refused.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < MAX_TRAIN_SEED:
        raise ValueError(f"seed must be an integer in [0, {MAX_TRAIN_SEED}), got {seed!r}")
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    config = config or DEFAULT_CONFIG
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a directory")
    (out / IMAGES).mkdir(parents=True, exist_ok=True)
    path = out / ANNOTATIONS
    # stream the records into a temporary file (memory stays flat) and rename it when all are written
    fd, tmp = tempfile.mkstemp(prefix=f".{ANNOTATIONS}.", suffix=".tmp", dir=out)
    indices = tqdm(range(start, start + n), desc="synth scenes", unit="scene", disable=not progress)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            for index in indices:
                image, record = generate_scene(seed, index, config)
                atomic_write_bytes(out / record.image, png_bytes(image))
                handle.write(record.model_dump_json() + "\n")
        os.chmod(tmp, 0o644)
        atomic_write_bytes(out / CONFIG_FILE, config_json(config, seed=seed, n=n, start=start).encode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_scenes(path: str | Path) -> list[SceneRecord]:
    """Records of an ``annotations.jsonl`` (or of a directory holding one); a bad line names its number."""
    p = Path(path)
    if p.is_dir():
        p = p / ANNOTATIONS
    if not p.is_file():
        raise FileNotFoundError(f"no annotations file at {p}")
    records: list[SceneRecord] = []
    with p.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(SceneRecord.model_validate_json(line))
            except ValueError as exc:
                raise ValueError(f"{p}:{number}: not a scene record: {exc}") from exc
    return records
