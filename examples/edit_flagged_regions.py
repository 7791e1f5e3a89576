"""Fix only what the inference service flags: sharpen the blurry regions, denoise the noisy ones, and so on.

An image-editing app's whole loop in one file: send the image to ``POST /v1/assess`` with ``mask=true``,
read a mask per quality word, map each negative word to its defect class (the classical judge's vocabulary,
:data:`giqa.backends.classical_words.DEFECT_WORDS`) and apply one restoration step inside that mask only;
the rest of the image is left untouched. Writes ``before.png``, ``after.png``, ``overlay.png`` (the
flagged regions drawn on the image) and ``edits.json`` (what was done where).

    giqa serve inference &                      # the shipped demo VLM on 127.0.0.1:8000
    python examples/edit_flagged_regions.py photo.jpg --out edited/

With the demo VLM (a miniature, MODEL_CARD.md) the regions are rough; the mechanics are what this shows.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from giqa.backends.classical_words import DEFECT_WORDS
from giqa.client import InferenceClient, decode_mask

# One restoration step per defect class, applied to the whole image and then kept inside the mask only.
FIXES: dict[str, tuple[str, Callable[[Image.Image], Image.Image]]] = {
    "blur": ("sharpen", lambda im: im.filter(ImageFilter.UnsharpMask(radius=2, percent=160, threshold=2))),
    "noise": ("denoise", lambda im: im.filter(ImageFilter.MedianFilter(3))),
    "blocky": ("smooth blocks", lambda im: im.filter(ImageFilter.GaussianBlur(0.8))),
    "pixelated": ("smooth pixels", lambda im: im.filter(ImageFilter.GaussianBlur(1.0))),
    "dark": ("brighten", lambda im: ImageEnhance.Brightness(im).enhance(1.35)),
    "bright": ("darken", lambda im: ImageEnhance.Brightness(im).enhance(0.75)),
    "low_contrast": ("stretch contrast", lambda im: ImageOps.autocontrast(im, cutoff=1)),
}


def defect_of(word: str) -> str | None:
    for defect, words in DEFECT_WORDS.items():
        if word.lower() in words:
            return defect
    return None


def edit(
    image: Image.Image, masks: list[tuple[str, np.ndarray]]
) -> tuple[Image.Image, list[dict[str, object]]]:
    """``image`` with each defect fixed once inside the union of the masks of its words ("blurry" and "out
    of focus" are one blur: sharpening twice would over-sharpen); the log of what was applied."""
    by_defect: dict[str, tuple[list[str], np.ndarray]] = {}
    log: list[dict[str, object]] = []
    for word, inside in masks:
        defect = defect_of(word)
        if defect is None or defect not in FIXES or not inside.any():
            log.append({"quality": word, "action": "none (no restoration step for this word)"})
            continue
        words, union = by_defect.setdefault(defect, ([], np.zeros_like(inside)))
        words.append(word)
        union |= inside
    out = image.copy()
    for defect, (words, inside) in by_defect.items():
        action, fix = FIXES[defect]
        fixed = fix(out)
        out = Image.composite(fixed, out, Image.fromarray(inside.astype(np.uint8) * 255, mode="L"))
        log.append(
            {"quality": words, "defect": defect, "action": action, "area": round(float(inside.mean()), 4)}
        )
    return out, log


def overlay(image: Image.Image, boxes: list[tuple[str, list[int]]]) -> Image.Image:
    out = image.copy()
    draw = ImageDraw.Draw(out)
    for label, (x1, y1, x2, y2) in boxes:
        draw.rectangle((x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)), outline=(255, 40, 40), width=2)
        draw.text((x1 + 3, y1 + 2), label, fill=(255, 255, 0))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image", type=Path)
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the inference service")
    parser.add_argument("--api-key", default=None, help="bearer key, when the service wants one")
    parser.add_argument("--out", type=Path, default=Path("edited"))
    args = parser.parse_args()

    image = Image.open(args.image)
    image = ImageOps.exif_transpose(image).convert("RGB")  # the service boxes the displayed orientation
    with InferenceClient(args.url, api_key=args.api_key) as client:
        result = client.assess(args.image, mask=True)
    flagged = [(m.quality, decode_mask(m)) for m in result.masks or [] if m.polarity == "negative"]
    after, log = edit(image, flagged)
    args.out.mkdir(parents=True, exist_ok=True)
    image.save(args.out / "before.png")
    after.save(args.out / "after.png")
    boxes = [
        (f"{o.phrase}: {', '.join(o.quality)}", b.pixels)
        for o in result.objects
        if o.polarity == "negative"
        for b in o.boxes
    ]
    overlay(image, boxes).save(args.out / "overlay.png")
    summary = {"model": result.model, "description": result.text, "edits": log}
    (args.out / "edits.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
