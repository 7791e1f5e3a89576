"""SynthConfig refuses what the generator cannot honour, with a message that names the field."""

from __future__ import annotations

import pytest

from giqa.synth import ConfigError, SynthConfig, generate_scene

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 16}, "at least 48x48"),
        ({"min_objects": 0}, "min_objects"),
        ({"min_objects": 4, "max_objects": 3}, "min_objects"),
        ({"max_objects": 9}, "at most 8"),
        ({"shapes": ()}, "shapes must not be empty"),
        ({"shapes": ("circle", "blob")}, "unknown shapes"),
        ({"colours": ("red", "red")}, "duplicates"),
        ({"degradation_kinds": ("sepia",)}, "unknown degradation_kinds"),
        ({"shapes": ("circle",), "colours": ("red",), "max_objects": 2}, "fewer shape"),
        ({"min_severity": 0.0}, "min_severity"),
        ({"min_severity": 0.9, "max_severity": 0.5}, "min_severity"),
        ({"p_hard_case": 1.5}, "p_hard_case"),
        ({"p_global_degradation": -0.1}, "p_global_degradation"),
        ({"box_form": "xyxy"}, "box_form"),
        ({"vqa_per_scene": -1}, "vqa_per_scene"),
    ],
)
def test_bad_config_is_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SynthConfig(**kwargs)


def test_defaults_are_small_enough_for_cpu_models() -> None:
    config = SynthConfig()
    assert (config.width, config.height) == (128, 128)
    assert 1 <= config.min_objects <= config.max_objects <= 8


@pytest.mark.parametrize(("seed", "index"), [(-1.5, 0), ("1", 0), (0, -1), (True, 0)])
def test_generate_scene_refuses_bad_keys(seed: object, index: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        generate_scene(seed, index)  # type: ignore[arg-type]


def test_a_narrow_vocabulary_is_honoured() -> None:
    config = SynthConfig(
        shapes=("circle", "square"),
        colours=("red", "blue"),
        degradation_kinds=("noise",),
        min_objects=2,
        max_objects=3,
        p_global_degradation=0.0,
    )
    for index in range(30):
        _, record = generate_scene(3, index, config)
        assert {o.category for o in record.objects} <= {"circle", "square"}
        assert {o.colour for o in record.objects} <= {"red", "blue"}
        assert {d.kind for o in record.objects for d in o.degradations} <= {"noise"}
        assert 1 <= len(record.objects) <= 3


def test_larger_images_scale_boxes() -> None:
    config = SynthConfig(width=256, height=192)
    image, record = generate_scene(1, 0, config)
    assert image.size == (256, 192)
    for obj in record.objects:
        x1, y1, x2, y2 = obj.box_px
        assert 0 <= x1 < x2 <= 256 and 0 <= y1 < y2 <= 192
