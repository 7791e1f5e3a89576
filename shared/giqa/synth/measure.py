"""Image statistics that tell a degraded region from its clean render (numpy only).

The generator uses them to make sure every degradation it claims is really visible; tests use them
(next to scikit-image's measures) to check that claim independently of the generator's parameters.
Every statistic takes an optional boolean ``mask`` of the image's shape: a local degradation follows its
object's shape, so its visibility is measured on the object's pixels, not on the background of its box.
Filters (Laplacian, pixel differences) still see the whole array, so an edge on the mask's rim counts.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# Minimum change for a degradation to count as visible, per kind (statistic, direction, amount).
# "ratio" amounts compare degraded/clean; "delta" amounts compare degraded-clean in [0, 1] units.
_RULES: dict[str, tuple[str, str, float]] = {
    "blur": ("sharpness", "ratio_below", 0.5),
    "motion_blur": ("sharpness", "ratio_below", 0.5),
    "noise": ("noise", "delta_above", 0.02),
    "low_light": ("luminance", "delta_below", -0.06),
    "overexposure": ("luminance", "delta_above", 0.06),
    "low_contrast": ("contrast", "ratio_below", 0.75),
    "jpeg": ("blockiness", "ratio_above", 1.25),
}


def luminance(image: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of an (H, W, 3) image in [0, 1] (uint8 input is rescaled)."""
    img = image.astype(np.float64)
    if image.dtype == np.uint8:
        img /= 255.0
    return 0.299 * img[..., 0] + 0.587 * img[..., 1] + 0.114 * img[..., 2]


Mask = np.ndarray | None


def _inner(mask: Mask, shape: tuple[int, ...]) -> np.ndarray:
    """The mask cut to a filter output of ``shape`` centred in it (all True without a mask)."""
    if mask is None:
        return np.ones(shape, dtype=bool)
    dy, dx = (mask.shape[0] - shape[0]) // 2, (mask.shape[1] - shape[1]) // 2
    return mask[dy : dy + shape[0], dx : dx + shape[1]]


def _laplacian(plane: np.ndarray) -> np.ndarray:
    return plane[1:-1, :-2] + plane[1:-1, 2:] + plane[:-2, 1:-1] + plane[2:, 1:-1] - 4.0 * plane[1:-1, 1:-1]


def _channels(image: np.ndarray) -> list[np.ndarray]:
    img = image.astype(np.float64) / (255.0 if image.dtype == np.uint8 else 1.0)
    return [img[..., c] for c in range(img.shape[-1])]


def sharpness(image: np.ndarray, mask: Mask = None) -> float:
    """Variance of the Laplacian, averaged over the colour channels (an orange shape on a background
    of the same brightness has edges only in colour): falls when edges soften."""
    values = []
    for c in _channels(image):
        if min(c.shape) > 2:
            lap = _laplacian(c)
            picked = lap[_inner(mask, lap.shape)]
            if picked.size:
                values.append(float(picked.var()))
    return float(np.mean(values)) if values else 0.0


def noise_level(image: np.ndarray, mask: Mask = None) -> float:
    """Robust noise sigma: median absolute Laplacian, blind to the few edge pixels of a flat shape."""
    lap = _laplacian(luminance(image)) if min(image.shape[:2]) > 2 else np.zeros((0, 0))
    picked = lap[_inner(mask, lap.shape)]
    return float(np.median(np.abs(picked)) / 0.6745 / np.sqrt(20.0)) if picked.size else 0.0


def mean_luminance(image: np.ndarray, mask: Mask = None) -> float:
    picked = luminance(image)[_inner(mask, image.shape[:2])]
    return float(picked.mean()) if picked.size else 0.0


def contrast(image: np.ndarray, mask: Mask = None) -> float:
    """RMS contrast plus colour spread: both fall when a region is hazed."""
    img = image.astype(np.float64) / (255.0 if image.dtype == np.uint8 else 1.0)
    keep = _inner(mask, image.shape[:2])
    if not keep.any():
        return 0.0
    return float(luminance(image)[keep].std() + img[keep].std(axis=0).mean())


def blockiness(image: np.ndarray, block: int = 8, mask: Mask = None) -> float:
    """Mean jump across 8-pixel block borders over the mean jump inside blocks (1 ≈ no blocking).

    Blocks are counted from the array's top-left corner, as the degradation aligns them to its region.
    With a mask, a jump counts when either of its two pixels lies in the mask.
    """
    luma = luminance(image)
    keep = _inner(mask, luma.shape)
    dx = np.abs(np.diff(luma, axis=1))
    dy = np.abs(np.diff(luma, axis=0))
    kx, ky = keep[:, :-1] | keep[:, 1:], keep[:-1, :] | keep[1:, :]
    border_x = np.broadcast_to((np.arange(dx.shape[1]) % block) == block - 1, dx.shape)
    border_y = np.broadcast_to(((np.arange(dy.shape[0]) % block) == block - 1)[:, None], dy.shape)
    across = np.concatenate([dx[border_x & kx], dy[border_y & ky]])
    inside = np.concatenate([dx[~border_x & kx], dy[~border_y & ky]])
    if across.size == 0 or inside.size == 0:
        return 1.0
    return float((across.mean() + 1e-4) / (inside.mean() + 1e-4))


STATISTICS: dict[str, Callable[..., float]] = {
    "sharpness": sharpness,
    "noise": noise_level,
    "luminance": mean_luminance,
    "contrast": contrast,
    "blockiness": blockiness,
}


def change(kind: str, clean: np.ndarray, degraded: np.ndarray, mask: Mask = None) -> tuple[str, float, float]:
    """(statistic name, value on clean, value on degraded) for the statistic that ``kind`` moves,
    measured on the pixels of ``mask`` (all of them without one)."""
    stat, _, _ = _RULES[kind]
    if mask is not None and mask.shape != clean.shape[:2]:
        raise ValueError(f"mask has shape {mask.shape}, the image is {clean.shape[:2]}")
    fn = STATISTICS[stat]
    return stat, fn(clean, mask=mask), fn(degraded, mask=mask)


def is_visible(kind: str, clean: np.ndarray, degraded: np.ndarray, mask: Mask = None) -> bool:
    """Whether ``degraded`` differs from ``clean`` the way ``kind`` should, by a clear margin
    (inside ``mask`` when one is given)."""
    _, direction, amount = _RULES[kind]
    _, before, after = change(kind, clean, degraded, mask)
    if direction == "ratio_below":
        # a region without edges or texture cannot show a blur: that is "not visible", not a pass
        return before > 1e-4 and after < amount * before
    if direction == "ratio_above":
        return after > amount * max(before, 1e-9)
    if direction == "delta_above":
        return after - before > amount
    return after - before < amount
