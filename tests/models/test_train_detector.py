"""The demo detector: GIQA-Synth prompts and targets, the batch-loss fix, a few real training steps,
``giqa train-detector`` end to end, and the shipped checkpoint finding objects in unseen scenes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from giqa.cli import app
from giqa.settings import get_settings

pytestmark = pytest.mark.models

# The shipped demo detector measured 0.935 recall / 0.758 precision on these 20 scenes (0.934 / 0.803 on 100
# in its model card): floors under that, so a worse checkpoint or a broken load path fails (the previous demo
# detector, 0.143 / 0.224 here, would)
SHIPPED_RECALL_FLOOR = 0.85
SHIPPED_PRECISION_FLOOR = 0.65


@pytest.fixture(scope="module")
def scenes() -> list[Any]:
    from giqa.synth import generate_scene
    from giqa.synth.config import SynthConfig

    config = SynthConfig(width=96, height=96)
    return [generate_scene(3, i, config) for i in range(6)]


@pytest.fixture(scope="module")
def processor() -> Any:
    from giqa.models.tiny_gdino import grounding_dino_processor

    return grounding_dino_processor(96, 64)


@given(seed=st.integers(0, 10_000), scene=st.integers(0, 5))
@settings(max_examples=60, deadline=None)
def test_prompt_targets_follow_the_phrases(scenes: list[Any], processor: Any, seed: int, scene: int) -> None:
    from giqa.training.detector_data import describes, sample_example

    record = scenes[scene][1]
    example = sample_example(record.objects, np.random.default_rng(seed))
    assert example.prompt == " ".join(p + "." for p in example.phrases)
    assert len(example.class_labels) == len(example.boxes) >= 1
    for k, phrase in enumerate(example.phrases):
        words = phrase.split()
        kind = (words[0] if len(words) == 3 else None, words[-2], words[-1])
        named = [o for o in record.objects if describes(kind, o)]
        # each phrase's targets are exactly the objects it describes (none for a negative phrase)
        assert sorted(example.boxes[i] for i, c in enumerate(example.class_labels) if c == k) == sorted(
            [(o.box[0] + o.box[2]) / 2, (o.box[1] + o.box[3]) / 2, o.box[2] - o.box[0], o.box[3] - o.box[1]]
            for o in named
        )
    for cx, cy, w, h in example.boxes:
        assert 0 < w <= 1 and 0 < h <= 1
        assert (
            -1e-9 <= cx - w / 2 and cx + w / 2 <= 1 + 1e-9 and -1e-9 <= cy - h / 2 and cy + h / 2 <= 1 + 1e-9
        )
    # the model's own label maps see one group per phrase, in prompt order
    from transformers.models.grounding_dino.modeling_grounding_dino import build_label_maps

    ids = processor.tokenizer([example.prompt], return_tensors="pt")["input_ids"]
    maps = build_label_maps(_logits(64), ids)
    assert maps[0].shape[0] == len(example.phrases)


def _logits(width: int) -> Any:
    import torch

    return torch.zeros(1, 1, width)


def test_sample_example_refuses_an_empty_scene() -> None:
    from giqa.training.detector_data import sample_example

    with pytest.raises(ValueError, match="at least one object"):
        sample_example([], np.random.default_rng(0))


def _small_model(tmp_path: Path) -> tuple[Any, Any]:
    from giqa.training.detector import DetectorTrainOptions, build_model

    return build_model(DetectorTrainOptions(out=tmp_path, image_size=96, d_model=32, num_queries=10))


def _batch(scenes: list[Any], processor: Any, seeds: list[int]) -> dict[str, Any]:
    from giqa.training.detector_data import DetectionCollator, sample_example

    items = [
        {"image": scenes[i][0], "example": sample_example(scenes[i][1].objects, np.random.default_rng(s))}
        for i, s in enumerate(seeds)
    ]
    return DetectionCollator(processor)(items)


def test_fixed_offset_loss_equals_transformers_where_transformers_is_right(
    scenes: list[Any], processor: Any, tmp_path: Path
) -> None:
    """With two samples of equal phrase counts transformers' offset is right: both losses must agree."""
    import torch
    from transformers.loss.loss_grounding_dino import GroundingDinoForObjectDetectionLoss

    from giqa.training.detector_data import sample_example

    model, _ = _small_model(tmp_path)

    def count(scene: int, seed: int) -> int:
        return len(sample_example(scenes[scene][1].objects, np.random.default_rng(seed)).phrases)

    first = next(s for s in range(40) if count(0, s) >= 2)
    second = next(s for s in range(40) if count(1, s) == count(0, first))
    batch = _batch(scenes, processor, [first, second])
    model.eval()
    with torch.no_grad():
        ours = model(**batch).loss
        model.loss_function = GroundingDinoForObjectDetectionLoss
        stock = model(**batch).loss
    assert torch.isfinite(ours) and float(ours) == pytest.approx(float(stock), rel=1e-4)


