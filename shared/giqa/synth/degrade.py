"""Degradations with a severity in [0, 1], applied to a rectangular region or to the whole image.

numpy only (no scipy or skimage) so the generator stays light and bit-for-bit reproducible. Each
function maps (image, region, severity, rng) to a new image; pixels outside the region never change.
``apply`` can then blend the degraded region into the original through a per-pixel weight, so a local
degradation follows an object's own shape with a soft edge instead of filling a rectangle (a cue real
photos never give); ``feather_weight`` turns an object's anti-aliased coverage into that weight.
Severity 0 changes nothing and 1 is the strongest effect; local degradations use roughly 0.35-1,
whole-image ones stay mild (about 0.1-0.3). Strengths are scaled to the image size so a 128-pixel and
a 512-pixel world look alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np

Region = tuple[int, int, int, int]  # pixel corners x1, y1, x2, y2 (exclusive)
_BLOCK = 8
_WEIGHT_FLOOR = 0.01

# The standard JPEG quantization tables (ITU T.81 Annex K), scaled per quality like libjpeg does.
_Q_LUMA = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.float64,
)
_Q_CHROMA = np.full((8, 8), 99.0)
_Q_CHROMA[:4, :4] = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]


def _dct_matrix(n: int = _BLOCK) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    mat = np.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    mat[0, :] = math.sqrt(1.0 / n)
    return mat


_DCT = _dct_matrix()


def scale_of(image: np.ndarray) -> float:
    """Image size relative to the 128-pixel default, so kernels grow with the picture."""
    return max(image.shape[0], image.shape[1]) / 128.0


def _ramp(severity: float) -> float:
    """1 from severity 0.35 up (the weakest local degradation), falling to 0 at severity 0."""
    return min(1.0, severity / 0.35)


def _window(image: np.ndarray, region: Region, margin: int) -> tuple[np.ndarray, Region]:
    """The region grown by ``margin`` pixels (clipped to the image) and its corners."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = region
    wx1, wy1, wx2, wy2 = max(0, x1 - margin), max(0, y1 - margin), min(w, x2 + margin), min(h, y2 + margin)
    return image[wy1:wy2, wx1:wx2], (wx1, wy1, wx2, wy2)


def _paste_back(image: np.ndarray, region: Region, window: np.ndarray, corners: Region) -> np.ndarray:
    """A copy of ``image`` whose ``region`` takes its pixels from the processed ``window``."""
    x1, y1, x2, y2 = region
    wx1, wy1 = corners[0], corners[1]
    out = image.copy()
    out[y1:y2, x1:x2] = window[y1 - wy1 : y2 - wy1, x1 - wx1 : x2 - wx1]
    return out


