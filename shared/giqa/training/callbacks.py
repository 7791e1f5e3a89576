"""Trainer callbacks: the metrics JSONL, the wall-time budget and the loss-curve PNG."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

METRICS_FILE = "metrics.jsonl"
LOSS_CURVE = "loss_curve.png"
# transformers' log keys -> the metrics file's names
_RENAME = {
    "learning_rate": "lr",
    "train_samples_per_s": "samples_per_s",
    "train_tokens_per_s": "tokens_per_s",
}


class MetricsJsonl(TrainerCallback):
    """One JSON line per log: step, max_steps (the steps the run will take), epoch, elapsed seconds, loss, lr,
    grad_norm, samples/s, tokens/s. The trainer service tails this file for a job's progress and ETA."""

    def __init__(self, output_dir: Path) -> None:
        self.path = output_dir / METRICS_FILE
        self.started = time.monotonic()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started = time.monotonic()

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        row: dict[str, Any] = {"step": state.global_step, "max_steps": state.max_steps}
        row["epoch"] = round(state.epoch or 0.0, 4)
        row["elapsed_s"] = round(time.monotonic() - self.started, 2)
        for key, value in logs.items():
            row[_RENAME.get(key, key)] = value
        with self.path.open("a", encoding="utf-8") as handle:  # an append-only log; a torn line is skipped
            handle.write(json.dumps(row) + "\n")


class TimeBudget(TrainerCallback):
    """Stop cleanly once ``minutes`` of training have passed: save a checkpoint, then training ends.

    Every rank must stop at the same step, so rank 0's clock decides (``decide`` reduces the flag).
    """

    def __init__(self, minutes: float, decide: Any) -> None:
        self.seconds = minutes * 60.0
        self.decide = decide
        self.started = time.monotonic()
        self.stopped_at: int | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started = time.monotonic()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.decide(time.monotonic() - self.started >= self.seconds):
            control.should_training_stop = True
            control.should_save = True
            self.stopped_at = state.global_step


def read_metrics(path: Path) -> list[dict[str, Any]]:
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def plot_loss_curve(metrics: Path, out: Path) -> Path | None:
    """Training loss (and lr on a second axis) against the step, from the metrics JSONL."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in read_metrics(metrics) if "loss" in r]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], color="tab:blue", label="loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (answer tokens)")
    ax.grid(alpha=0.3)
    if any("lr" in r for r in rows):
        lr_ax = ax.twinx()
        lr_ax.plot([r["step"] for r in rows], [r.get("lr", 0.0) for r in rows], color="tab:orange", alpha=0.6)
        lr_ax.set_ylabel("learning rate", color="tab:orange")
    ax.set_title(
        f"training loss: {rows[0]['loss']:.3f} -> {rows[-1]['loss']:.3f} in {rows[-1]['step']} steps"
    )
    fig.tight_layout()
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(out)
    return out
