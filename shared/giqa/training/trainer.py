"""transformers' ``Trainer`` with what SFT of a grounded-IQA LLaVA adds: skipped-row bookkeeping,
throughput in the logs, an optional projector learning rate, and checkpoints marked complete."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer

from giqa.training.checkpoints import checkpoints, mark_complete
from giqa.training.data import SkipLog

PROJECTOR = "multi_modal_projector"


def number_token_ids(tokenizer: Any) -> list[int]:
    """Ids of the vocabulary's number tokens: whole grid indices in the tiny tokenizer, digit pieces in a BPE
    or SentencePiece one (word-start marks ignored). In grounded answers numbers are the box coordinates."""
    ids = []
    for token, index in tokenizer.get_vocab().items():
        bare = token.lstrip(" \u0120\u2581")  # " ", "Ġ" (byte-level BPE), "▁" (SentencePiece)
        if bare.isascii() and bare.isdigit():
            ids.append(int(index))
    return sorted(ids)


class WeightedTokenLoss:
    """Next-token cross-entropy over the labelled tokens, those in ``ids`` counting ``weight`` times.

    A ``compute_loss_func`` for transformers' ``Trainer`` (which then handles gradient accumulation and the
    token count across devices). Normalised like the causal-LM loss: by ``num_items_in_batch`` when given,
    else by the number of labelled tokens, so ``weight == 1`` gives the model's own loss.
    """

    def __init__(self, ids: list[int], weight: float) -> None:
        self.ids = torch.as_tensor(ids, dtype=torch.long)
        self.weight = float(weight)

    def __call__(self, outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs.logits
        shift_logits = logits[:, :-1, :].float()
        flat = labels[:, 1:].to(shift_logits.device).reshape(-1)
        per_token = torch.nn.functional.cross_entropy(
            shift_logits.reshape(-1, shift_logits.shape[-1]), flat, ignore_index=-100, reduction="none"
        )
        weights = torch.ones_like(per_token)
        weights[torch.isin(flat, self.ids.to(flat.device))] = self.weight
        total = (per_token * weights).sum()
        if num_items_in_batch is None:
            return total / (flat != -100).sum().clamp_min(1)
        if torch.is_tensor(num_items_in_batch):
            num_items_in_batch = num_items_in_batch.to(total.device)
        return total / num_items_in_batch


class SFTTrainer(Trainer):
    def __init__(
        self,
        *args: Any,
        skips: SkipLog,
        projector_lr: float | None = None,
        keep_checkpoints: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.skips = skips
        self.projector_lr = projector_lr
        self.keep_checkpoints = keep_checkpoints  # rotated here, after the marker; Trainer's own is off
        self._samples = 0
        self._tokens = 0
        self._since = time.monotonic()

    # ---------------------------------------------------------------- data bookkeeping
    def training_step(self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        for row_id, reason in inputs.pop("skipped", []):
            self.skips.add(row_id, reason)
        self._samples += int(inputs["input_ids"].shape[0])
        self._tokens += int(inputs["attention_mask"].sum())
        return super().training_step(model, inputs, *args, **kwargs)

    def compute_loss(self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        inputs.pop("skipped", None)  # evaluation paths do not go through training_step
        return super().compute_loss(model, inputs, *args, **kwargs)

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        """Adds samples/s and tokens/s over all ranks since the previous log (every rank calls this)."""
        if "loss" in logs and "train_runtime" not in logs:
            counts = torch.tensor([self._samples, self._tokens], dtype=torch.float64, device=self.args.device)
            if self.args.world_size > 1:
                counts = self.accelerator.reduce(counts, reduction="sum")
            now = time.monotonic()
            seconds = max(now - self._since, 1e-9)
            logs["train_samples_per_s"] = round(float(counts[0]) / seconds, 3)
            logs["train_tokens_per_s"] = round(float(counts[1]) / seconds, 1)
            self._samples = self._tokens = 0
            self._since = now
        super().log(logs, *args, **kwargs)

    def decide_all(self, flag: bool) -> bool:
        """True on every rank when rank 0 says so (a wall-time decision must be the same everywhere)."""
        if self.args.world_size == 1:
            return flag
        value = torch.tensor([1.0 if flag and self.args.process_index == 0 else 0.0], device=self.args.device)
        return bool(self.accelerator.reduce(value, reduction="sum").item() > 0)

    # ---------------------------------------------------------------- optimiser
    def create_optimizer(self, *args: Any, **kwargs: Any) -> Any:
        """Trainer's AdamW, plus a separate group for the multimodal projector when it has its own lr."""
        if self.projector_lr is None or self.optimizer is not None:
            return super().create_optimizer(*args, **kwargs)
        model: Any = self.model
        decay = set(self.get_decay_parameter_names(model))
        groups: dict[tuple[bool, bool], list[Any]] = {}
        for name, param in model.named_parameters():
            if param.requires_grad:
                groups.setdefault((PROJECTOR in name, name in decay), []).append(param)
        param_groups = [
            {
                "params": params,
                "weight_decay": self.args.weight_decay if with_decay else 0.0,
                **({"lr": self.projector_lr} if is_projector else {}),
            }
            for (is_projector, with_decay), params in sorted(groups.items())
        ]
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
        self.optimizer = optimizer_cls(param_groups, **optimizer_kwargs)
        return self.optimizer

    # ---------------------------------------------------------------- checkpoints
    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        """Resume the weights through ``from_pretrained``, which maps the saved key names back.

        transformers 5 saves LLaVA under its original key names (``language_model.model.*``) but Trainer's
        own resume loads them with ``load_state_dict(strict=False)`` under the new names: every key misses
        and training would silently restart from the base weights. DeepSpeed, FSDP and PEFT adapters keep
        their own loaders.
        """
        model = self.model if model is None else model
        folder = Path(resume_from_checkpoint)
        plain = (folder / "model.safetensors").is_file() or (
            folder / "model.safetensors.index.json"
        ).is_file()
        if self.is_deepspeed_enabled or self.is_fsdp_enabled or hasattr(model, "peft_config") or not plain:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        dtype = next(model.parameters()).dtype
        loaded = type(model).from_pretrained(folder, dtype=dtype, local_files_only=True)
        model.load_state_dict(loaded.state_dict(), strict=True)
        return None

    def _save_checkpoint(self, model: Any, trial: Any, *args: Any, **kwargs: Any) -> None:
        super()._save_checkpoint(model, trial, *args, **kwargs)
        self.accelerator.wait_for_everyone()  # every rank's shards are on disk before the marker
        if self.args.should_save:
            folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
            if folder.is_dir():
                mark_complete(folder, self.state.global_step)
                # Older checkpoints go only once a newer one is complete: a crash never leaves none.
                if self.keep_checkpoints:
                    for _step, old, _ok in checkpoints(folder.parent)[: -self.keep_checkpoints]:
                        shutil.rmtree(old, ignore_errors=True)
        self.accelerator.wait_for_everyone()
