"""Normalized bounding boxes: the one box type every stage, metric and service shares.

A box is ``(x1, y1, x2, y2)`` in [0, 1], x to the right, y down, ``x1 <= x2`` and ``y1 <= y2``
(DESIGN §3.1). Pure Python and numpy; importable without torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np

# Floating error from pixel<->normalized round trips may push a coordinate a hair past an edge;
# anything further out is a real error.
_EDGE_TOLERANCE = 1e-9


class BoxError(ValueError):
    """A box that is not a valid normalized box (NaN, inverted, out of range, wrong length)."""


@dataclass(frozen=True, slots=True)
class Box:
    """A validated normalized box. Zero-area boxes (a line or a point) are allowed."""

    x1: float
    y1: float
    x2: float
    y2: float

    def __post_init__(self) -> None:
        values = (self.x1, self.y1, self.x2, self.y2)
        for name, value in zip(("x1", "y1", "x2", "y2"), values, strict=True):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
                raise BoxError(f"box {name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise BoxError(f"box {name} is not finite: {value!r}")
            if value < -_EDGE_TOLERANCE or value > 1 + _EDGE_TOLERANCE:
                raise BoxError(
                    f"box {name}={value!r} is outside [0, 1]; boxes are normalized to the image size"
                )
        if self.x1 > self.x2:
            raise BoxError(f"box is inverted: x1={self.x1!r} > x2={self.x2!r}")
        if self.y1 > self.y2:
            raise BoxError(f"box is inverted: y1={self.y1!r} > y2={self.y2!r}")
        # Store plain floats clamped into range so equality and JSON behave.
        for name, value in zip(("x1", "y1", "x2", "y2"), values, strict=True):
            object.__setattr__(self, name, float(min(1.0, max(0.0, float(value)))))

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2)

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)

    def as_list(self) -> list[float]:
        return [self.x1, self.y1, self.x2, self.y2]

    def to_pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        return to_pixels(self, width, height)

    @classmethod
    def from_pixels(
        cls,
        x1: float,
        y1: float,
        x2: float,
        y2: float,
        width: int,
        height: int,
        *,
        clip_to_image: bool = True,
    ) -> Box:
        return from_pixels((x1, y1, x2, y2), width, height, clip_to_image=clip_to_image)


BoxLike: TypeAlias = Box | Sequence[float] | np.ndarray


def as_box(value: Any) -> Box:
    """Coerce a :class:`Box`, an ``(x1, y1, x2, y2)`` sequence/array or a ``{"x1": ...}`` mapping."""
    if isinstance(value, Box):
        return value
    if isinstance(value, dict):
        try:
            return Box(value["x1"], value["y1"], value["x2"], value["y2"])
        except KeyError as exc:
            raise BoxError(f"box mapping lacks key {exc.args[0]!r}: {value!r}") from None
    if isinstance(value, (str, bytes)):
        raise BoxError(f"a box must be four numbers, got the string {value!r}")
    try:
        items = list(value)
    except TypeError:
        raise BoxError(f"a box must be four numbers, got {value!r}") from None
    if len(items) != 4:
        raise BoxError(f"a box must have exactly 4 coordinates (x1, y1, x2, y2), got {len(items)}: {value!r}")
    return Box(*(_number(v) for v in items))


def _number(value: Any) -> float:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BoxError(f"box coordinate must be a number, got {value!r}")
    return float(value)


def clip(value: Sequence[float]) -> Box:
    """Clamp raw coordinates into [0, 1] (e.g. a detector's slightly-out box). Order must already hold."""
    x1, y1, x2, y2 = (_number(v) for v in value)
    if any(not math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise BoxError(f"cannot clip a box with non-finite coordinates: {value!r}")
    return Box(*(min(1.0, max(0.0, v)) for v in (x1, y1, x2, y2)))


def area(box: BoxLike) -> float:
    return as_box(box).area


def intersection(a: BoxLike, b: BoxLike) -> Box | None:
    """The overlap of two boxes, or ``None`` when they are disjoint. Touching edges give a zero-area box."""
    a, b = as_box(a), as_box(b)
    x1, y1 = max(a.x1, b.x1), max(a.y1, b.y1)
    x2, y2 = min(a.x2, b.x2), min(a.y2, b.y2)
    if x1 > x2 or y1 > y2:
        return None
    return Box(x1, y1, x2, y2)


def intersection_area(a: BoxLike, b: BoxLike) -> float:
    inter = intersection(a, b)
    return 0.0 if inter is None else inter.area


def iou(a: BoxLike, b: BoxLike) -> float:
    """Intersection over union; 1.0 for two identical zero-area boxes, 0.0 when the union is empty."""
    a, b = as_box(a), as_box(b)
    inter = intersection_area(a, b)
    union_area = a.area + b.area - inter
    if union_area <= 0:
        return 1.0 if a == b else 0.0
    return inter / union_area


def coverage(a: BoxLike, b: BoxLike) -> float:
    """``area(a ∩ b) / area(a)``: how much of ``a`` lies inside ``b`` (Box-Merge's overlap term).

    A zero-area ``a`` is covered fully when it lies inside ``b`` (1.0) and not at all otherwise.
    """
    a, b = as_box(a), as_box(b)
    inter = intersection(a, b)
    if a.area <= 0:
        return 1.0 if inter is not None and inter == a else 0.0
    return 0.0 if inter is None else inter.area / a.area


def touches(a: BoxLike, b: BoxLike, *, tolerance: float = 1e-9) -> bool:
    """True when the boxes intersect or share an edge (Box-Merge's touch term)."""
    a, b = as_box(a), as_box(b)
    return (
        a.x1 <= b.x2 + tolerance
        and b.x1 <= a.x2 + tolerance
        and a.y1 <= b.y2 + tolerance
        and b.y1 <= a.y2 + tolerance
    )


def union(a: BoxLike, b: BoxLike) -> Box:
    """The smallest box holding both (the merge result of Box-Merge)."""
    a, b = as_box(a), as_box(b)
    return Box(min(a.x1, b.x1), min(a.y1, b.y1), max(a.x2, b.x2), max(a.y2, b.y2))


def union_all(boxes: Iterable[BoxLike]) -> Box:
    items = [as_box(b) for b in boxes]
    if not items:
        raise BoxError("union of no boxes")
    out = items[0]
    for item in items[1:]:
        out = union(out, item)
    return out


def from_pixels(value: Sequence[float], width: int, height: int, *, clip_to_image: bool = True) -> Box:
    """Pixel corners ``(x1, y1, x2, y2)`` of a ``width`` × ``height`` image to a normalized box."""
    if width <= 0 or height <= 0:
        raise BoxError(f"image size must be positive, got {width}x{height}")
    x1, y1, x2, y2 = (_number(v) for v in value)
    coords = (x1 / width, y1 / height, x2 / width, y2 / height)
    return clip(coords) if clip_to_image else Box(*coords)


def to_pixels(box: BoxLike, width: int, height: int) -> tuple[int, int, int, int]:
    """Normalized box to integer pixel corners (rounded), suitable for cropping ``image.crop(...)``."""
    if width <= 0 or height <= 0:
        raise BoxError(f"image size must be positive, got {width}x{height}")
    b = as_box(box)
    return (round(b.x1 * width), round(b.y1 * height), round(b.x2 * width), round(b.y2 * height))


def to_array(boxes: Iterable[BoxLike]) -> np.ndarray:
    """Boxes as a float64 array of shape (N, 4); (0, 4) when empty."""
    rows = [as_box(b).as_tuple() for b in boxes]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def iou_matrix(a: np.ndarray | Sequence[BoxLike], b: np.ndarray | Sequence[BoxLike]) -> np.ndarray:
    """Pairwise IoU, shape (N, M), for (N, 4) and (M, 4) arrays of normalized boxes."""
    a_arr = a if isinstance(a, np.ndarray) else to_array(a)
    b_arr = b if isinstance(b, np.ndarray) else to_array(b)
    if a_arr.size == 0 or b_arr.size == 0:
        return np.zeros((a_arr.reshape(-1, 4).shape[0], b_arr.reshape(-1, 4).shape[0]))
    ix1 = np.maximum(a_arr[:, None, 0], b_arr[None, :, 0])
    iy1 = np.maximum(a_arr[:, None, 1], b_arr[None, :, 1])
    ix2 = np.minimum(a_arr[:, None, 2], b_arr[None, :, 2])
    iy2 = np.minimum(a_arr[:, None, 3], b_arr[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (a_arr[:, 2] - a_arr[:, 0]) * (a_arr[:, 3] - a_arr[:, 1])
    area_b = (b_arr[:, 2] - b_arr[:, 0]) * (b_arr[:, 3] - b_arr[:, 1])
    union_area = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(union_area > 0, inter / np.where(union_area > 0, union_area, 1), 0.0)
    same = np.all(a_arr[:, None, :] == b_arr[None, :, :], axis=-1) & (union_area <= 0)
    return np.where(same, 1.0, out)