def test_fixed_offset_targets_point_at_each_samples_own_phrases() -> None:
    """Three samples with 2, 3 and 1 phrases: each matched query's target row is its own phrase's tokens."""
    import torch

    from giqa.training.detector import _fixed_criterion

    maps = (
        torch.tensor([[1, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0]]),
        torch.tensor([[1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0], [0, 0, 1, 1, 0, 0]]),
        torch.tensor([[0, 0, 0, 0, 1, 1]]),
    )
    targets = [
        {"class_labels": torch.tensor([1])},
        {"class_labels": torch.tensor([2, 0])},
        {"class_labels": torch.tensor([0])},
    ]
    indices = [
        (torch.tensor([4]), torch.tensor([0])),
        (torch.tensor([0, 3]), torch.tensor([0, 1])),
        (torch.tensor([2]), torch.tensor([0])),
    ]
    criterion = _fixed_criterion().__new__(_fixed_criterion())
    onehot = criterion._get_target_classes_one_hot(
        {"logits": torch.zeros(3, 5, 6), "label_maps": maps}, targets, indices
    )
    assert onehot[0, 4].tolist() == maps[0][1].tolist()
    assert onehot[1, 0].tolist() == maps[1][2].tolist() and onehot[1, 3].tolist() == maps[1][0].tolist()
    assert onehot[2, 2].tolist() == maps[2][0].tolist()
    assert int(onehot.sum()) == int(maps[0][1].sum() + maps[1][2].sum() + maps[1][0].sum() + maps[2][0].sum())


def test_cached_text_encoder_gives_the_plain_encoders_outputs(
    scenes: list[Any], processor: Any, tmp_path: Path
) -> None:
    import torch

    model, _ = _small_model(tmp_path)
    batch = _batch(scenes, processor, [5, 6, 7])
    model.eval()
    with torch.no_grad():
        cached = model(**batch)
        again = model(**batch)  # now from the cache
        model.model.text_backbone = model.model.text_backbone.bert
        plain = model(**batch)
    finite = torch.isfinite(plain.logits)
    assert torch.equal(finite, torch.isfinite(cached.logits))
    for out in (cached, again):
        assert torch.allclose(out.logits[finite], plain.logits[finite], atol=1e-4)
        assert torch.allclose(out.pred_boxes, plain.pred_boxes, atol=1e-5)


def test_a_few_steps_lower_the_loss_and_train_all_but_the_text_encoder(
    scenes: list[Any], processor: Any, tmp_path: Path
) -> None:
    import torch

    torch.set_num_threads(1)
    model, _ = _small_model(tmp_path)
    batch = _batch(scenes, processor, [0, 1, 2, 3])
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith("model.text_backbone.") for n in frozen)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    losses = []
    for _ in range(8):
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss))
    assert losses[-1] < 0.7 * losses[0], losses
    after = dict(model.named_parameters())
    unchanged = [n for n, p in trainable.items() if torch.equal(p, after[n].detach())]
    # parameters with no path to the loss in a Grounding DINO (e.g. unused feature-level embeddings) aside
    assert len(unchanged) <= 0.05 * len(trainable), unchanged
    assert all(torch.equal(p, after[n].detach()) for n, p in frozen.items())


def test_train_detector_cli_writes_a_loadable_checkpoint(tmp_path: Path) -> None:
    from giqa.backends.gdino import GroundingDinoDetector

    get_settings.cache_clear()
    out = tmp_path / "run"
    args = ["train-detector", "--out", str(out), "--scenes", "4", "--steps", "2", "--batch", "2"]
    args += [
        "--image-size",
        "96",
        "--d-model",
        "32",
        "--eval-every-minutes",
        "0",
        "--eval-scenes",
        "2",
        "--quiet",
    ]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    assert "2 steps" in done.stdout and "box recall@0.5" in done.stdout
    model = out / "model"
    assert {"config.json", "model.safetensors", "text_backbone.json", "processor_config.json"} <= {
        p.name for p in model.iterdir()
    }
    # the frozen MiniLM is not in the file (it would be ~90 MB) and comes back from the package at load
    assert (model / "model.safetensors").stat().st_size < 10_000_000
    result = json.loads((out / "recall.json").read_text())
    assert result["steps"] == 2 and result["recall"]["scenes"] == 2 and result["recall"]["objects"] >= 2
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows and all(np.isfinite(r["loss"]) for r in rows if "loss" in r)
    assert (out / "curve.png").stat().st_size > 0
    detector = GroundingDinoDetector(model, box_threshold=0.0, text_threshold=0.0)
    from giqa.models.tiny_gdino import load_minilm_text_backbone

    reference: Any = type(detector.model)(detector.model.config)
    load_minilm_text_backbone(reference)
    for name, value in reference.model.text_backbone.state_dict().items():
        assert np.array_equal(value.numpy(), detector.model.model.text_backbone.state_dict()[name].numpy())


