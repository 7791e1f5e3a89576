"""Measurements of a box for the classical quality judge (:mod:`giqa.backends.classical`).

All on the grayscale crop in [0, 1] (plus colour where it says so), numpy and scikit-image only:

- sharpness: ``skimage.measure.blur_effect`` (0 sharp … 1 blurry), log variance of the Laplacian, the weakest
  of the four directional mean steps and their spread (motion blur flattens one direction);
- noise: ``skimage.restoration.estimate_sigma`` (wavelet sigma) and the median absolute Laplacian;
- exposure: mean, 10th/90th percentiles, fractions below 0.05 and above 0.95;
- contrast and colour: RMS contrast, 98–2 percentile range, colour spread, saturation;
- JPEG blocking: median step on the 8-pixel grid over the median step off it, and the share of ~zero 8×8 DCT
  AC coefficients at the best block alignment over the median alignment;
- pixelation: the share of neighbouring pixel pairs that are exactly equal away from clipping (a
  down/up-sampled region repeats every pixel; a photo's own grain almost never does);
- context: ``rel_*`` = the crop's statistic minus the same statistic on a ring of surroundings (past a guard
  band), which is how a description singles one object out ("darker than the rest").

The crop is the box plus a thin margin (:func:`grow`) so a flat object's own edges are inside it.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from PIL import Image

from giqa.backends.images import crop
from giqa.boxes import Box, BoxLike, as_box

MIN_SIDE = 8  # crops are grown to at least this many pixels; measurements need a neighbourhood


def _gray(image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    return rgb @ np.array([0.299, 0.587, 0.114]), rgb


def _blockiness(gray: np.ndarray, block: int = 8) -> float:
    """How much more the image jumps across one 8-pixel grid than elsewhere (≈1 when there are no blocks).

    Per column (row), the mean absolute step to the next one; at each of the 8 alignments the MEDIAN step
    on the grid lines is compared with the median step off them. Medians ignore the few columns an object's
    own edge crosses; JPEG blocking raises every grid line. The alignment that shows it most is taken,
    since a crop need not start on the block grid.
    """

    def axis_ratio(steps: np.ndarray) -> float:
        if steps.size < 2 * block:
            return 1.0
        eps = 2e-3
        best = 1.0
        for k in range(block):
            on = np.zeros(steps.size, dtype=bool)
            on[k::block] = True
            best = max(best, (float(np.median(steps[on])) + eps) / (float(np.median(steps[~on])) + eps))
        return best

    cols = np.abs(np.diff(gray, axis=1)).mean(axis=0)
    rows = np.abs(np.diff(gray, axis=0)).mean(axis=1)
    return float(math.sqrt(axis_ratio(cols) * axis_ratio(rows)))


def _dct_basis(n: int = 8) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    basis = np.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    basis[0] /= math.sqrt(2)
    return basis


_DCT8 = _dct_basis()


def _dct_grid(gray: np.ndarray, block: int = 8) -> float:
    """Share of 8×8 DCT AC coefficients that are ~0 at the best block alignment, minus the median alignment.

    Heavy JPEG quantization zeroes most AC coefficients of the blocks it was applied on, and only at that
    alignment; elsewhere its block edges add high frequencies. Clean content shows no preferred alignment.
    """
    luma = gray * 255.0
    h, w = luma.shape
    shares = []
    for dy in range(block):
        for dx in range(block):
            hh, ww = (h - dy) // block * block, (w - dx) // block * block
            if hh < block or ww < block:
                continue
            tiles = luma[dy : dy + hh, dx : dx + ww].reshape(hh // block, block, ww // block, block)
            coeffs = _DCT8 @ tiles.transpose(0, 2, 1, 3) @ _DCT8.T
            shares.append(float((np.abs(coeffs.reshape(-1, block * block)[:, 1:]) < 1.5).mean()))
    if not shares:
        return 0.0
    return float(max(shares) - np.median(shares))


def _directional(gray: np.ndarray) -> np.ndarray:
    """Mean absolute step along 0°, 45°, 90° and 135° (motion blur flattens one of them)."""
    if min(gray.shape) < 2:
        return np.full(4, 1e-4)
    return (
        np.array(
            [
                np.abs(gray[:, 1:] - gray[:, :-1]).mean(),
                np.abs(gray[1:, 1:] - gray[:-1, :-1]).mean() / math.sqrt(2),
                np.abs(gray[1:, :] - gray[:-1, :]).mean(),
                np.abs(gray[1:, :-1] - gray[:-1, 1:]).mean() / math.sqrt(2),
            ]
        )
        + 1e-4
    )


def _laplacian(gray: np.ndarray) -> np.ndarray:
    return gray[1:-1, :-2] + gray[1:-1, 2:] + gray[:-2, 1:-1] + gray[2:, 1:-1] - 4.0 * gray[1:-1, 1:-1]


def _flat_pairs(rgb: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Share of horizontal and vertical neighbour pairs with identical colour, among unclipped pixels.

    Clipped pixels (black or white) are left out: a blown-out sky repeats too, but that is exposure.
    """
    quantized = np.round(rgb * 255.0).astype(np.int16)
    gray = quantized.mean(axis=-1)
    valid = (gray > 5) & (gray < 250)
    if mask is not None:
        valid &= mask
    shares = []
    for a, b, va, vb in (
        (quantized[:, 1:], quantized[:, :-1], valid[:, 1:], valid[:, :-1]),
        (quantized[1:, :], quantized[:-1, :], valid[1:, :], valid[:-1, :]),
    ):
        both = va & vb
        if both.sum() >= 8:
            shares.append(float(np.all(a == b, axis=-1)[both].mean()))
    return float(np.mean(shares)) if shares else 0.0


