"""The GIQA-DES question pool: 15 paraphrases of "assess the quality and mark where" (paper §3.2).

Each question tells the model the position format, so a model fine-tuned on one can be asked with another.
One is drawn per sample with a seed, so a dataset rebuilds identically.
"""

from __future__ import annotations

import hashlib
import random

_FORMAT_GRID = (
    "Mark each key object as [object](<top-left cell, bottom-right cell>), cells numbered 0 to {last} "
    "row by row on a {n}x{m} grid."
)
_FORMAT_NORM = "Mark each key object as [object](<x1, y1, x2, y2>) with coordinates normalized to 0-1."

_STEMS: tuple[str, ...] = (
    "Assess the quality of this image and point out where the key objects affecting it are.",
    "Describe the image quality in detail, giving the location of every object or region that affects it.",
    "How is the quality of this image? Ground the objects that matter for its quality.",
    "Evaluate this image's quality and mark the regions that raise or lower it.",
    "Give a detailed quality assessment of the image, with the positions of the important objects.",
    "Rate the visual quality of this picture and locate the areas responsible.",
    "Please analyze the image quality and indicate where each relevant object is.",
    "What do you think of the quality of this image? Mark the key objects you mention.",
    "Provide a quality description of this image that includes bounding boxes of the objects affecting it.",
    "Examine this image for quality issues and strengths, and show where they are.",
    "Can you judge the quality of this image and ground the objects that influence it?",
    "Describe how good this image looks, locating the objects or regions that shape your judgement.",
    "Analyze the clarity, lighting and detail of this image and mark the key objects with their positions.",
    "Assess this photo's quality, referring to the objects that matter by their locations.",
    "Explain the image quality, grounding every key object or region in your answer.",
)

DES_QUESTION_POOL_SIZE = len(_STEMS)
assert DES_QUESTION_POOL_SIZE == 15


def des_questions(form: str = "grid", n: int = 20, m: int = 20) -> list[str]:
    """All 15 questions with the position format of ``form`` ("grid" or "norm") appended."""
    if form == "grid":
        suffix = _FORMAT_GRID.format(last=n * m - 1, n=n, m=m)
    elif form == "norm":
        suffix = _FORMAT_NORM
    else:
        raise ValueError(f"unknown box form {form!r}; expected 'grid' or 'norm'")
    return [f"{stem} {suffix}" for stem in _STEMS]


def draw_des_question(key: str | int, *, seed: int = 0, form: str = "grid", n: int = 20, m: int = 20) -> str:
    """The question for one sample: a stable function of (seed, key), independent of processing order."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    return rng.choice(des_questions(form, n, m))
