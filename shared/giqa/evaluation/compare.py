"""A chart comparing several reports: the paper's Fig. 1 radar, or grouped bars.

Every metric is put on 0–1 (BLEU@4 and LLM-Score are divided by 100). A null metric (N/A) is drawn at 0
and its axis label says so, so a missing value is never mistaken for a real zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from giqa.evaluation.table import COLUMNS
from giqa.files import atomic_writer

ChartKind = Literal["radar", "bars"]


def _axes() -> list[tuple[str, str, str, float]]:
    """(section, key, label, divisor) for each plotted metric."""
    out = []
    for section, key, header, _ in COLUMNS:
        prefix = "DES" if section == "des" else "VQA"
        divisor = 100.0 if key in ("bleu4", "llm_score") else 1.0
        out.append((section, key, f"{prefix} {header}", divisor))
    return out


def chart_values(report: dict[str, Any]) -> list[float | None]:
    """The report's metrics on 0–1, ``None`` for N/A, in :data:`COLUMNS` order."""
    values: list[float | None] = []
    for section, key, _, divisor in _axes():
        v = report.get(section, {}).get(key)
        values.append(None if v is None else float(v) / divisor)
    return values


def compare_chart(
    reports: Sequence[tuple[str, dict[str, Any]]],
    out: str | Path,
    *,
    kind: ChartKind = "radar",
    title: str = "",
) -> Path:
    """Draw ``reports`` (name, report) into a PNG at ``out``; returns the path."""
    if not reports:
        raise ValueError("nothing to compare: give at least one report")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.projections.polar import PolarAxes

    axes = _axes()
    series = [(name, chart_values(rep)) for name, rep in reports]
    missing = [any(vals[k] is None for _, vals in series) for k in range(len(axes))]
    labels = [
        label + (" (N/A=0)" if miss else "") for (_, _, label, _), miss in zip(axes, missing, strict=True)
    ]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if kind == "radar":
        angles = [2 * math.pi * k / len(axes) for k in range(len(axes))]
        fig = plt.figure(figsize=(8, 8))
        ax = fig.add_subplot(projection="polar")
        assert isinstance(ax, PolarAxes)
        for name, vals in series:
            ys = [v or 0.0 for v in vals]
            ax.plot([*angles, angles[0]], [*ys, ys[0]], linewidth=1.8, label=name)
            ax.fill([*angles, angles[0]], [*ys, ys[0]], alpha=0.12)
        ax.set_xticks(angles)
        ax.set_xticklabels(labels, fontsize=8)
        ax.tick_params(axis="x", pad=12)  # keep metric names off the rings
        ax.set_rlabel_position(180 / len(axes))  # radial numbers between two axes, not on one
        ax.set_ylim(0, 1)
        ax.legend(loc="upper right", bbox_to_anchor=(1.3, 1.1), fontsize=8)
    elif kind == "bars":
        fig, ax = plt.subplots(figsize=(max(8, 1.2 * len(axes)), 5))
        width = 0.8 / len(series)
        for k, (name, vals) in enumerate(series):
            xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(axes))]
            ax.bar(xs, [v or 0.0 for v in vals], width=width, label=name)
        ax.set_xticks(range(len(axes)))
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("score (BLEU@4 and LLM-Score / 100)")
        ax.legend(fontsize=8)
    else:
        raise ValueError(f"unknown chart kind {kind!r}; expected 'radar' or 'bars'")
    ax.set_title(title or "GIQA-Bench")
    fig.tight_layout()
    try:
        with atomic_writer(out, "wb") as handle:
            fig.savefig(handle, dpi=120, format="png")
    finally:
        plt.close(fig)
    return out
