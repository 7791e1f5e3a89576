"""Pixels of the clean world: textured backgrounds and anti-aliased shape masks (PIL and numpy only).

Images are float32 arrays (H, W, 3) in [0, 1] until they are written out, so degradations compose
without rounding in between.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image, ImageDraw

# Shapes are drawn this many times larger and shrunk, which anti-aliases their edges.
_SUPERSAMPLE = 4
# A pixel belongs to the object's box when its coverage is at least this (of 255).
MASK_THRESHOLD = 64


def muted_colour(rng: np.random.Generator) -> tuple[float, float, float]:
    """A desaturated mid-tone: backgrounds never compete with the saturated objects."""
    hue = float(rng.random())
    saturation = 0.08 + 0.25 * float(rng.random())
    value = 0.42 + 0.3 * float(rng.random())
    return colorsys.hsv_to_rgb(hue, saturation, value)


def background(kind: str, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A textured background of ``kind`` (see ``config.BACKGROUNDS``), shape (height, width, 3)."""
    c1 = np.asarray(muted_colour(rng), dtype=np.float32)
    c2 = np.asarray(muted_colour(rng), dtype=np.float32)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    xs /= max(width - 1, 1)
    ys /= max(height - 1, 1)
    if kind == "plain":
        t = np.zeros((height, width), dtype=np.float32)
    elif kind == "gradient":
        angle = float(rng.random()) * 2 * math.pi
        proj = xs * math.cos(angle) + ys * math.sin(angle)
        t = (proj - proj.min()) / max(float(proj.max() - proj.min()), 1e-6)
    elif kind == "radial":
        cx, cy = float(rng.random()), float(rng.random())
        dist = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2)
        t = np.clip(dist / max(float(dist.max()), 1e-6), 0, 1)
    elif kind == "stripes":
        angle = float(rng.integers(0, 4)) * math.pi / 4
        period = float(rng.uniform(0.06, 0.16))
        proj = xs * math.cos(angle) + ys * math.sin(angle)
        t = ((proj / period) % 1.0 < 0.5).astype(np.float32) * 0.6
    elif kind == "checker":
        cells = int(rng.integers(6, 13))
        t = ((np.floor(xs * cells * 0.999) + np.floor(ys * cells * 0.999)) % 2).astype(np.float32) * 0.6
    elif kind == "noise":
        # smooth value noise: a coarse random grid enlarged with bicubic interpolation
        coarse = int(rng.integers(4, 9))
        grid = (rng.random((coarse, coarse)) * 255).astype(np.uint8)
        big = Image.fromarray(grid, mode="L").resize((width, height), Image.Resampling.BICUBIC)
        t = np.asarray(big, dtype=np.float32) / 255.0
    else:
        raise ValueError(f"unknown background {kind!r}")
    out = c1[None, None, :] * (1 - t[..., None]) + c2[None, None, :] * t[..., None]
    return out.astype(np.float32)


def _polygon(n: int, radius: float, centre: float, start: float, inner: float | None = None) -> list[tuple]:
    points = []
    steps = n * 2 if inner is not None else n
    for k in range(steps):
        r = radius if inner is None or k % 2 == 0 else radius * inner
        a = start + k * 2 * math.pi / steps
        points.append((centre + r * math.cos(a), centre + r * math.sin(a)))
    return points


def shape_mask(shape: str, side: int) -> np.ndarray:
    """Coverage (uint8, 0..255) of ``shape`` drawn to fill a ``side``×``side`` canvas."""
    if side < 4:
        raise ValueError(f"a shape needs at least 4 pixels, got {side}")
    big = side * _SUPERSAMPLE
    canvas = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(canvas)
    c = big / 2
    r = big / 2 - 1
    if shape == "circle":
        draw.ellipse((0, 0, big - 1, big - 1), fill=255)
    elif shape == "square":
        inset = big * 0.08
        draw.rectangle((inset, inset, big - 1 - inset, big - 1 - inset), fill=255)
    elif shape == "ring":
        draw.ellipse((0, 0, big - 1, big - 1), fill=255)
        hole = big * 0.28
        draw.ellipse((hole, hole, big - 1 - hole, big - 1 - hole), fill=0)
    elif shape == "triangle":
        draw.polygon([(c, 0), (big - 1, big - 1), (0, big - 1)], fill=255)
    elif shape == "diamond":
        draw.polygon([(c, 0), (big - 1, c), (c, big - 1), (0, c)], fill=255)
    elif shape == "hexagon":
        draw.polygon(_polygon(6, r, c, 0.0), fill=255)
    elif shape == "star":
        draw.polygon(_polygon(5, r, c, -math.pi / 2, inner=0.45), fill=255)
    elif shape == "cross":
        arm = big * 0.17
        draw.rectangle((c - arm, 0, c + arm, big - 1), fill=255)
        draw.rectangle((0, c - arm, big - 1, c + arm), fill=255)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    small = canvas.resize((side, side), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.uint8)


def tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Pixel corners (x1, y1, x2, y2), x2/y2 exclusive, of the mask's pixels at or above the threshold."""
    on = mask >= MASK_THRESHOLD
    rows = np.flatnonzero(on.any(axis=1))
    cols = np.flatnonzero(on.any(axis=0))
    if rows.size == 0:
        raise ValueError("the mask is empty")
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def paste(image: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int], x0: int, y0: int) -> None:
    """Alpha-blend a flat ``colour`` through ``mask`` onto ``image`` at (x0, y0), in place."""
    h, w = mask.shape
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    rgb = np.asarray(colour, dtype=np.float32)[None, None, :] / 255.0
    region = image[y0 : y0 + h, x0 : x0 + w]
    image[y0 : y0 + h, x0 : x0 + w] = region * (1 - alpha) + rgb * alpha


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