def _saturation(rgb: np.ndarray) -> float:
    top, low = rgb.max(axis=-1), rgb.min(axis=-1)
    return float(np.mean((top - low) / np.maximum(top, 1e-3)))


def _robust_noise(lap: np.ndarray) -> float:
    # median absolute Laplacian: ignores the few edge pixels, follows grain that covers every pixel
    return math.log(float(np.median(np.abs(lap))) + 1e-4) if lap.size else math.log(1e-4)


def _wavelet_sigma(gray: np.ndarray, estimate_sigma: Any) -> float:
    # scikit-image warns and returns NaN on crops too thin for a wavelet level; treat that as no noise
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sigma = float(estimate_sigma(gray))
    return sigma if math.isfinite(sigma) else 0.0


def measure_crop(patch: Image.Image) -> dict[str, float]:
    """Measurements of one crop alone (a PIL image)."""
    from skimage.measure import blur_effect
    from skimage.restoration import estimate_sigma

    gray, rgb = _gray(patch)
    lap = _laplacian(gray)
    h_size = max(3, min(11, min(gray.shape) // 2 * 2 - 1))
    steps = _directional(gray)
    return {
        "log_anisotropy": math.log(float(steps.max() / steps.min())),
        "log_min_step": math.log(float(steps.min())),
        "blur_effect": float(blur_effect(gray, h_size=h_size)),
        "log_lap_var": math.log(float(lap.var()) + 1e-6) if lap.size else math.log(1e-6),
        "log_sigma": math.log(_wavelet_sigma(gray, estimate_sigma) + 1e-4),
        "log_noise": _robust_noise(lap),
        "mean": float(gray.mean()),
        "p10": float(np.percentile(gray, 10)),
        "p90": float(np.percentile(gray, 90)),
        "clip_low": float((gray < 0.05).mean()),
        "clip_high": float((gray > 0.95).mean()),
        "log_rms": math.log(float(gray.std()) + 1e-3),
        "log_colour_spread": math.log(float(rgb.reshape(-1, 3).std(axis=0).mean()) + 1e-3),
        "saturation": _saturation(rgb),
        "range": float(np.percentile(gray, 98) - np.percentile(gray, 2)),
        "log_blockiness": math.log(_blockiness(gray)),
        "dct_grid": _dct_grid(gray),
        "flat_pairs": _flat_pairs(rgb),
    }


def grow(image: Image.Image, box: BoxLike) -> Box:
    """The box plus a thin margin (6% of its longer side, at least 2 px), so a flat object's own edges
    are inside the crop: a tight crop of a square holds no edge at all and reads as "blurry"."""
    width, height = image.size
    b = as_box(box)
    margin = max(2.0, 0.06 * max(b.width * width, b.height * height))
    mx, my = margin / width, margin / height
    return Box(max(0.0, b.x1 - mx), max(0.0, b.y1 - my), min(1.0, b.x2 + mx), min(1.0, b.y2 + my))


# Statistics compared between the crop and its surroundings (the "rel_" features).
RELATIVE = (
    "mean",
    "log_rms",
    "log_lap_var",
    "log_noise",
    "log_colour_spread",
    "saturation",
    "log_min_step",
    "log_blockiness",
    "dct_grid",
    "flat_pairs",
)


def _strip_stats(gray: np.ndarray, strips: list[tuple[int, int, int, int]]) -> dict[str, float]:
    """Block statistics of the ring, from its rectangular strips (they need whole rows and columns).

    Area-weighted over the strips that are at least 8 px thick; 0-blocking values when none is.
    """
    total, block, dct = 0.0, 0.0, 0.0
    for y1, y2, x1, x2 in strips:
        part = gray[y1:y2, x1:x2]
        if min(part.shape) < 8:
            continue
        area = float(part.size)
        total += area
        block += area * math.log(_blockiness(part))
        dct += area * _dct_grid(part)
    if total == 0.0:
        return {"log_blockiness": 0.0, "dct_grid": 0.0}
    return {"log_blockiness": block / total, "dct_grid": dct / total}


def _context(image: Image.Image, box: BoxLike) -> dict[str, float] | None:
    """The RELATIVE statistics on a ring of surroundings: from a guard band outside the box outwards.

    The guard skips the few pixels a local defect spills past an object's edge; None when the box leaves
    no ring (it fills the image).
    """
    width, height = image.size
    x1, y1, x2, y2 = as_box(box).to_pixels(width, height)
    guard = max(4, round(0.03 * max(width, height)))
    ring = max(6, round(0.25 * max(x2 - x1, y2 - y1)))
    wx1, wy1 = max(0, x1 - guard - ring), max(0, y1 - guard - ring)
    wx2, wy2 = min(width, x2 + guard + ring), min(height, y2 + guard + ring)
    gray, rgb = _gray(image.crop((wx1, wy1, wx2, wy2)))
    mask = np.ones(gray.shape, dtype=bool)
    mask[max(0, y1 - guard - wy1) : y2 + guard - wy1, max(0, x1 - guard - wx1) : x2 + guard - wx1] = False
    if mask.sum() < 32:
        return None
    lap = _laplacian(gray)
    lap_mask = mask[1:-1, 1:-1]
    values = gray[mask]
    ring_lap = lap[lap_mask]
    # the ring as four strips: above and below the guarded box (full width), left and right of it
    gy1, gy2 = max(0, y1 - guard - wy1), min(gray.shape[0], y2 + guard - wy1)
    gx1, gx2 = max(0, x1 - guard - wx1), min(gray.shape[1], x2 + guard - wx1)
    strips = [
        (0, gy1, 0, gray.shape[1]),
        (gy2, gray.shape[0], 0, gray.shape[1]),
        (gy1, gy2, 0, gx1),
        (gy1, gy2, gx2, gray.shape[1]),
    ]
    return {
        **_strip_stats(gray, strips),
        "flat_pairs": _flat_pairs(rgb, mask),
        "mean": float(values.mean()),
        "log_rms": math.log(float(values.std()) + 1e-3),
        "log_lap_var": math.log(float(ring_lap.var()) + 1e-6) if ring_lap.size else math.log(1e-6),
        "log_noise": _robust_noise(ring_lap),
        "log_colour_spread": math.log(float(rgb[mask].std(axis=0).mean()) + 1e-3),
        "saturation": _saturation(rgb[mask]),
        "log_min_step": math.log(float(_directional(gray).min())),
    }


def measure(image: Image.Image, box: BoxLike) -> dict[str, float]:
    """Every measurement the judge uses for the box of ``image``: the crop's own, and relative to its ring.

    Relative features say "darker / softer / grainier than what surrounds it", which is how a description
    singles one object out; with no ring (a box filling the image) they are 0.
    """
    values = measure_crop(crop(image, grow(image, box), MIN_SIDE))
    context = _context(image, box)
    for name in RELATIVE:
        values[f"rel_{name}"] = 0.0 if context is None else values[name] - context[name]
    return values


# Every class's curve sees every measurement: the calibration decides what matters for which word.
ALL_FEATURES: tuple[str, ...] = (
    "blur_effect",
    "log_anisotropy",
    "log_min_step",
    "log_lap_var",
    "log_sigma",
    "log_noise",
    "mean",
    "p10",
    "p90",
    "clip_low",
    "clip_high",
    "log_rms",
    "log_colour_spread",
    "saturation",
    "range",
    "log_blockiness",
    "dct_grid",
    "flat_pairs",
    *(f"rel_{name}" for name in RELATIVE),
)
