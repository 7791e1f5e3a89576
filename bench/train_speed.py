"""Training throughput of the tiny preset: samples/s, tokens/s and the share of step time spent waiting for
data (loading + collation), for 1 process and for 2 processes (torchrun, gloo, CPU) at the same global batch.

The data share is the time spent inside ``Trainer.get_batch_samples`` (fetching the next batches from the
dataloader; with ``--workers 0`` this is all loading and collation) over the training time; rank 0 reports.
Throughput comes from the run's own metrics.jsonl (the first log, which includes start-up, is left out).
No GPU is used or needed.

    .venv/bin/python bench/train_speed.py [--steps 12] [--workers 1] [--cores 2] [--minutes 0.75]

Each run stops after --steps or --minutes of training, whichever comes first (about 2 min in all when quiet).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULT = "bench_result.json"


def worker(argv: list[str], result_path: Path) -> None:
    """One training run (one rank of it under torchrun), timing the dataloader waits."""
    from transformers import Trainer

    from giqa.training.config import parse_args
    from giqa.training.run import train

    waited = [0.0]
    original = Trainer.get_batch_samples

    def timed(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        start = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            waited[0] += time.perf_counter() - start

    Trainer.get_batch_samples = timed  # type: ignore[method-assign]
    config = parse_args(argv)
    start = time.perf_counter()
    result = train(config)
    wall = time.perf_counter() - start
    if os.environ.get("RANK", "0") == "0":
        rows = [json.loads(x) for x in (Path(config.output_dir) / "metrics.jsonl").read_text().splitlines()]
        logs = [r for r in rows if "samples_per_s" in r]
        logs = logs[1:] or logs  # the first log includes start-up
        result_path.write_text(
            json.dumps(
                {
                    "steps": result.steps,
                    "samples_per_s": sum(r["samples_per_s"] for r in logs) / max(len(logs), 1),
                    "tokens_per_s": sum(r["tokens_per_s"] for r in logs) / max(len(logs), 1),
                    "data_s": waited[0],
                    "train_runtime_s": next((r["train_runtime"] for r in rows if "train_runtime" in r), wall),
                }
            )
        )


def _launch(nproc: int, data: Path, out: Path, args: argparse.Namespace) -> dict:
    per_device = args.global_batch // nproc
    flags = ["--data", str(data), "--output-dir", str(out), "--preset", "tiny", "--no-progress"]
    flags += ["--image-size", str(args.image_size), "--patch-size", str(args.patch_size)]
    flags += ["--per-device-batch", str(per_device), "--global-batch", str(args.global_batch)]
    flags += ["--max-steps", str(args.steps), "--logging-steps", "2", "--save-steps", "100000"]
    flags += ["--dataloader-workers", str(args.workers), "--max-time-minutes", str(args.minutes)]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(max(1, args.cores // nproc)),
        "GIQA_BENCH_RESULT": str(out / RESULT),
    }
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(nproc)]
    cmd += ["--master_port", str(29400 + nproc), __file__, "--worker", *flags]
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=600)
    return json.loads((out / RESULT).read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps per run")
    parser.add_argument("--workers", type=int, default=1, help="dataloader workers per process")
    parser.add_argument("--cores", type=int, default=2, help="CPU threads shared by the processes")
    parser.add_argument("--global-batch", type=int, default=32)
    parser.add_argument("--scenes", type=int, default=60)
    parser.add_argument(
        "--image-size", type=int, default=128, help="scene and model image side (the demo VLM's: 128)"
    )
    parser.add_argument(
        "--patch-size", type=int, default=16, help="vision patch side (the demo VLM's: 16, 64 image tokens)"
    )
    parser.add_argument(
        "--minutes", type=float, default=0.75, help="training-time bound per run (stops early)"
    )
    args = parser.parse_args()
    from typer.testing import CliRunner

    from giqa.cli import app

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        runner = CliRunner()
        scenes = tmp / "scenes"
        runner.invoke(
            app,
            [
                "synth",
                "scenes",
                "--n",
                str(args.scenes),
                "--size",
                str(args.image_size),
                "--out",
                str(scenes),
                "--seed",
                "3",
                "--no-progress",
            ],
            catch_exceptions=False,
        )
        data = scenes / "llava.json"
        runner.invoke(app, ["synth", "export", str(scenes), "--out", str(data)], catch_exceptions=False)
        rows = []
        for nproc in (1, 2):
            r = _launch(nproc, data, tmp / f"run{nproc}", args)
            share = r["data_s"] / r["train_runtime_s"]
            rows.append((nproc, r, share))
    print(
        f"tiny preset ({args.image_size} px, {(args.image_size // args.patch_size) ** 2} image tokens, ~3M "
        f"params), global batch {args.global_batch}, "
        f"{args.steps} steps, {args.workers} dataloader worker(s)/process, {args.cores} CPU threads in all; "
        "no GPU lent to this task"
    )
    print(f"{'processes':>9} | {'samples/s':>9} | {'tokens/s':>9} | {'s/step':>7} | {'data share':>10}")
    for nproc, r, share in rows:
        print(
            f"{nproc:>9} | {r['samples_per_s']:>9.1f} | {r['tokens_per_s']:>9.0f} | "
            f"{r['train_runtime_s'] / r['steps']:>7.2f} | {share:>9.1%}"
        )


if __name__ == "__main__":
    if "--worker" in sys.argv:
        argv = [a for a in sys.argv[1:] if a != "--worker"]
        worker(argv, Path(os.environ["GIQA_BENCH_RESULT"]))
    else:
        main()
