"""The discrete n×m grid that turns boxes into two cell indices (paper Eq. 1–2, DESIGN §3.1).

``col = min(floor(x*n), n-1)``, ``row = min(floor(y*m), m-1)``, ``idx = row*n + col``; a box is
``<idx_l, idx_r>`` from its (x1, y1) and (x2, y2) corners, decoded back to the cell centres.
The normalized alternative (the paper's Norm-Coord) writes the four coordinates with two decimals.
"""

from __future__ import annotations

import math

from giqa.boxes import Box, BoxError, BoxLike, as_box

DEFAULT_N = 20
DEFAULT_M = 20


class GridError(ValueError):
    """A cell index or grid size that does not fit the grid."""


def _check_grid(n: int, m: int) -> None:
    if not (isinstance(n, int) and isinstance(m, int)) or n < 1 or m < 1:
        raise GridError(f"grid size must be positive integers, got n={n!r}, m={m!r}")


def cell_of(x: float, y: float, n: int = DEFAULT_N, m: int = DEFAULT_M) -> int:
    """Index of the cell holding the point (x, y); 1.0 falls into the last column/row."""
    _check_grid(n, m)
    col = min(math.floor(x * n), n - 1)
    row = min(math.floor(y * m), m - 1)
    return row * n + col


def cell_center(idx: int, n: int = DEFAULT_N, m: int = DEFAULT_M) -> tuple[float, float]:
    _check_grid(n, m)
    if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx < n * m:
        raise GridError(f"cell index {idx!r} is outside the {n}x{m} grid (0..{n * m - 1})")
    return ((idx % n + 0.5) / n, (idx // n + 0.5) / m)


def encode_box(box: BoxLike, n: int = DEFAULT_N, m: int = DEFAULT_M) -> tuple[int, int]:
    """A normalized box to ``(idx_l, idx_r)``. Raises :class:`~giqa.boxes.BoxError` on an invalid box."""
    b = as_box(box)
    return cell_of(b.x1, b.y1, n, m), cell_of(b.x2, b.y2, n, m)


def decode_box(idx_l: int, idx_r: int, n: int = DEFAULT_N, m: int = DEFAULT_M) -> Box:
    """``<idx_l, idx_r>`` back to the box between the two cell centres.

    A pair whose corners come out crossed (a model writing the bottom-right cell first) is decoded to
    the box those two cells span rather than refused: model output is read leniently (DESIGN §3.2).
    """
    (ax, ay), (bx, by) = cell_center(idx_l, n, m), cell_center(idx_r, n, m)
    return Box(min(ax, bx), min(ay, by), max(ax, bx), max(ay, by))


def quantize(box: BoxLike, n: int = DEFAULT_N, m: int = DEFAULT_M) -> Box:
    """What a box becomes after a round trip through the grid."""
    return decode_box(*encode_box(box, n, m), n=n, m=m)


def format_grid(idx_l: int, idx_r: int) -> str:
    return f"<{idx_l}, {idx_r}>"


def format_norm(box: BoxLike) -> str:
    """The normalized text form ``<x1, y1, x2, y2>`` with two decimals."""
    b = round_norm(box)
    return f"<{b.x1:.2f}, {b.y1:.2f}, {b.x2:.2f}, {b.y2:.2f}>"


def round_norm(box: BoxLike) -> Box:
    """What a box becomes after a round trip through the two-decimal normalized form."""
    b = as_box(box)
    try:
        return Box(*(round(v, 2) for v in b.as_tuple()))
    except BoxError as exc:  # pragma: no cover - rounding cannot invert a valid box
        raise GridError(str(exc)) from exc


def max_error(n: int = DEFAULT_N, m: int = DEFAULT_M) -> tuple[float, float]:
    """Largest per-coordinate error of a grid round trip: half a cell in x and in y."""
    _check_grid(n, m)
    return (0.5 / n, 0.5 / m)
