"""Masks on the wire: run-length encoding (row-major, alternating 0s and 1s, starting with 0s) and decoding
either form the inference service returns into a boolean array an editing app can use directly."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from giqa.client.contract import Mask, Rle


def rle_encode(mask: np.ndarray) -> Rle:
    """Row-major run lengths of a boolean mask, alternating 0s and 1s, starting with (maybe zero) 0s."""
    flat = np.asarray(mask, dtype=bool).reshape(-1).astype(np.uint8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    edges = np.concatenate(([0], changes, [flat.size]))
    counts = np.diff(edges).tolist()
    if flat.size and flat[0] == 1:
        counts = [0, *counts]
    return Rle(size=[int(mask.shape[0]), int(mask.shape[1])], counts=[int(c) for c in counts])


def rle_decode(rle: Rle) -> np.ndarray:
    height, width = rle.size
    if sum(rle.counts) != height * width:
        raise ValueError(f"RLE counts sum to {sum(rle.counts)}, not {height}x{width}")
    values = np.zeros(height * width, dtype=bool)
    position, value = 0, False
    for count in rle.counts:
        values[position : position + count] = value
        position += count
        value = not value
    return values.reshape(height, width)


def decode_mask(mask: Mask) -> np.ndarray:
    """A returned mask (PNG or RLE) as a boolean (height, width) array, True inside the flagged regions."""
    if mask.format == "rle":
        if mask.rle is None:
            raise ValueError("an RLE mask without its rle field")
        return rle_decode(mask.rle)
    if not mask.png:
        raise ValueError("a PNG mask without its png field")
    with Image.open(io.BytesIO(base64.b64decode(mask.png))) as image:
        return np.asarray(image.convert("L")) > 127
