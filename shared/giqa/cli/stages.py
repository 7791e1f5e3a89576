"""Debugging tools for single pipeline stages: ``giqa detect`` (Stage 2) and ``giqa judge`` (Stage 3).

Both print JSON on stdout; bad input (a missing or corrupt image, an image over the pixel limit, a malformed
box, a missing model) ends with a one-line message on stderr and exit code 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from giqa.backends.classical_words import known_words_text
from giqa.boxes import BoxError, as_box
from giqa.cli.common import fail as _fail
from giqa.cli.common import url_option
from giqa.settings import get_settings


def _emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")


def detect(
    image: Annotated[Path, typer.Option("--image", help="image file to search")],
    phrase: Annotated[list[str], typer.Option("--phrase", help="object phrase Tr; repeat for several")],
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            help="Grounding DINO folder (default: pipeline.detector_model, else the shipped demo detector "
            "trained on GIQA-Synth shapes)",
        ),
    ] = None,
    threshold: Annotated[
        float | None, typer.Option("--threshold", min=0.0, max=1.0, help="box threshold (default: settings)")
    ] = None,
    text_threshold: Annotated[
        float | None,
        typer.Option("--text-threshold", min=0.0, max=1.0, help="text threshold (default: settings)"),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            callback=url_option,
            help="ask this detector service (base URL) instead of loading a model (default: settings "
            "pipeline.detector_url); not with --model",
        ),
    ] = None,
) -> None:
    """Stage 2: Grounding DINO boxes (normalized x1, y1, x2, y2) and scores for each phrase, as JSON."""
    from giqa.backends.images import ImageError, load_image

    cfg = get_settings().pipeline
    phrases = [p for p in phrase if p.strip()]
    if not phrases:
        raise _fail("give at least one non-empty --phrase")
    try:
        img = load_image(image, cfg.max_image_pixels)
    except ImageError as exc:
        raise _fail(str(exc)) from None
    from giqa.backends.factory import make_detector
    from giqa.backends.gdino import detections_to_json

    try:
        detector = make_detector(
            cfg, model=model, box_threshold=threshold, text_threshold=text_threshold, url=url
        )
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise _fail(f"cannot load the detector: {exc}") from None
    results = detector.detect(img, phrases)
    _emit(
        {
            "image": str(image),
            "size": list(img.size),
            "model": str(detector.model_path),
            "box_threshold": detector.box_threshold,
            "text_threshold": detector.text_threshold,
            "phrases": [
                {"phrase": p, "detections": detections_to_json(d)}
                for p, d in zip(phrases, results, strict=True)
            ],
        }
    )


def judge(
    image: Annotated[Path, typer.Option("--image", help="image file")],
    box: Annotated[
        tuple[float, float, float, float],
        typer.Option("--box", help="normalized box: x1 y1 x2 y2 in [0, 1]"),
    ],
    quality: Annotated[
        str,
        typer.Option(
            "--quality",
            help="quality word Tq, e.g. blurry; modifiers (slightly, very) and 'not' are understood. "
            f"The classical backend knows {known_words_text()}",
        ),
    ],
    backend: Annotated[
        Literal["classical", "qinstruct"] | None,
        typer.Option("--backend", help="classical (CPU, no weights) or qinstruct (default: settings)"),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option("--model", help="llava-hf Q-Instruct folder (default: pipeline.judge_model)"),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            callback=url_option,
            help="ask this iqa_filter service (base URL) instead of judging here (default: settings "
            "pipeline.judge_url); not with --backend/--model",
        ),
    ] = None,
) -> None:
    """Stage 3: ask "Is the image quality <quality>?" about the crop of one box; prints JSON with p_yes.

    The classical judge abstains (p_yes 0.5, "abstained": true, a "reason") where its calibrated
    measurements cannot separate degraded from clean; an unknown word or a box under 8 px is an error.
    """
    from giqa.backends.factory import JudgeConfigError, make_judge
    from giqa.backends.images import ImageError, load_image

    cfg = get_settings().pipeline
    try:
        norm_box = as_box(box)
    except BoxError as exc:
        raise _fail(f"bad --box: {exc}") from None
    if norm_box.area <= 0:
        raise _fail(f"bad --box: {list(box)} has no area")
    if not quality.strip():
        raise _fail("--quality must not be empty")
    try:
        img = load_image(image, cfg.max_image_pixels)
    except ImageError as exc:
        raise _fail(str(exc)) from None
    try:
        quality_judge = make_judge(cfg, backend=backend, model=model, url=url)
    except (JudgeConfigError, FileNotFoundError, OSError, ValueError) as exc:
        raise _fail(f"cannot load the judge: {exc}") from None
    result = quality_judge.judge(img, norm_box, quality)
    if result.abstained and result.detail.get("abstain") in ("unknown_word", "crop_too_small"):
        # on the command line a word the judge cannot measure, or a box too small, is a usage error
        raise _fail(result.reason)
    _emit(
        {
            "image": str(image),
            "box": norm_box.as_list(),
            "quality": quality,
            "backend": quality_judge.name,
            "p_yes": result.p_yes,
            "keep": result.p_yes >= cfg.keep_threshold,
            "abstained": result.abstained,
            "reason": result.reason,
            "detail": result.detail,
        }
    )
