"""The training configuration: one dataclass with help text per field, read from YAML and flags alike.

Precedence (decided): the dataclass defaults, then the chosen preset's values, then the YAML file, then the
command-line flags; the preset name itself is taken from the flags, else the YAML, else ``tiny``.
``giqa train --help`` is generated from the same fields, so the help and the YAML keys never drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PRESETS = ("paper", "tiny")


class ConfigError(ValueError):
    """A configuration that cannot be trained: unknown key, wrong type, missing data path, ..."""


def _f(default: Any, help: str, **kw: Any) -> Any:  # noqa: A002 - "help" mirrors argparse
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    """Supervised fine-tuning of a LLaVA-1.5 / LLaVA-1.6 model on a LLaVA-format JSON (loss on answers)."""

    # --- data and model
    data: str = _f(
        "", "LLaVA training JSON (a list of {id, image, conversations}) written by `giqa synth export`"
    )
    image_root: str | None = _f(
        None, "folder the rows' relative image paths start from (default: the JSON's folder)"
    )
    base_model: str = _f(
        "tiny",
        "local LLaVA/LLaVA-NeXT checkpoint folder, or 'tiny': build a tiny LLaVA from the shape fields below "
        "(its word-level vocabulary is taken from the dataset's texts)",
    )
    arch: str = _f("auto", "auto (read from the checkpoint's config.json), llava or llava_next")
    output_dir: str = _f("", "run folder: checkpoint-N/, final/, metrics.jsonl, loss_curve.png, skipped.json")
    preset: str = _f("tiny", "paper (DESIGN §4 SFT recipe, GPU) or tiny (the CPU miniature)")
    # --- tiny model shape (base_model: tiny)
    image_size: int = _f(64, "tiny model: image side in pixels")
    patch_size: int = _f(8, "tiny model: vision patch side (image tokens = (image_size / patch_size)^2)")
    vision_hidden: int = _f(128, "tiny model: vision tower width")
    vision_layers: int = _f(4, "tiny model: vision tower layers")
    text_hidden: int = _f(192, "tiny model: language model width")
    text_layers: int = _f(4, "tiny model: language model layers")
    heads: int = _f(4, "tiny model: attention heads of the language model")
    spatial_init: bool = _f(
        True,
        "tiny model: start grid-index token embeddings and vision patch positions from a 2-D sinusoidal "
        "code of (row, column) instead of unrelated random vectors",
    )
    # --- optimisation
    lr: float = _f(1e-3, "peak learning rate")
    tune_projector_lr: float | None = _f(
        None, "separate learning rate for the multimodal projector (default: the same as lr)"
    )
    epochs: float = _f(1.0, "passes over the data (ignored when max_steps > 0)")
    max_steps: int = _f(-1, "optimizer steps to run; -1: as many as epochs give")
    max_time_minutes: float | None = _f(
        None, "wall-time budget: stop cleanly after this many minutes, saving a checkpoint and final/"
    )
    per_device_batch: int = _f(32, "samples per device per forward pass")
    global_batch: int | None = _f(
        None,
        "samples per optimizer step over all devices; gradient accumulation = global_batch / "
        "(world size x per_device_batch), which must divide evenly (default: no accumulation)",
    )
    grad_accum: int | None = _f(None, "gradient accumulation steps (alternative to global_batch)")
    warmup_ratio: float = _f(0.03, "share of the steps spent warming the learning rate up linearly")
    scheduler: str = _f(
        "cosine", "learning-rate schedule after warmup (transformers names: cosine, linear, ...)"
    )
    weight_decay: float = _f(0.0, "AdamW weight decay (not applied to biases and norms)")
    box_token_weight: float = _f(
        1.0,
        "loss weight of the answer's number tokens (the box coordinates) against its other tokens; "
        "above 1 spends more of each step's gradient on where things are",
    )
    adam_beta1: float = _f(0.9, "AdamW beta1")
    adam_beta2: float = _f(0.999, "AdamW beta2")
    max_grad_norm: float = _f(1.0, "gradient clipping norm")
    bf16: bool = _f(False, "bfloat16 mixed precision (GPU)")
    fp16: bool = _f(False, "float16 mixed precision (GPU)")
    gradient_checkpointing: bool = _f(False, "recompute activations in backward to save memory")
    freeze_vision_tower: bool = _f(False, "keep the vision encoder's weights fixed (LLaVA does)")
    # --- LoRA through PEFT
    lora: bool = _f(False, "train LoRA adapters on the language model instead of all weights")
    lora_r: int = _f(16, "LoRA rank")
    lora_alpha: int = _f(32, "LoRA alpha")
    lora_dropout: float = _f(0.05, "LoRA dropout")
    lora_target_modules: list[str] = _f(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        "module names given adapters (language model only; comma-separated on the command line)",
    )
    # --- data handling and bookkeeping
    max_length: int = _f(
        2048, "longest conversation in tokens (image tokens included); longer rows are skipped"
    )
    seed: int = _f(0, "seed of the model init (tiny), data order and dropout")
    dataloader_workers: int = _f(0, "data-loading worker processes per device")
    save_steps: int = _f(500, "save a checkpoint every N optimizer steps")
    save_total_limit: int | None = _f(2, "keep at most N checkpoints (oldest deleted first)")
    logging_steps: int = _f(10, "log loss, lr, grad norm and throughput every N steps")
    eval_bench: str | None = _f(
        None, "bench JSONL: after training, answer it with final/ and score it (giqa eval --no-judge)"
    )
    eval_limit: int | None = _f(None, "score only the first N bench items")
    resume: bool = _f(False, "continue from the last complete checkpoint in output_dir")
    deepspeed: str | None = _f(
        None, "DeepSpeed JSON config (e.g. configs/train/zero3.json), passed to transformers"
    )
    ddp_backend: str | None = _f(None, "torch.distributed backend (default: nccl with GPUs, gloo on CPU)")
    fsdp: str | None = _f(None, "FSDP options for transformers, e.g. 'full_shard auto_wrap'")
    fsdp_config: str | None = _f(None, "FSDP JSON config file, passed to transformers")
    report_to: str = _f("none", "experiment trackers (transformers names: none, tensorboard, wandb)")
    progress: bool = _f(True, "show the progress bar")


# The paper's SFT recipe (DESIGN §4, paper §4.1) on LLaVA-1.5/1.6 (decided where the paper is silent):
# - full fine-tune of projector + language model with the CLIP tower frozen, as LLaVA-1.5's own visual
#   instruction tuning does (its vision encoder is never updated; the paper builds on that recipe);
# - global batch 64 = 8 GPUs x 8 per device x 1 accumulation step; on fewer GPUs accumulation grows, so
#   the optimisation is the same on any cluster shape;
# - bf16 with gradient checkpointing, weight decay 0 and no separate projector lr, as LLaVA-1.5's finetune
#   script; max_length 2048 (LLaVA-1.5's model_max_length).
PAPER: dict[str, Any] = {
    "lr": 2e-5,
    "adam_beta1": 0.9,
    "adam_beta2": 0.999,
    "scheduler": "cosine",
    "warmup_ratio": 0.03,
    "weight_decay": 0.0,
    "epochs": 2.0,
    "per_device_batch": 8,
    "global_batch": 64,
    "bf16": True,
    "gradient_checkpointing": True,
    "freeze_vision_tower": True,
    "max_length": 2048,
    "dataloader_workers": 4,
    "save_steps": 500,
    "logging_steps": 10,
}

# The CPU miniature: fp32, a tiny LLaVA built from the shape fields, lr 1e-3, batch 32, cosine with a short
# warmup (ENVIRONMENT.md's measured run); the tiny vision tower is random, so it trains too.
TINY: dict[str, Any] = {
    "base_model": "tiny",
    "lr": 1e-3,
    "scheduler": "cosine",
    "warmup_ratio": 0.02,
    "weight_decay": 0.0,
    "per_device_batch": 32,
    "global_batch": None,
    "bf16": False,
    "fp16": False,
    "freeze_vision_tower": False,
    "max_length": 512,
    "save_steps": 200,
    "logging_steps": 5,
}

PRESET_VALUES = {"paper": PAPER, "tiny": TINY}


def _types() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def _base_type(tp: Any) -> Any:
    """``int`` for ``int | None``, ``list`` for ``list[str]``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _base_type(args[0])
    return typing.get_origin(tp) or tp


