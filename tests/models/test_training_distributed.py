"""A real data-parallel run: ``torchrun --nproc_per_node 2`` (gloo, CPU) against one process.

At the same global batch (8 = 1 x 8 and 2 x 4) and seed, both see the same samples at every step, the loss is
averaged over the same answer tokens (transformers' ``num_items_in_batch`` across devices), so the loss curves
must agree up to floating-point reduction order. Before use_cpu + gloo were set, each rank silently
trained alone (world size 2 reported, no DDP) and this test saw losses twice the single-process ones.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from training_helpers import SMALL_MODEL, read_losses, synth_export

pytestmark = [pytest.mark.models, pytest.mark.slow]  # two launches: ~2.5 min on the shared 2-core machine


def _run(data: Path, out: Path, nproc: int, per_device: int) -> subprocess.CompletedProcess[str]:
    flags = ["train", "--data", str(data), "--output-dir", str(out), "--preset", "tiny", "--no-progress"]
    flags += [f"--{k.replace('_', '-')}={v}" for k, v in SMALL_MODEL.items()]
    flags += ["--per-device-batch", str(per_device), "--global-batch", "8", "--max-steps", "4"]
    flags += ["--logging-steps", "1", "--save-steps", "100", "--warmup-ratio", "0"]
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc_per_node",
        str(nproc),
        "--master_port",
        str(29500 + os.getpid() % 1000 + nproc),
        "-m",
        "giqa.cli",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2] / "shared")
    return subprocess.run(launcher + flags, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_two_gloo_processes_give_the_loss_curve_of_one(tmp_path: Path) -> None:
    data = synth_export(tmp_path / "synth", n=6)
    one = _run(data, tmp_path / "one", nproc=1, per_device=8)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _run(data, tmp_path / "two", nproc=2, per_device=4)
    assert two.returncode == 0, two.stderr[-3000:]
    single, double = read_losses(tmp_path / "one"), read_losses(tmp_path / "two")
    assert len(single) == len(double) == 4
    assert single[-1] < single[0]
    # The same 8 samples per step on both sides; only the float reduction order differs.
    assert double == pytest.approx(single, rel=2e-4), (single, double)
    assert (tmp_path / "two" / "final" / "model.safetensors").is_file()
