"""What the load benchmarks share: latency percentiles, and the resident memory of processes sampled over
time and plotted (``soak.py``, ``inference_load.py``)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any


def percentiles(seconds: list[float]) -> dict[str, float]:
    """Count and p50/p95/p99 in milliseconds of latencies given in seconds (empty: {})."""
    import numpy as np

    if not seconds:
        return {}
    p50, p95, p99 = np.percentile(seconds, [50, 95, 99])
    return {"n": len(seconds), "p50_ms": 1000 * p50, "p95_ms": 1000 * p95, "p99_ms": 1000 * p99}


def rss_mib(pid: int, *, children: bool = True) -> float | None:
    """Resident memory of a process (with its children: an embedded server, a training child) in MiB;
    None once it is gone."""
    import psutil

    try:
        process = psutil.Process(pid)
        found = process.children(recursive=True) if children else []
        total = process.memory_info().rss
        for child in found:
            try:
                total += child.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total / 2**20
    except psutil.NoSuchProcess:
        return None


class MemorySampler:
    """A thread sampling :func:`rss_mib` of named processes every ``every_s`` until :meth:`stop`;
    ``samples``: one row per sample, ``t_s`` and MiB by name. ``own``: names counted without children
    (the benchmark process itself, whose children are listed under their own names)."""

    def __init__(self, pids: dict[str, int], every_s: float = 2.0, own: tuple[str, ...] = ("bench",)) -> None:
        self.pids, self.every_s, self.own = pids, every_s, own
        self.samples: list[dict[str, Any]] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="memory-sampler", daemon=True)

    def start(self) -> MemorySampler:
        self.thread.start()
        return self

    def _loop(self) -> None:
        started = time.monotonic()
        while not self.stopped.wait(self.every_s):
            row: dict[str, Any] = {"t_s": time.monotonic() - started}
            for name, pid in self.pids.items():
                row[name] = rss_mib(pid, children=name not in self.own)
            self.samples.append(row)

    def stop(self) -> list[dict[str, Any]]:
        self.stopped.set()
        self.thread.join()
        return self.samples

    def summary(self) -> dict[str, dict[str, float | None]]:
        """Start, end and peak MiB of each process."""
        out = {}
        for name in self.pids:
            seen = [row[name] for row in self.samples if row.get(name) is not None]
            out[name] = {
                "start_mib": seen[0] if seen else None,
                "end_mib": seen[-1] if seen else None,
                "peak_mib": max(seen) if seen else None,
            }
        return out


def plot_memory(samples: list[dict[str, Any]], path: Path, title: str) -> None:
    """Each process's resident memory over time, one line each, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    names = [k for k in samples[0] if k != "t_s"] if samples else []
    colors = plt.get_cmap("tab20").colors  # more processes than the default cycle's 10 colours
    for index, name in enumerate(names):
        ax.plot([s["t_s"] for s in samples], [s[name] for s in samples], label=name, color=colors[index % 20])
    ax.set_xlabel("seconds")
    ax.set_ylabel("resident memory (MiB, with children)")
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
