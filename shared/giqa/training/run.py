"""One training run from a :class:`TrainConfig`: model, data, ``Trainer``, final model, optional evaluation.

Works the same in one process and under ``torchrun`` / ``accelerate launch`` (the process group is set up
by ``TrainingArguments``); files outside the checkpoints are written by the main process only.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from giqa.training.config import TrainConfig, grad_accumulation

log = logging.getLogger(__name__)

TINY_BASE = "base-tiny"
FINAL = "final"
SKIPPED_FILE = "skipped.json"


@dataclass
class TrainResult:
    output_dir: Path
    final: Path
    steps: int
    skipped: dict[str, Any]
    stopped_by_time: bool
    report: dict[str, Any] | None = None


def _world_size() -> int:
    import os

    return int(os.environ.get("WORLD_SIZE", "1"))


def training_arguments(config: TrainConfig, output_dir: Path) -> Any:
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(output_dir),
        learning_rate=config.lr,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.per_device_batch,
        gradient_accumulation_steps=grad_accumulation(config, _world_size()),
        warmup_steps=config.warmup_ratio,  # transformers 5: a float below 1 is a share of the steps
        lr_scheduler_type=config.scheduler,
        weight_decay=config.weight_decay,
        adam_beta1=config.adam_beta1,
        adam_beta2=config.adam_beta2,
        max_grad_norm=config.max_grad_norm,
        optim="adamw_torch",
        bf16=config.bf16,
        fp16=config.fp16,
        activation_checkpointing=config.gradient_checkpointing,
        seed=config.seed,
        data_seed=config.seed,
        dataloader_num_workers=config.dataloader_workers,
        dataloader_pin_memory=torch.cuda.is_available(),
        dataloader_persistent_workers=config.dataloader_workers > 0,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=None,  # rotated by SFTTrainer once a newer checkpoint is marked complete
        logging_strategy="steps",
        logging_steps=config.logging_steps,
        logging_first_step=True,
        remove_unused_columns=False,  # the collator builds exactly the model's inputs
        label_names=["labels"],
        report_to=[] if config.report_to == "none" else config.report_to.split(","),
        disable_tqdm=not config.progress,
        deepspeed=config.deepspeed,
        fsdp=config.fsdp or "",
        fsdp_config=config.fsdp_config,
        ddp_find_unused_parameters=False,
        # On CPU, transformers 5 needs both of these under torchrun; without them it reports world size 2 but
        # never wraps the model in DDP, and every rank trains alone on its share of the data.
        use_cpu=not torch.cuda.is_available(),
        ddp_backend=config.ddp_backend
        or (None if torch.cuda.is_available() or _world_size() == 1 else "gloo"),
    )


def _prepare_base(config: TrainConfig, output_dir: Path, rows: list[Any], args: Any) -> Path:
    """The checkpoint to start from: ``base_model``, or a tiny LLaVA built once into the run folder."""
    if config.base_model != "tiny":
        return Path(config.base_model)
    from giqa.models.tiny import build_tiny_llava
    from giqa.training.checkpoints import publish, staging_dir

    base = output_dir / TINY_BASE
    with args.main_process_first(desc="build the tiny base model"):
        if args.process_index == 0 and not (base / "config.json").is_file():
            corpus = [
                part["text"] for row in rows for m in row.messages for part in m["content"] if "text" in part
            ]
            tmp = staging_dir(base)
            build_tiny_llava(
                tmp,
                arch="llava_next" if config.arch == "llava_next" else "llava",
                image_size=config.image_size,
                patch_size=config.patch_size,
                seed=config.seed,
                vision_hidden=config.vision_hidden,
                vision_layers=config.vision_layers,
                text_hidden=config.text_hidden,
                text_layers=config.text_layers,
                heads=config.heads,
                corpus=corpus,
                spatial_init=config.spatial_init,
            )
            publish(tmp, base)
    return base


def load_model(config: TrainConfig, base: Path) -> tuple[Any, Any]:
    import torch
    from transformers import LlavaForConditionalGeneration, LlavaNextForConditionalGeneration

    from giqa.models.llava import detect_arch, load_processor

    arch = detect_arch(base) if config.arch == "auto" else config.arch
    cls = LlavaNextForConditionalGeneration if arch == "llava_next" else LlavaForConditionalGeneration
    # Weights stay fp32 for autocast unless DeepSpeed keeps its own fp32 master copy (decided).
    dtype = torch.bfloat16 if config.bf16 and config.deepspeed else torch.float32
    model: Any = cls.from_pretrained(base, dtype=dtype, local_files_only=True)
    model.config.use_cache = False
    processor = load_processor(base, padding_side="right")
    if config.freeze_vision_tower:
        for name, param in model.named_parameters():
            if "vision_tower" in name:
                param.requires_grad_(False)
    freeze_unused_vision_layers(model)
    if config.lora:
        from peft import LoraConfig, get_peft_model

        # Adapters on the language model only: CLIP's attention uses the same module names.
        names = "|".join(config.lora_target_modules)
        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=rf".*language_model.*\.({names})",
            task_type="CAUSAL_LM",
        )
        if config.gradient_checkpointing:
            model.enable_input_require_grads()
        model = get_peft_model(model, lora)
    return model, processor


_VISION_LAYER = re.compile(r"vision_tower\.(?:vision_model\.)?encoder\.layers\.(\d+)\.")


def freeze_unused_vision_layers(model: Any) -> list[str]:
    """Freeze the vision layers past ``vision_feature_layer`` and the tower's final norm (decided).

    LLaVA reads image features from an inner layer (-2 by default), so these weights never get a gradient;
    left trainable, DDP stops on them as unused parameters. Returns the frozen names.
    """
    config = model.config
    chosen = config.vision_feature_layer
    total = config.vision_config.num_hidden_layers
    deepest = max(chosen) if isinstance(chosen, list | tuple) else chosen
    used = deepest if deepest >= 0 else total + 1 + deepest  # hidden_states[k] is the output of layer k-1
    frozen = []
    for name, param in model.named_parameters():
        match = _VISION_LAYER.search(name)
        if (match and int(match.group(1)) >= used) or ("vision_tower" in name and "post_layernorm" in name):
            param.requires_grad_(False)
            frozen.append(name)
    return frozen


def save_final(trainer: Any, processor: Any, config: TrainConfig, output_dir: Path) -> Path:
    """``<output_dir>/final``: the (LoRA-merged) model + processor, written aside and renamed into place."""
    from giqa.training.checkpoints import publish, staging_dir

    final = output_dir / FINAL
    is_main = trainer.args.process_index == 0
    tmp = staging_dir(final) if is_main else final.with_name(f".{final.name}.tmp")
    trainer.accelerator.wait_for_everyone()
    if config.lora:
        if is_main:  # a merged model loads in `giqa predict` and vLLM without PEFT
            merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
            merged.save_pretrained(tmp, safe_serialization=True)
    else:
        trainer.save_model(str(tmp))  # every rank: ZeRO-3 / FSDP gather their shards here
    trainer.accelerator.wait_for_everyone()
    if is_main:
        processor.tokenizer.padding_side = "left"  # inference batches pad on the left
        processor.save_pretrained(tmp)
        (tmp / "train_config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")
        publish(tmp, final)
    trainer.accelerator.wait_for_everyone()
    return final


def train(config: TrainConfig, *, callbacks: list[Any] | None = None) -> TrainResult:
    """Train as configured; returns where the final model went and what was skipped."""
    from giqa.training.callbacks import LOSS_CURVE, METRICS_FILE, MetricsJsonl, TimeBudget, plot_loss_curve
    from giqa.training.checkpoints import last_complete, remove_incomplete
    from giqa.training.data import Collator, LlavaJsonDataset, SkipLog, read_rows
    from giqa.training.trainer import SFTTrainer, WeightedTokenLoss, number_token_ids

    output_dir = Path(config.output_dir)
    skips = SkipLog()
    rows = read_rows(config.data, config.image_root, skips)  # a wrong file fails here, before any model
    args = training_arguments(config, output_dir)  # sets up the process group under torchrun
    is_main = args.process_index == 0
    resume_from = None
    if config.resume:
        if is_main:
            remove_incomplete(output_dir)
        resume_from = last_complete(output_dir)
        log.info("resuming from %s", resume_from or "scratch: no complete checkpoint yet")
    elif is_main and (output_dir / METRICS_FILE).exists():
        (output_dir / METRICS_FILE).unlink()  # a fresh run starts a fresh log
    output_dir.mkdir(parents=True, exist_ok=True)
    base = _prepare_base(config, output_dir, rows, args)
    model, processor = load_model(config, base)
    dataset = LlavaJsonDataset(rows, processor, max_length=config.max_length, skips=skips)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=Collator(processor.tokenizer.pad_token_id),
        processing_class=processor,
        skips=skips,
        projector_lr=config.tune_projector_lr,
        keep_checkpoints=config.save_total_limit,
        compute_loss_func=(
            WeightedTokenLoss(number_token_ids(processor.tokenizer), config.box_token_weight)
            if config.box_token_weight != 1.0
            else None
        ),
        callbacks=[MetricsJsonl(output_dir), *(callbacks or [])],
    )
    budget = None
    if config.max_time_minutes:
        budget = TimeBudget(config.max_time_minutes, trainer.decide_all)
        trainer.add_callback(budget)
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    final = save_final(trainer, processor, config, output_dir)
    skipped = _all_skips(trainer, skips)
    report = None
    if is_main:
        (output_dir / SKIPPED_FILE).write_text(json.dumps(skipped, indent=2) + "\n", encoding="utf-8")
        plot_loss_curve(output_dir / METRICS_FILE, output_dir / LOSS_CURVE)
        if config.eval_bench:
            from giqa.training.evaluate import evaluate_checkpoint

            report = evaluate_checkpoint(
                final, Path(config.eval_bench), output_dir / "eval", config.eval_limit
            )
    return TrainResult(
        output_dir=output_dir,
        final=final,
        steps=trainer.state.global_step,
        skipped=skipped,
        stopped_by_time=bool(budget and budget.stopped_at is not None),
        report=report,
    )


def _all_skips(trainer: Any, skips: Any) -> dict[str, Any]:
    """The skipped-row summary over every rank (each rank sees its own share of the rows)."""
    if trainer.args.world_size == 1:
        return skips.as_dict()
    from accelerate.utils import gather_object

    from giqa.training.data import SkipLog

    merged = SkipLog()
    for part in gather_object([skips.as_dict()]):
        for kind, count in part["by_reason"].items():
            merged.counts[kind] += count
            merged.examples.setdefault(kind, []).extend(part["examples"].get(kind, []))
    return merged.as_dict()
