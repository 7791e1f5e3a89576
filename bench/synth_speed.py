"""GIQA-Synth throughput and memory: scenes per second and peak memory for 1,000 scenes.

Compares, in one run and on the same scenes: generating only (pixels + record in memory), generating
and PNG-encoding, and the full ``write_scenes`` (PNG files + annotations.jsonl, atomic writes). Peak
memory comes from tracemalloc (Python and numpy allocations, measured in a separate pass because
tracing slows the code down) and from the process's maximum resident set size.

    .venv/bin/python bench/synth_speed.py [--n 1000] [--size 128] [--seed 0]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from giqa.synth import SynthConfig, generate_scene
from giqa.synth.writer import png_bytes, write_scenes


def _generate(n: int, seed: int, config: SynthConfig) -> None:
    for i in range(n):
        generate_scene(seed, i, config)


def _generate_png(n: int, seed: int, config: SynthConfig) -> None:
    for i in range(n):
        image, record = generate_scene(seed, i, config)
        png_bytes(image)
        record.model_dump_json()


def _write(n: int, seed: int, config: SynthConfig) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        write_scenes(n, seed, Path(tmp), config, progress=False)


def _timed(fn: Callable[[int, int, SynthConfig], None], n: int, seed: int, config: SynthConfig) -> float:
    start = time.perf_counter()
    fn(n, seed, config)
    return time.perf_counter() - start


def _traced_peak(
    fn: Callable[[int, int, SynthConfig], None], n: int, seed: int, config: SynthConfig
) -> float:
    tracemalloc.start()
    try:
        fn(n, seed, config)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="scenes per measurement (default 1000)")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be >= 1")
    config = SynthConfig(width=args.size, height=args.size)

    generate_scene(args.seed, 0, config)  # warm imports and caches outside the timings
    python = sys.version.split()[0]
    print(f"GIQA-Synth speed: {args.n} scenes of {args.size}x{args.size}, seed {args.seed}, python {python}")
    print(f"{'mode':<34}{'seconds':>9}{'scenes/s':>10}{'ms/scene':>10}{'peak MiB (tracemalloc)':>25}")
    modes = [
        ("generate only (baseline)", _generate),
        ("generate + PNG encode + JSON", _generate_png),
        ("write_scenes (files, atomic)", _write),
    ]
    baseline = None
    for name, fn in modes:
        seconds = _timed(fn, args.n, args.seed, config)
        peak = _traced_peak(fn, args.n, args.seed, config)
        baseline = baseline or seconds
        rate = args.n / seconds
        print(
            f"{name:<34}{seconds:>9.2f}{rate:>10.1f}{1000 * seconds / args.n:>10.2f}{peak:>25.1f}"
            f"   ({seconds / baseline:.2f}x baseline time)"
        )
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"process peak RSS (ru_maxrss, whole run): {maxrss:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
