"""Scene layout and rendering: which objects, where, and which of them are degraded how.

Everything derives from ``(seed, index)`` through named random streams, so a scene is the same whatever
order scenes are made in, and the layout, the pixels and the words draw from separate streams.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from giqa.synth import degrade, measure
from giqa.synth.config import COLOURS, SIZES, SynthConfig
from giqa.synth.draw import background, paste, shape_mask, tight_box, to_uint8

# Global degradations stay off the sharpness axis so "the blue square is sharp" stays true of clean objects.
GLOBAL_KINDS: tuple[str, ...] = ("noise", "low_light", "overexposure", "low_contrast")
GLOBAL_SEVERITY = (0.08, 0.22)
# Degradations that would hardly show on an object of this colour.
_POOR_MATCHES: dict[str, frozenset[str]] = {
    "low_light": frozenset({"black", "purple", "blue"}),
    "overexposure": frozenset({"white", "yellow"}),
}
_PLACEMENT_TRIES = 80


def rng_for(seed: int, index: int, *labels: object) -> np.random.Generator:
    """A random stream that depends only on (seed, index, labels)."""
    key = ":".join(str(part) for part in (seed, index, *labels)).encode()
    digest = hashlib.sha256(key).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest[:16], "big")))


def region_pad(width: int, height: int) -> int:
    """How far a local degradation reaches past the object's box: a thin ring of background."""
    return max(2, round(0.025 * max(width, height)))


def degradation_region(
    box_px: list[int] | tuple[int, ...], width: int, height: int
) -> tuple[int, int, int, int]:
    """The pixel rectangle a local degradation of an object with ``box_px`` may change; inside it only
    the object and a feathered rim (see :func:`object_weight`) actually do."""
    pad = region_pad(width, height)
    x1, y1, x2, y2 = box_px
    return max(0, x1 - pad), max(0, y1 - pad), min(width, x2 + pad), min(height, y2 + pad)


def feather_px(width: int, height: int) -> int:
    """How many pixels a local degradation fades over past the object's edge (decided: about 1.2% of the
    image side, 2 px at 128), always inside the region's pad so the fade never meets the rectangle."""
    return max(1, min(round(0.012 * max(width, height)), region_pad(width, height) - 1))


@dataclass
class PlannedObject:
    id: int
    shape: str
    colour: str
    size: str
    side: int
    x0: int
    y0: int
    mask: np.ndarray
    box_px: tuple[int, int, int, int]
    role: str = "clean"
    degradations: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class ScenePlan:
    seed: int
    index: int
    width: int
    height: int
    background: str
    objects: list[PlannedObject]
    global_degradations: list[tuple[str, float]]
    hard_case: bool


# A pixel whose blend weight reaches this is "on the object" when visibility is measured.
MEASURE_WEIGHT = 0.5


def object_weight(obj: PlannedObject, width: int, height: int) -> tuple[degrade.Region, np.ndarray]:
    """The object's degradation region and the blend weight (float32, region-shaped, in [0, 1]) that
    makes a local degradation follow the object's drawn shape with a soft edge."""
    region = degradation_region(obj.box_px, width, height)
    x1, y1, x2, y2 = region
    coverage = np.zeros((y2 - y1, x2 - x1), dtype=np.uint8)
    side = obj.mask.shape[0]
    # the drawn canvas clipped to the region: only faint anti-aliasing ever falls outside it
    cx1, cy1 = max(obj.x0, x1), max(obj.y0, y1)
    cx2, cy2 = min(obj.x0 + side, x2), min(obj.y0 + side, y2)
    coverage[cy1 - y1 : cy2 - y1, cx1 - x1 : cx2 - x1] = obj.mask[
        cy1 - obj.y0 : cy2 - obj.y0, cx1 - obj.x0 : cx2 - obj.x0
    ]
    return region, degrade.feather_weight(coverage, feather_px(width, height))