def _shift_average(window: np.ndarray, offsets: list[tuple[int, int]], weights: np.ndarray) -> np.ndarray:
    """Weighted sum of the window shifted by each (dx, dy), edges replicated."""
    pad = max(max(abs(dx), abs(dy)) for dx, dy in offsets)
    padded = np.pad(window, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    h, w = window.shape[:2]
    out = np.zeros_like(window)
    for (dx, dy), weight in zip(offsets, weights, strict=True):
        out += weight * padded[pad + dy : pad + dy + h, pad + dx : pad + dx + w]
    return out


def _gaussian_taps(sigma: float, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer offsets -radius..radius and their normalised Gaussian weights (float32)."""
    taps = np.arange(-radius, radius + 1)
    kernel = np.exp(-(taps**2) / (2 * sigma**2))
    return taps, (kernel / kernel.sum()).astype(np.float32)


@lru_cache(maxsize=256)
def _feather_band(n: int, feather: int) -> np.ndarray:
    """(n, n) matrix whose product with a column applies the feather's Gaussian, zero-padded (read-only:
    cached, as the same few region sizes come back scene after scene)."""
    _, kernel = _gaussian_taps(feather / 2.0, feather)
    offset = np.arange(n)[None, :] - np.arange(n)[:, None]
    band = np.where(
        np.abs(offset) <= feather, kernel.astype(np.float64)[np.clip(offset + feather, 0, 2 * feather)], 0.0
    )
    band.flags.writeable = False
    return band


def feather_weight(coverage: np.ndarray, feather: int) -> np.ndarray:
    """Blend weight in [0, 1] (float32, same shape) of a degradation that follows a shape's coverage.

    ``coverage`` is the anti-aliased shape (uint8 0..255 or float 0..1). It is blurred by a Gaussian of
    sigma ``feather / 2`` cut at ``feather`` pixels and doubled (decided): the shape's own edge (coverage
    one half) then gets the full weight, so its edge pixels are degraded like its inside, and the weight
    falls to zero within ``feather`` pixels past the last covered pixel. Beyond that it is exactly 0, and
    so is any weight under ``_WEIGHT_FLOOR`` (a blend too faint to see, at most 2.5 of 255 levels), so a
    box corner just within the Gaussian's reach of a round shape keeps its exact value.
    """
    if feather < 0:
        raise ValueError(f"feather must be >= 0 pixels, got {feather}")
    cov = coverage.astype(np.float32) / (255.0 if coverage.dtype == np.uint8 else 1.0)
    if feather == 0:
        return np.clip(cov, 0.0, 1.0)
    # the separable blur as two banded matrix products (zero outside the array): far cheaper than
    # shifting a small array around, and exactly 0 wherever no covered pixel is within reach
    rows_k, cols_k = _feather_band(cov.shape[0], feather), _feather_band(cov.shape[1], feather)
    both = rows_k @ cov.astype(np.float64) @ cols_k.T
    weight = np.clip(2.0 * both, 0.0, 1.0).astype(np.float32)
    weight[weight < _WEIGHT_FLOOR] = 0.0
    return weight


def gaussian_blur(image: np.ndarray, region: Region, severity: float, rng: np.random.Generator) -> np.ndarray:
    del rng  # deterministic
    # never under 1.2 pixels at full ramp: scaling with the image alone leaves a 64-pixel world's blur faint
    sigma = max(1.2, scale_of(image) * (0.8 + 2.4 * severity)) * _ramp(severity)
    if sigma < 0.05:
        return image.copy()
    radius = max(1, math.ceil(3 * sigma))
    taps, kernel = _gaussian_taps(sigma, radius)
    window, corners = _window(image, region, radius)
    rows = _shift_average(window, [(int(t), 0) for t in taps], kernel)
    both = _shift_average(rows, [(0, int(t)) for t in taps], kernel)
    return _paste_back(image, region, both, corners)


def motion_blur(image: np.ndarray, region: Region, severity: float, rng: np.random.Generator) -> np.ndarray:
    length = round(max(5.0, scale_of(image) * (5 + 11 * severity)) * _ramp(severity))
    if length < 2:
        return image.copy()
    angle = float(rng.integers(0, 4)) * math.pi / 4
    half = (length - 1) / 2
    offsets = sorted(
        {(round(t * math.cos(angle)), round(t * math.sin(angle))) for t in np.linspace(-half, half, length)}
    )
    weights = np.full(len(offsets), 1.0 / len(offsets), dtype=np.float32)
    window, corners = _window(image, region, math.ceil(half) + 1)
    return _paste_back(image, region, _shift_average(window, offsets, weights), corners)


def noise(image: np.ndarray, region: Region, severity: float, rng: np.random.Generator) -> np.ndarray:
    x1, y1, x2, y2 = region
    sigma = 0.22 * severity
    grain = rng.standard_normal((y2 - y1, x2 - x1, 3)).astype(np.float32) * sigma
    out = image.copy()
    out[y1:y2, x1:x2] = np.clip(out[y1:y2, x1:x2] + grain, 0.0, 1.0)
    return out


def low_light(image: np.ndarray, region: Region, severity: float, rng: np.random.Generator) -> np.ndarray:
    del rng
    x1, y1, x2, y2 = region
    gain = 1.0 - 0.85 * severity
    out = image.copy()
    # a gamma above 1 darkens mid-tones more than a plain gain, like an under-exposed sensor
    out[y1:y2, x1:x2] = np.power(out[y1:y2, x1:x2], 1.0 + 0.5 * severity) * gain
    return out


def overexposure(image: np.ndarray, region: Region, severity: float, rng: np.random.Generator) -> np.ndarray:
    del rng
    x1, y1, x2, y2 = region
    gain = 1.0 + 2.0 * severity
    lift = 0.37 * severity
    out = image.copy()
    out[y1:y2, x1:x2] = np.clip(out[y1:y2, x1:x2] * gain + lift, 0.0, 1.0)
    return out


def low_contrast(image: np.ndarray, region: Region, severity: float, rng: np.random.Generator) -> np.ndarray:
    del rng
    x1, y1, x2, y2 = region
    out = image.copy()
    patch = out[y1:y2, x1:x2]
    mean = patch.reshape(-1, 3).mean(axis=0)
    keep = 1.0 - 0.95 * severity**0.7
    # pull every pixel toward a hazy grey-ish mean: detail and colour both fade
    target = 0.7 * mean + 0.3 * float(mean.mean())
    out[y1:y2, x1:x2] = target + (patch - target) * keep
    return out


def _quant_table(base: np.ndarray, quality: int) -> np.ndarray:
    quality = min(100, max(1, quality))
    scale = 5000.0 / quality if quality < 50 else 200.0 - 2.0 * quality
    return np.clip(np.floor((base * scale + 50.0) / 100.0), 1.0, 255.0)


def jpeg_blocks(image: np.ndarray, region: Region, severity: float, rng: np.random.Generator) -> np.ndarray:
    """JPEG-style 8×8 DCT quantization in YCbCr, blocks aligned to the region's top-left corner."""
    del rng
    x1, y1, x2, y2 = region
    quality = round(22 - 20 * severity)
    h, w = y2 - y1, x2 - x1
    ph, pw = math.ceil(h / _BLOCK) * _BLOCK, math.ceil(w / _BLOCK) * _BLOCK
    patch = np.pad(image[y1:y2, x1:x2].astype(np.float64), ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
    rgb = patch * 255.0
    ycc = np.stack(
        [
            0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2] - 128.0,
            -0.168736 * rgb[..., 0] - 0.331264 * rgb[..., 1] + 0.5 * rgb[..., 2],
            0.5 * rgb[..., 0] - 0.418688 * rgb[..., 1] - 0.081312 * rgb[..., 2],
        ],
        axis=-1,
    )
    out = np.empty_like(ycc)
    for c, base in enumerate((_Q_LUMA, _Q_CHROMA, _Q_CHROMA)):
        q = _quant_table(base, quality)
        blocks = ycc[..., c].reshape(ph // _BLOCK, _BLOCK, pw // _BLOCK, _BLOCK).transpose(0, 2, 1, 3)
        coeffs = _DCT @ blocks @ _DCT.T
        coeffs = np.round(coeffs / q) * q
        back = _DCT.T @ coeffs @ _DCT
        out[..., c] = back.transpose(0, 2, 1, 3).reshape(ph, pw)
    y, cb, cr = out[..., 0] + 128.0, out[..., 1], out[..., 2]
    rgb_out = np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], axis=-1) / 255.0
    result = image.copy()
    result[y1:y2, x1:x2] = np.clip(rgb_out[:h, :w], 0.0, 1.0).astype(image.dtype)
    return result