def _coerce(name: str, value: Any) -> Any:
    tp = _types()[name]
    optional = type(None) in typing.get_args(tp)
    base = _base_type(tp)
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and optional):
        if not optional:
            raise ConfigError(f"{name} may not be empty")
        return None
    try:
        if base is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if base is list:
            items = value.split(",") if isinstance(value, str) else list(value)
            return [str(v).strip() for v in items if str(v).strip()]
        if base is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return base(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: {value!r} is not a valid {base.__name__}") from exc


def read_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of TrainConfig fields, not a {type(data).__name__}")
    # Relative paths in a config file are relative to the folder the command runs in (like the flags).
    return data


def build_config(
    yaml_values: dict[str, Any] | None = None, flags: dict[str, Any] | None = None
) -> TrainConfig:
    """Defaults < preset < YAML < flags; unknown keys and bad values raise :class:`ConfigError`."""
    yaml_values, flags = dict(yaml_values or {}), dict(flags or {})
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    for source, values in (("config file", yaml_values), ("flags", flags)):
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown {source} key(s): {', '.join(unknown)}")
    preset = str(flags.get("preset") or yaml_values.get("preset") or "tiny")
    if preset not in PRESETS:
        raise ConfigError(f"preset {preset!r} is not one of {', '.join(PRESETS)}")
    merged: dict[str, Any] = {**PRESET_VALUES[preset], **yaml_values, **flags, "preset": preset}
    config = TrainConfig(**{k: _coerce(k, v) for k, v in merged.items()})
    validate(config)
    return config


def validate(config: TrainConfig) -> None:
    if not config.data:
        raise ConfigError("data is required: the LLaVA training JSON (--data or `data:` in the config)")
    if not config.output_dir:
        raise ConfigError("output_dir is required (--output-dir or `output_dir:` in the config)")
    if config.arch not in ("auto", "llava", "llava_next"):
        raise ConfigError(f"arch {config.arch!r} is not auto, llava or llava_next")
    if config.bf16 and config.fp16:
        raise ConfigError("choose one of bf16 and fp16")
    if config.global_batch is not None and config.grad_accum is not None:
        raise ConfigError("give global_batch or grad_accum, not both")
    for name in ("per_device_batch", "max_length", "save_steps", "logging_steps"):
        if getattr(config, name) < 1:
            raise ConfigError(f"{name} must be at least 1")
    if config.lr <= 0 or config.epochs <= 0:
        raise ConfigError("lr and epochs must be positive")
    if not 0.0 <= config.warmup_ratio < 1.0:
        raise ConfigError("warmup_ratio must be in [0, 1)")
    if config.max_time_minutes is not None and config.max_time_minutes <= 0:
        raise ConfigError("max_time_minutes must be positive")
    if config.box_token_weight <= 0:
        raise ConfigError(f"box_token_weight must be positive, got {config.box_token_weight}")


def grad_accumulation(config: TrainConfig, world_size: int) -> int:
    """Accumulation steps that make ``global_batch`` out of ``world_size`` devices, or ``grad_accum``."""
    if config.global_batch is None:
        return config.grad_accum or 1
    per_step = world_size * config.per_device_batch
    if config.global_batch % per_step:
        raise ConfigError(
            f"global_batch {config.global_batch} is not a multiple of world size {world_size} x "
            f"per_device_batch {config.per_device_batch}; change one of them"
        )
    return config.global_batch // per_step


def argument_parser(prog: str = "giqa train") -> argparse.ArgumentParser:
    """One flag per field (``--max-steps``), each defaulting to 'not given' so the YAML value stands."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Fine-tune a LLaVA-family model on a LLaVA JSON (loss on answer tokens only). Values come from "
            "the preset, then --config FILE.yaml, then these flags."
        ),
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--config", help="YAML file of TrainConfig fields (configs/train/*.yaml)")
    hints = _types()
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[operator]
        default = TINY.get(f.name, default)  # tiny is the default preset
        paper = f"; paper preset: {PAPER[f.name]}" if f.name in PAPER and PAPER[f.name] != default else ""
        helptext = f"{f.metadata['help']} (default: {default}{paper})"
        if _base_type(hints[f.name]) is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, help=helptext)
        else:
            parser.add_argument(flag, dest=f.name, metavar=f.name.upper(), help=helptext)
    return parser


def parse_args(argv: list[str]) -> TrainConfig:
    """A :class:`TrainConfig` from command-line arguments (``--config`` read first)."""
    namespace = vars(argument_parser().parse_args(argv))
    config_file = namespace.pop("config", None)
    return build_config(read_yaml(config_file) if config_file else {}, namespace)