def _draw_side(size: str, config: SynthConfig, rng: np.random.Generator) -> int:
    lo, hi = SIZES[size]
    return max(8, round(float(rng.uniform(lo, hi)) * min(config.width, config.height)))


def _place(
    side: int,
    shape: str,
    config: SynthConfig,
    taken: list[tuple[int, int, int, int]],
    rng: np.random.Generator,
) -> tuple[int, int, np.ndarray, tuple[int, int, int, int]] | None:
    """A free spot for a shape: its degradation region must not touch any other object's."""
    mask = shape_mask(shape, side)
    mx1, my1, mx2, my2 = tight_box(mask)
    pad = region_pad(config.width, config.height)
    # the canvas stays inside the image and the degradation region (box + pad) too
    x_lo, x_hi = max(0, pad - mx1), min(config.width - side, config.width - pad - mx2)
    y_lo, y_hi = max(0, pad - my1), min(config.height - side, config.height - pad - my2)
    if x_lo > x_hi or y_lo > y_hi:
        return None
    for _ in range(_PLACEMENT_TRIES):
        x0 = int(rng.integers(x_lo, x_hi + 1))
        y0 = int(rng.integers(y_lo, y_hi + 1))
        box = (x0 + mx1, y0 + my1, x0 + mx2, y0 + my2)
        # regions are box + pad; one free pixel between two regions keeps them apart
        grown = (box[0] - pad - 1, box[1] - pad - 1, box[2] + pad + 1, box[3] + pad + 1)
        if all(
            grown[2] <= t[0] - pad
            or t[2] + pad <= grown[0]
            or grown[3] <= t[1] - pad
            or t[3] + pad <= grown[1]
            for t in taken
        ):
            return x0, y0, mask, box
    return None


def _draw_degradations(colour: str, config: SynthConfig, rng: np.random.Generator) -> list[tuple[str, float]]:
    kinds = [k for k in config.degradation_kinds if colour not in _POOR_MATCHES.get(k, frozenset())]
    kinds = kinds or list(config.degradation_kinds)
    kind = str(kinds[int(rng.integers(0, len(kinds)))])
    out = [(kind, float(rng.uniform(config.min_severity, config.max_severity)))]
    if rng.random() < config.p_second_degradation:
        pairs = [p for p in degrade.COMPATIBLE_PAIRS if kind in p and all(k in kinds for k in p)]
        if pairs:
            pair = pairs[int(rng.integers(0, len(pairs)))]
            other = pair[1] if pair[0] == kind else pair[0]
            out.append((other, float(rng.uniform(config.min_severity, config.max_severity))))
            out.sort(key=lambda d: pair.index(d[0]))
    return out