def test_train_detector_cli_bad_input(tmp_path: Path) -> None:
    runner = CliRunner()
    none = runner.invoke(app, ["train-detector", "--out", str(tmp_path / "a"), "--scenes", "2"])
    assert none.exit_code == 2 and "--steps or --max-time-minutes" in none.stderr
    missing = runner.invoke(
        app,
        ["train-detector", "--out", str(tmp_path / "b"), "--data", str(tmp_path / "nope"), "--steps", "1"],
    )
    assert missing.exit_code == 2 and "is not a directory" in missing.stderr
    resume = runner.invoke(
        app,
        [
            "train-detector",
            "--out",
            str(tmp_path / "c"),
            "--scenes",
            "2",
            "--steps",
            "1",
            "--resume",
            "--image-size",
            "96",
            "--d-model",
            "32",
            "--quiet",
        ],
    )
    assert resume.exit_code == 2 and "no checkpoint" in resume.stderr


def _shipped() -> bool:
    from giqa.backends.factory import SHIPPED_DETECTOR

    return (SHIPPED_DETECTOR / "config.json").is_file()


@pytest.mark.skipif(_shipped(), reason="a demo detector is shipped (the test below covers it)")
def test_with_no_shipped_detector_nothing_configured_is_a_clear_error(tmp_path: Path) -> None:
    from giqa.backends.factory import make_detector
    from giqa.settings import PipelineSettings

    with pytest.raises(FileNotFoundError, match="GIQA_PIPELINE__DETECTOR_MODEL"):
        make_detector(PipelineSettings())
    from giqa.synth import generate_scene

    path = tmp_path / "scene.png"
    generate_scene(0, 0)[0].save(path)
    get_settings.cache_clear()
    done = CliRunner().invoke(app, ["detect", "--image", str(path), "--phrase", "red circle"])
    assert done.exit_code == 2 and "shipped demo detector is missing" in done.stderr


@pytest.mark.skipif(not _shipped(), reason="no demo detector shipped in giqa/assets/detector")
def test_shipped_detector_loads_with_nothing_configured_and_finds_objects() -> None:
    from giqa.backends.factory import SHIPPED_DETECTOR, make_detector
    from giqa.settings import PipelineSettings
    from giqa.training.detector_eval import box_recall, eval_world

    cfg = PipelineSettings()
    assert cfg.detector_model is None
    detector = make_detector(cfg)
    assert Path(detector.model_path) == SHIPPED_DETECTOR
    # scenes of an evaluation world: never trained on (training worlds are < 1e9)
    report = box_recall(detector, world_seed=eval_world(7), n_scenes=20, start=500)
    assert report.recall >= SHIPPED_RECALL_FLOOR, report
    assert report.precision >= SHIPPED_PRECISION_FLOOR, report


@pytest.mark.skipif(not _shipped(), reason="no demo detector shipped in giqa/assets/detector")
def test_detect_cli_uses_the_shipped_detector_by_default(tmp_path: Path) -> None:
    from giqa.backends.factory import SHIPPED_DETECTOR
    from giqa.boxes import iou
    from giqa.synth import generate_scene
    from giqa.training.detector_eval import eval_world

    image, record = generate_scene(eval_world(7), 600)
    path = tmp_path / "scene.png"
    image.save(path)
    target = record.objects[0]
    get_settings.cache_clear()
    done = CliRunner().invoke(app, ["detect", "--image", str(path), "--phrase", target.phrase])
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    assert Path(data["model"]) == SHIPPED_DETECTOR
    boxes = [d["box"] for d in data["phrases"][0]["detections"]]
    assert all(0 <= b[0] <= b[2] <= 1 and 0 <= b[1] <= b[3] <= 1 for b in boxes)
    assert target.phrase == data["phrases"][0]["phrase"]
    # it finds the object it was asked for (boxes and the scene's truth are both fractions of the side)
    assert max((iou(b, target.box) for b in boxes), default=0.0) >= 0.5, (boxes, target.box)
