"""How fast the embedded LLM server follows its parent out: signal the parent, time until the server is gone.

    python bench/process_hygiene.py [--repeats 3]

Cases: the CLI (`giqa llm serve`) stopped by SIGTERM / SIGINT / SIGHUP (its own clean shutdown), or killed by
SIGKILL (the launcher's parent-death signal); a Python parent SIGKILLed with the parent-death signal off
(the watchdog alone: control-socket EOF), and the same with a forked worker holding the socket open (the
watchdog's parent-pid poll). Needs psutil (the dev extra) and the embedded LLM (`giqa[llm]`).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil

SHARED = Path(__file__).resolve().parents[1] / "shared"
CLI = ["-c", "from giqa.cli import main; main()", "llm", "serve"]
HOLDER = textwrap.dedent(
    """
    import os, sys, time
    from giqa.llm.server import EmbeddedLLMServer

    server = EmbeddedLLMServer(parent_death_signal=False).start()
    if sys.argv[1] == "fork" and os.fork() == 0:
        time.sleep(60)
        os._exit(0)
    print("up", flush=True)  # after the fork
    time.sleep(600)
    """
)


def server_of(parent: subprocess.Popen[bytes]) -> psutil.Process:
    """The parent's server, once the parent said it is up (its first stdout line)."""
    assert parent.stdout is not None
    if not parent.stdout.readline():
        raise SystemExit(f"the parent exited with {parent.wait()} before its server was up")
    for child in psutil.Process(parent.pid).children(recursive=True):
        if any(part.endswith("_child.py") for part in child.cmdline()):
            return child
    raise SystemExit("the parent is up but runs no server")


def gone(process: psutil.Process) -> bool:
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def one(args: list[str], signum: int) -> tuple[float, int | None]:
    """Seconds from the signal until the server is gone (inf after 10 s), and the parent's exit code."""
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SHARED), os.environ.get("PYTHONPATH")]))
    }
    env.pop("GIQA_LLM__URL", None)
    parent = subprocess.Popen(
        [sys.executable, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    family: list[psutil.Process] = []
    try:
        server = server_of(parent)
        family = psutil.Process(parent.pid).children(recursive=True)  # the server, a forked worker
        sent = time.perf_counter()
        parent.send_signal(signum)
        while not gone(server) and time.perf_counter() - sent < 10.0:
            time.sleep(0.005)
        took = time.perf_counter() - sent if gone(server) else float("inf")
        return took, parent.wait(timeout=20)
    finally:
        for process in family:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    repeats = parser.parse_args().repeats
    with tempfile.TemporaryDirectory() as tmp:
        holder = Path(tmp) / "holder.py"
        holder.write_text(HOLDER)
        cases = [
            ("giqa llm serve, SIGTERM (clean shutdown)", CLI, signal.SIGTERM),
            ("giqa llm serve, SIGINT (clean shutdown)", CLI, signal.SIGINT),
            ("giqa llm serve, SIGHUP (clean shutdown)", CLI, signal.SIGHUP),
            ("giqa llm serve, SIGKILL (parent-death signal)", CLI, signal.SIGKILL),
            ("Python parent, SIGKILL, watchdog only (socket EOF)", [str(holder), "alone"], signal.SIGKILL),
            ("Python parent, SIGKILL, watchdog only (ppid poll)", [str(holder), "fork"], signal.SIGKILL),
        ]
        load = os.getloadavg()[0]
        print(f"machine: {os.cpu_count()} cores, load average {load:.1f}; {repeats} runs per case")
        print("| case | parent exit code | server gone after (median, max) |")
        print("|---|---|---|")
        for label, args, signum in cases:
            runs = [one(args, signum) for _ in range(repeats)]
            times = [t for t, _ in runs]
            codes = sorted({c for _, c in runs}, key=str)
            print(
                f"| {label} | {', '.join(map(str, codes))} | "
                f"{statistics.median(times) * 1000:.0f} ms, {max(times) * 1000:.0f} ms |"
            )


if __name__ == "__main__":
    main()
