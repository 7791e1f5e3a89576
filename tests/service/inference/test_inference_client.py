"""giqa.client (sync and async) against the real service subprocess, and the runnable edit example."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from giqa.client import AsyncInferenceClient, InferenceClient, InferenceError, StoredImage, decode_mask
from giqa.client.contract import Region
from inference_helpers import API_KEY, Served, png_bytes

pytestmark = pytest.mark.models

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "edit_flagged_regions.py"


def test_sync_client_assess_ask_score(served: Served, tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(png_bytes((120, 80)))
    with InferenceClient(served.url, api_key=API_KEY) as client:
        assert client.ready() and client.models().data[0].id == "giqa-demo-vlm"
        result = client.assess(path, mask=True, mask_format="rle")
        assert result.image_size == [120, 80] and result.masks is not None
        for mask in result.masks:
            assert decode_mask(mask).shape == (80, 120)
        ask = client.ask(
            Image.open(path),
            "Is the green square noisy?",
            regions=[Region(box=[0, 0, 0.5, 0.5], phrase="green square")],
        )
        assert ask.question.startswith("Is the [green square](<") and ask.p_yes is not None
        assert client.ask(path.read_bytes(), "Is it dark?", regions=[[0.1, 0.1, 0.9, 0.9]]).yes is not None
        score = client.score(path)
        assert 1 <= score.score <= 5
        with pytest.raises(InferenceError) as missing:
            client.score(StoredImage("uploads/run-1/none.png"))  # sent by key: the service's store has none
        assert missing.value.status == 404 and "no object" in missing.value.message
    with InferenceClient(served.url, api_key="wrong") as client, pytest.raises(InferenceError) as info:
        client.score(path)
    assert info.value.status == 401 and info.value.code == "unauthorized" and info.value.request_id


def test_async_client_runs_requests_concurrently(served: Served) -> None:
    async def main():
        async with AsyncInferenceClient(served.url, api_key=API_KEY) as client:
            image = png_bytes()
            return await asyncio.gather(
                client.assess(image), client.ask(image, "Is the image blurry?"), client.score(image)
            )

    assess, ask, score = asyncio.run(main())
    assert assess.objects and ask.p_yes is not None and 1 <= score.score <= 5


def test_the_edit_example_changes_only_the_flagged_regions(served: Served, tmp_path: Path) -> None:
    from processes import giqa_env

    rng = np.random.default_rng(0)
    noisy = np.clip(rng.normal(120, 40, (80, 120, 3)), 0, 255).astype(np.uint8)
    source = tmp_path / "noisy.png"
    Image.fromarray(noisy).save(source)
    out = tmp_path / "edited"
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            str(source),
            "--url",
            served.url,
            "--api-key",
            API_KEY,
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=giqa_env(),
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "edits.json").read_text())
    before = np.asarray(Image.open(out / "before.png")).astype(int)
    after = np.asarray(Image.open(out / "after.png")).astype(int)
    assert (before == noisy).all() and (out / "overlay.png").is_file()
    changed = (before != after).any(axis=2)
    with InferenceClient(served.url, api_key=API_KEY) as client:  # the same greedy answer, its masks
        masks = client.assess(source, mask=True).masks or []
    flagged = np.zeros(changed.shape, dtype=bool)
    for mask in masks:
        if mask.polarity == "negative":
            flagged |= decode_mask(mask)
    applied = [e for e in summary["edits"] if "area" in e]
    assert not (changed & ~flagged).any()  # nothing outside the flagged regions was touched
    assert changed.any() == bool(applied)
