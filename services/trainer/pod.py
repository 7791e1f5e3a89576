"""The entry point of a Kubernetes training pod (:mod:`services.trainer.kubernetes` renders the command).

Node 0 runs the job through :func:`services.trainer.runner.run_job` with ``torchrun`` as the child: it
claims the job, fetches the inputs into the shared job folder (``/data/jobs/<id>``, an RWX volume), reports
progress and publishes the checkpoint. The other nodes wait for node 0's ``config.yaml`` and run the same
``torchrun`` (their rank from the Indexed Job's completion index, or the training operator's ``RANK``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def torchrun_command(args: argparse.Namespace, node_rank: int, config: Path) -> list[str]:
    command = ["torchrun", "--nnodes", str(args.nnodes), "--nproc-per-node", str(args.nproc_per_node)]
    command += ["--node-rank", str(node_rank)]
    if args.rdzv_endpoint:
        command += ["--rdzv-backend", "c10d", "--rdzv-endpoint", args.rdzv_endpoint, "--rdzv-id", args.job_id]
    else:  # the training operator sets MASTER_ADDR and MASTER_PORT
        command += ["--master-addr", os.environ.get("MASTER_ADDR", "127.0.0.1")]
        command += ["--master-port", os.environ.get("MASTER_PORT", "29500")]
    return [*command, "-m", "giqa.cli", "train", "--config", str(config)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="services.trainer.pod")
    parser.add_argument("--job-id", required=True)
    parser.add_argument("--nnodes", type=int, default=1)
    parser.add_argument("--nproc-per-node", type=int, default=1)
    parser.add_argument("--rdzv-endpoint", default=None)
    parser.add_argument("--wait-s", type=float, default=3600.0, help="how long a node waits for node 0")
    args = parser.parse_args(argv)
    rank = int(os.environ.get("JOB_COMPLETION_INDEX") or os.environ.get("RANK") or 0)

    from giqa.settings import get_settings, jobs_dir
    from services.annotator.tasks import context
    from services.trainer.runner import Child, run_job, start_command

    folder = jobs_dir(get_settings()) / args.job_id
    if rank == 0:

        def start(config: Path, where: Path) -> Child:
            return start_command(torchrun_command(args, 0, config), where)

        state = run_job(context(), args.job_id, start=start, folder=folder)
        return 0 if state in ("succeeded", "") else 1
    config = folder / "config.yaml"
    deadline = time.monotonic() + args.wait_s
    while not config.is_file():
        if time.monotonic() > deadline:
            sys.stderr.write(f"node {rank}: no {config} after {args.wait_s:.0f} s; node 0 did not start\n")
            return 1
        time.sleep(2.0)
    os.chdir(folder)
    command = torchrun_command(args, rank, config)
    os.execvp(command[0], command)
    return 1  # pragma: no cover - exec does not return


if __name__ == "__main__":
    sys.exit(main())
