"""What a GIQA-Synth world may contain: image size, vocabulary, degradations and their odds.

The defaults are sized for tiny models learning on a CPU: 128×128 images with 2–5 shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

from giqa.synth.schema import DEGRADATION_KINDS

# Saturated or extreme colours, far from the muted mid-tone backgrounds, so every object stands out.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 70, 225),
    "yellow": (245, 215, 20),
    "purple": (140, 40, 180),
    "orange": (250, 130, 10),
    "white": (250, 250, 250),
    "black": (12, 12, 12),
}

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "ring", "cross", "diamond", "hexagon")

# Object side as a fraction of the image side.
SIZES: dict[str, tuple[float, float]] = {
    "small": (0.14, 0.19),
    "medium": (0.22, 0.28),
    "large": (0.31, 0.38),
}

BACKGROUNDS: tuple[str, ...] = ("gradient", "radial", "stripes", "checker", "noise", "plain")


class ConfigError(ValueError):
    """A configuration the generator cannot honour."""


@dataclass(frozen=True)
class SynthConfig:
    """Knobs of the synthetic world; every field has a default that works."""

    width: int = 128
    height: int = 128
    min_objects: int = 2
    max_objects: int = 5
    shapes: tuple[str, ...] = SHAPES
    colours: tuple[str, ...] = tuple(COLOURS)
    sizes: tuple[str, ...] = tuple(SIZES)
    backgrounds: tuple[str, ...] = BACKGROUNDS
    degradation_kinds: tuple[str, ...] = DEGRADATION_KINDS
    min_severity: float = 0.35
    max_severity: float = 1.0
    # chance that a scene holds no degraded object at all (verdict "good")
    p_clean_scene: float = 0.1
    # chance that an object (beyond the first degraded one) is degraded too
    p_degrade_object: float = 0.35
    # chance that a degraded object gets a second, compatible degradation (e.g. dark and noisy)
    p_second_degradation: float = 0.15
    p_hard_case: float = 0.25
    p_global_degradation: float = 0.15
    # chance that a clean object is praised in the description (the rest go unmentioned)
    p_mention_clean: float = 0.6
    # chance that a phrase carries the size word ("large red circle")
    p_size_in_phrase: float = 0.3
    box_form: str = "grid"
    grid_n: int = 20
    grid_m: int = 20
    # QA items per scene of each kind, before the bench's own selection
    vqa_per_scene: int = 8

    def __post_init__(self) -> None:
        if self.width < 48 or self.height < 48:
            raise ConfigError(f"images must be at least 48x48 pixels, got {self.width}x{self.height}")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ConfigError(
                f"need 1 <= min_objects <= max_objects, got {self.min_objects}..{self.max_objects}"
            )
        if self.max_objects > 8:
            raise ConfigError(f"at most 8 objects fit a scene, got max_objects={self.max_objects}")
        _subset("shapes", self.shapes, SHAPES)
        _subset("colours", self.colours, tuple(COLOURS))
        _subset("sizes", self.sizes, tuple(SIZES))
        _subset("backgrounds", self.backgrounds, BACKGROUNDS)
        _subset("degradation_kinds", self.degradation_kinds, DEGRADATION_KINDS)
        if len(self.shapes) * len(self.colours) < self.max_objects:
            raise ConfigError("the vocabulary has fewer shape×colour pairs than max_objects")
        if not 0.0 < self.min_severity <= self.max_severity <= 1.0:
            raise ConfigError(
                f"need 0 < min_severity <= max_severity <= 1, got {self.min_severity}..{self.max_severity}"
            )
        for name in (
            "p_clean_scene",
            "p_degrade_object",
            "p_second_degradation",
            "p_hard_case",
            "p_global_degradation",
            "p_mention_clean",
            "p_size_in_phrase",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} is a probability in [0, 1], got {value}")
        if self.box_form not in ("grid", "norm"):
            raise ConfigError(f"box_form is 'grid' or 'norm', got {self.box_form!r}")
        if self.grid_n < 1 or self.grid_m < 1:
            raise ConfigError("grid size must be positive")
        if self.vqa_per_scene < 0:
            raise ConfigError("vqa_per_scene must be >= 0")


def _subset(name: str, values: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    if not values:
        raise ConfigError(f"{name} must not be empty")
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise ConfigError(f"unknown {name} {unknown}; choose from {list(allowed)}")
    if len(set(values)) != len(values):
        raise ConfigError(f"{name} has duplicates: {list(values)}")
