"""GIQA-Synth: a seeded procedural world of shapes with exact quality ground truth (DESIGN §5).

``generate_scene(seed, index, config)`` gives one image and its :class:`SceneRecord`; ``write_scenes``
and ``write_bench`` write training sets and a GIQA-Synth-Bench. PIL and numpy only.
"""

from giqa.synth.config import COLOURS, SHAPES, SIZES, ConfigError, SynthConfig
from giqa.synth.generate import generate_scene, qa_pool, render_scene, scene_id
from giqa.synth.scene import degradation_region
from giqa.synth.schema import DEGRADATION_KINDS, Degradation, SceneRecord, SynthObject, SynthQA

__all__ = [
    "COLOURS",
    "DEGRADATION_KINDS",
    "SHAPES",
    "SIZES",
    "ConfigError",
    "Degradation",
    "SceneRecord",
    "SynthConfig",
    "SynthObject",
    "SynthQA",
    "degradation_region",
    "generate_scene",
    "qa_pool",
    "render_scene",
    "scene_id",
]