def plan_scene(seed: int, index: int, config: SynthConfig) -> ScenePlan:
    """Objects, positions, roles and degradations of scene ``index`` (no pixels yet)."""
    rng = rng_for(seed, index, "layout")
    n = int(rng.integers(config.min_objects, config.max_objects + 1))
    hard = n >= 2 and bool(rng.random() < config.p_hard_case)
    clean_scene = not hard and bool(rng.random() < config.p_clean_scene)
    pairs = [(s, c) for s in config.shapes for c in config.colours]
    order = rng.permutation(len(pairs))
    chosen = [pairs[int(i)] for i in order[: n - 1 if hard else n]]
    sizes = [str(config.sizes[int(rng.integers(0, len(config.sizes)))]) for _ in chosen]
    wanted: list[tuple[str, str, str, str]] = [
        (s, c, z, "clean") for (s, c), z in zip(chosen, sizes, strict=True)
    ]
    if hard:
        shape, colour, size, _ = wanted[0]
        # the look-alike pair comes first, so it always finds room
        wanted = [(shape, colour, size, "twin_degraded"), (shape, colour, size, "twin_clean"), *wanted[1:]]
    else:
        wanted.sort(key=lambda w: -SIZES[w[2]][0])

    taken: list[tuple[int, int, int, int]] = []
    objects: list[PlannedObject] = []
    for shape, colour, size, role in wanted:
        placed = None
        for attempt_size in _smaller_or_equal(size, config):
            side = _draw_side(attempt_size, config, rng)
            placed = _place(side, shape, config, taken, rng)
            if placed is not None:
                break
        if placed is None:
            if role.startswith("twin"):
                raise RuntimeError(f"scene {index}: no room for the look-alike pair")  # pragma: no cover
            continue
        x0, y0, mask, box = placed
        taken.append(box)
        objects.append(
            PlannedObject(len(objects), shape, colour, attempt_size, side, x0, y0, mask, box, role)
        )

    if hard:
        objects[0].degradations = _draw_degradations(objects[0].colour, config, rng)
    elif not clean_scene:
        first = int(rng.integers(0, len(objects)))
        objects[first].degradations = _draw_degradations(objects[first].colour, config, rng)
        objects[first].role = "degraded"
    for obj in objects:
        if obj.role == "clean" and not clean_scene and rng.random() < config.p_degrade_object:
            obj.degradations = _draw_degradations(obj.colour, config, rng)
            obj.role = "degraded"

    global_degradations: list[tuple[str, float]] = []
    allowed_global = [k for k in GLOBAL_KINDS if k in config.degradation_kinds]
    if allowed_global and rng.random() < config.p_global_degradation:
        kind = allowed_global[int(rng.integers(0, len(allowed_global)))]
        global_degradations.append((kind, float(rng.uniform(*GLOBAL_SEVERITY))))
    bg = str(config.backgrounds[int(rng.integers(0, len(config.backgrounds)))])
    return ScenePlan(seed, index, config.width, config.height, bg, objects, global_degradations, hard)


def _smaller_or_equal(size: str, config: SynthConfig) -> list[str]:
    ordered = sorted(config.sizes, key=lambda z: SIZES[z][0], reverse=True)
    return ordered[ordered.index(size) :]


def render_plan(plan: ScenePlan, *, local: bool = True, global_: bool = True) -> np.ndarray:
    """Pixels of a plan as float32 (H, W, 3) in [0, 1].

    With ``local`` the objects' degradations are applied through each object's soft shape weight, after
    making sure each one is visible on the object's own pixels: one that does not show at its drawn
    severity is pushed to full severity, then swapped for noise (which always shows). The plan's
    degradation list is updated to what was applied, so records stay true.
    """
    image = background(plan.background, plan.width, plan.height, rng_for(plan.seed, plan.index, "background"))
    for obj in plan.objects:
        paste(image, obj.mask, COLOURS[obj.colour], obj.x0, obj.y0)
    if global_:
        for kind, severity in plan.global_degradations:
            region = (0, 0, plan.width, plan.height)
            image = degrade.apply(
                image, kind, region, severity, rng_for(plan.seed, plan.index, "global", kind)
            )
    if not local:
        return image
    for obj in plan.objects:
        if not obj.degradations:
            continue
        region, weight = object_weight(obj, plan.width, plan.height)
        on_object = weight >= MEASURE_WEIGHT
        x1, y1, x2, y2 = region
        applied: list[tuple[str, float]] = []
        for kind, severity in obj.degradations:
            before = image
            for attempt_kind, attempt_severity in (
                (kind, severity),
                (kind, 1.0),
                ("noise", max(severity, 0.6)),
            ):
                stream = rng_for(plan.seed, plan.index, "local", obj.id, attempt_kind)
                after = degrade.apply(before, attempt_kind, region, attempt_severity, stream, weight)
                # judged on the 8-bit pixels that get written, not on the float intermediate
                if measure.is_visible(
                    attempt_kind, to_uint8(before[y1:y2, x1:x2]), to_uint8(after[y1:y2, x1:x2]), on_object
                ):
                    break
            if any(k == attempt_kind for k, _ in applied):
                continue  # a fallback repeated an earlier kind: the first one already shows
            image = after
            applied.append((attempt_kind, attempt_severity))
        obj.degradations = applied
    return image
