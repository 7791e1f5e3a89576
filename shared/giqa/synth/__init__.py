"""GIQA-Synth: a seeded procedural world of shapes with exact quality ground truth (DESIGN §5).

``generate_scene(seed, index, config)`` gives one image and its :class:`SceneRecord`; ``render_scene``
re-renders a scene with or without its degradations; ``write_scenes`` and ``write_bench`` write a
training set (``images/`` + ``annotations.jsonl``) and a GIQA-Synth-Bench (``bench.jsonl``), and
``read_scenes`` / ``read_bench`` load them back. PIL and numpy only.
"""

from giqa.synth.bench import BENCH_FILE, SCENES_FILE, bench_world_seed, build_bench, read_bench, write_bench
from giqa.synth.config import COLOURS, SHAPES, SIZES, ConfigError, SynthConfig
from giqa.synth.export import to_samples, write_llava
from giqa.synth.generate import generate_scene, qa_pool, render_scene, scene_id
from giqa.synth.scene import degradation_region
from giqa.synth.schema import DEGRADATION_KINDS, Degradation, SceneRecord, SynthObject, SynthQA
from giqa.synth.writer import ANNOTATIONS, read_scenes, write_scenes

__all__ = [
    "ANNOTATIONS",
    "BENCH_FILE",
    "COLOURS",
    "DEGRADATION_KINDS",
    "SCENES_FILE",
    "SHAPES",
    "SIZES",
    "ConfigError",
    "Degradation",
    "SceneRecord",
    "SynthConfig",
    "SynthObject",
    "SynthQA",
    "bench_world_seed",
    "build_bench",
    "degradation_region",
    "generate_scene",
    "qa_pool",
    "read_bench",
    "read_scenes",
    "render_scene",
    "scene_id",
    "to_samples",
    "write_bench",
    "write_llava",
    "write_scenes",
]
