"""giqa train on tiny models: learning, frozen parts, bad rows, wrong files, resume, LoRA, the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from training_helpers import read_losses, small_config, state_dict, synth_export

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth_export(tmp_path_factory.mktemp("synth"), n=6)


def test_a_few_steps_lower_the_loss_and_move_every_trainable_weight(data: Path, tmp_path: Path) -> None:
    from giqa.training.run import TINY_BASE, train

    rows = json.loads(data.read_text())[:8]  # one batch seen 6 times: the loss must fall clearly
    for row in rows:
        row["image"] = str(data.parent / row["image"])
    subset = _write(tmp_path / "subset.json", rows)
    config = small_config(subset, tmp_path / "run", max_steps=6, lr=3e-3, freeze_vision_tower=True)
    result = train(config)
    losses = read_losses(tmp_path / "run")
    assert len(losses) == 6 and all(b < a for a, b in zip(losses, losses[1:], strict=False)), losses
    assert losses[-1] < losses[0] - 0.5, losses
    before, after = state_dict(tmp_path / "run" / TINY_BASE), state_dict(result.final)
    assert before.keys() == after.keys()
    moved = {k for k in before if not (before[k] == after[k]).all()}
    frozen = {k for k in before if "vision_tower" in k}
    assert frozen and not (frozen & moved), sorted(frozen & moved)[:3]
    assert moved == set(before) - frozen, sorted(set(before) - frozen - moved)[:5]
    # the final folder is what `giqa predict` loads, and it answers
    from giqa.models.llava import detect_arch
    from giqa.predict.local import TransformersVLM

    assert detect_arch(result.final) == "llava"
    from PIL import Image

    image = Image.new("RGB", (64, 64), (200, 30, 30))
    assert isinstance(TransformersVLM(result.final).answer(image, "Is it blurry?", max_new_tokens=4), str)
    assert (tmp_path / "run" / "loss_curve.png").stat().st_size > 1000
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = rows[0]
    for key in ("step", "loss", "lr", "grad_norm", "samples_per_s", "tokens_per_s", "epoch", "elapsed_s"):
        assert key in logged, (key, logged)
    assert result.skipped["total"] == 0


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(rows))
    return path


def test_bad_rows_are_counted_and_skipped(data: Path, tmp_path: Path) -> None:
    from giqa.training.run import train

    rows = json.loads(data.read_text())[:6]
    for row in rows:
        row["image"] = str(data.parent / row["image"])
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    good = rows[0]
    bad = [
        {**good, "id": "missing", "image": str(tmp_path / "nowhere.png")},
        {**good, "id": "corrupt", "image": str(tmp_path / "corrupt.png")},
        {**good, "id": "empty", "conversations": [good["conversations"][0], {"from": "gpt", "value": "  "}]},
        {
            **good,
            "id": "long",
            "conversations": [
                {"from": "human", "value": "<image>\n" + "blurry " * 400},
                good["conversations"][1],
            ],
        },
        {
            **good,
            "id": "role",
            "conversations": [{"from": "robot", "value": "<image>\nhi"}, {"from": "gpt", "value": "x"}],
        },
        "not a record",
    ]
    path = _write(tmp_path / "mixed.json", rows[:3] + bad + rows[3:])
    config = small_config(path, tmp_path / "run", max_steps=-1, epochs=1, per_device_batch=12, max_length=200)
    result = train(config)
    assert result.steps == 1
    by_reason = json.loads((tmp_path / "run" / "skipped.json").read_text())["by_reason"]
    assert by_reason == {
        "missing image": 1,
        "corrupt image": 1,
        "empty answer": 1,
        "too long": 1,
        "unknown role": 1,
        "malformed record": 1,
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not a JSON file"),
        ('{"conversations": []}', "must hold a JSON list"),
        ('[{"id": 1, "image": "a.png"}]', "no record with a 'conversations' list"),
    ],
)
def test_a_wholly_wrong_file_is_refused_with_one_line(tmp_path: Path, content: str, message: str) -> None:
    from typer.testing import CliRunner

    from giqa.cli import app

    path = tmp_path / "train.json"
    path.write_text(content)
    result = CliRunner().invoke(app, ["train", "--data", str(path), "--output-dir", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "o").exists()


def test_resume_matches_an_uninterrupted_run_and_ignores_a_half_written_checkpoint(
    data: Path, tmp_path: Path
) -> None:
    from giqa.training.checkpoints import MARKER
    from giqa.training.run import FINAL, train

    whole = train(small_config(data, tmp_path / "whole", max_steps=6, save_steps=3))
    parts = tmp_path / "parts"
    train(small_config(data, parts, max_steps=6, save_steps=3, save_total_limit=5))
    # Simulate a crash after step 3: drop the later checkpoint and final/, and leave a torn checkpoint-5.
    shutil.rmtree(parts / "checkpoint-6")
    shutil.rmtree(parts / FINAL)
    torn = parts / "checkpoint-5"
    shutil.copytree(parts / "checkpoint-3", torn)
    (torn / MARKER).unlink()
    weights = torn / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    resumed = train(small_config(data, parts, max_steps=6, save_steps=3, resume=True))
    assert resumed.steps == 6 and not torn.exists()
    a, b = state_dict(whole.final), state_dict(resumed.final)
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] - b[key]).abs().max().item() < 1e-5, key
    assert read_losses(tmp_path / "whole")[-1] == pytest.approx(read_losses(parts)[-1], rel=1e-4)


def test_lora_trains_only_the_adapters(data: Path, tmp_path: Path) -> None:
    import torch
    from transformers import TrainerCallback

    from giqa.training.run import train

    seen: dict[str, Any] = {}

    class Snapshot(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
            seen["before"] = {k: v.detach().clone() for k, v in model.named_parameters()}
            seen["trainable"] = {k for k, v in model.named_parameters() if v.requires_grad}

        def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
            seen["after"] = {k: v.detach().clone() for k, v in model.named_parameters()}

    config = small_config(data, tmp_path / "run", max_steps=3, lora=True, lora_r=4, lr=1e-2)
    result = train(config, callbacks=[Snapshot()])
    trainable = seen["trainable"]
    assert trainable and all("lora_" in k and "language_model" in k for k in trainable)
    for key, before in seen["before"].items():
        changed = not torch.equal(before, seen["after"][key])
        assert changed == (key in trainable), key
    assert not list(result.final.glob("adapter_*"))  # merged: loads without PEFT
    assert (result.final / "model.safetensors").is_file()


def test_time_budget_stops_cleanly_with_a_checkpoint(data: Path, tmp_path: Path) -> None:
    from giqa.training.checkpoints import last_complete
    from giqa.training.run import train

    result = train(small_config(data, tmp_path / "run", max_steps=500, max_time_minutes=0.0001))
    assert result.stopped_by_time and result.steps == 1
    assert last_complete(tmp_path / "run") == tmp_path / "run" / "checkpoint-1"
    assert (result.final / "config.json").is_file()


def test_cli_help_documents_every_field_and_flags_override_yaml(tmp_path: Path) -> None:
    import dataclasses

    from typer.testing import CliRunner

    from giqa.cli import app
    from giqa.training.config import PAPER, TrainConfig, argument_parser, build_config, read_yaml

    result = CliRunner().invoke(app, ["train", "--help"])
    assert result.exit_code == 0
    for field in dataclasses.fields(TrainConfig):
        assert "--" + field.name.replace("_", "-") in result.output, field.name
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("preset: paper\ndata: d.json\noutput_dir: o\nlr: 1.0e-4\n")
    config = build_config(read_yaml(yaml_file), vars(argument_parser().parse_args(["--lr", "3e-5"])))
    assert config.lr == 3e-5 and config.global_batch == PAPER["global_batch"] and config.freeze_vision_tower
    bad = CliRunner().invoke(app, ["train", "--config", str(yaml_file), "--bogus", "1"])
    assert bad.exit_code == 2


def test_llava_next_with_a_projector_lr_and_an_evaluation_at_the_end(
    data: Path, tmp_path: Path, bench_slice: Path
) -> None:
    from transformers import TrainerCallback

    from giqa.training.run import TINY_BASE, train

    groups: list[dict[str, Any]] = []

    class Groups(TrainerCallback):
        def on_train_end(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kw: Any) -> None:
            groups.extend({"lr": g["initial_lr"], "n": len(g["params"])} for g in optimizer.param_groups)

    config = small_config(
        data,
        tmp_path / "run",
        arch="llava_next",
        max_steps=2,
        tune_projector_lr=5e-3,
        eval_bench=str(bench_slice),
        eval_limit=3,
    )
    result = train(config, callbacks=[Groups()])
    assert {g["lr"] for g in groups} == {1e-3, 5e-3}  # (decay and no-decay groups of each)
    assert sum(g["n"] for g in groups if g["lr"] == 5e-3) == 4  # the projector's two weights and biases
    before, after = state_dict(tmp_path / "run" / TINY_BASE), state_dict(result.final)
    unused = {k for k in before if "post_layernorm" in k or ".layers.1." in k and "vision_tower" in k}
    moved = {k for k in before if not (before[k] == after[k]).all()}
    assert moved == set(before) - unused, sorted(set(before) - unused - moved)[:5]
    assert result.report is not None and result.report["counts"]["bench_items"] == 3
    assert (tmp_path / "run" / "eval" / "report.json").is_file()
    assert len((tmp_path / "run" / "eval" / "predictions.jsonl").read_text().splitlines()) == 3


def test_a_box_token_weight_counts_the_box_tokens_more_through_trainer(data: Path, tmp_path: Path) -> None:
    """Same init, same first batch: a weight of 3 on the number tokens raises the first logged loss (their
    terms are positive), and training with it still lowers the loss."""
    from giqa.training.run import train

    first = {}
    for weight in (1.0, 3.0):
        config = small_config(data, tmp_path / f"w{weight}", max_steps=3, lr=3e-3, box_token_weight=weight)
        train(config)
        losses = read_losses(tmp_path / f"w{weight}")
        first[weight] = losses[0]
        assert losses[-1] < losses[0], losses
    assert first[3.0] > first[1.0] + 0.1, first
