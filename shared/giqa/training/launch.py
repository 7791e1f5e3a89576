"""Launcher of a training child: ``giqa train`` that lives no longer than the worker that started it.

The trainer's local launcher (``services.trainer.launchers``) runs this file as a module::

    python -m giqa.training.launch --parent-pid P --control-fd F -- <giqa train arguments>

It arms the same three parent-death guards as the embedded LLM server's launcher (:mod:`giqa.llm._child`,
whose functions it reuses): the kernel's parent-death SIGKILL, EOF on the control socket whose other end
the parent holds, and a changed ``getppid()``. Then it runs ``giqa train`` in this process, so the worker
that dies (even by SIGKILL) takes its training run with it, and a cancel is a signal to this process group.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading


def main(argv: list[str] | None = None) -> int:
    from giqa.llm._child import set_parent_death_signal, watch_parent

    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(prog="giqa.training.launch")
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--no-pdeathsig", action="store_true", help="the parent forked from a thread")
    ours = parser.parse_args(argv[:split])
    control = socket.socket(fileno=ours.control_fd)
    if not ours.no_pdeathsig:  # the kernel's "parent" is the forking thread: only the main thread is safe
        set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != ours.parent_pid:  # the parent died before the signal was armed
        return 0
    threading.Thread(
        target=watch_parent, args=(control, ours.parent_pid), name="giqa-parent-watch", daemon=True
    ).start()
    from giqa.cli import app

    try:
        app(["train", *argv[split + 1 :]], prog_name="giqa", standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