DegradeFn = Callable[[np.ndarray, Region, float, np.random.Generator], np.ndarray]

DEGRADERS: dict[str, DegradeFn] = {
    "blur": gaussian_blur,
    "motion_blur": motion_blur,
    "noise": noise,
    "low_light": low_light,
    "overexposure": overexposure,
    "jpeg": jpeg_blocks,
    "low_contrast": low_contrast,
}

# Degradations that make sense together on one object, in the order they are applied.
COMPATIBLE_PAIRS: tuple[tuple[str, str], ...] = (
    ("low_light", "noise"),
    ("blur", "low_contrast"),
    ("overexposure", "low_contrast"),
    ("motion_blur", "low_light"),
)


def apply(
    image: np.ndarray,
    kind: str,
    region: Region,
    severity: float,
    rng: np.random.Generator,
    weight: np.ndarray | None = None,
) -> np.ndarray:
    """``image`` with ``kind`` applied to ``region``; with ``weight`` (the region's shape, values in
    [0, 1]) the degraded region is blended into the original pixel by pixel, and pixels of weight 0
    keep their exact value."""
    if kind not in DEGRADERS:
        raise ValueError(f"unknown degradation {kind!r}; expected one of {sorted(DEGRADERS)}")
    if not 0.0 <= severity <= 1.0:
        raise ValueError(f"severity must lie in [0, 1], got {severity}")
    x1, y1, x2, y2 = region
    h, w = image.shape[:2]
    if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
        raise ValueError(f"region {region} is empty or outside the {w}x{h} image")
    if weight is not None:
        if weight.shape != (y2 - y1, x2 - x1):
            raise ValueError(f"weight has shape {weight.shape}, the region needs {(y2 - y1, x2 - x1)}")
        if not (np.all(weight >= 0.0) and np.all(weight <= 1.0)):
            raise ValueError("weight values must lie in [0, 1]")
    if severity == 0.0:
        return image.copy()
    out = DEGRADERS[kind](image, region, severity, rng)
    if weight is None:
        return out
    # the whole region is degraded as without a weight (same random draws), then only blended in
    src = image[y1:y2, x1:x2]
    alpha = weight.astype(image.dtype)[..., None]
    out[y1:y2, x1:x2] = np.where(alpha > 0, src + alpha * (out[y1:y2, x1:x2] - src), src)
    return out
