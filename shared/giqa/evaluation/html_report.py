"""One HTML page a person opens to see how a model did on a bench: the metric table, then each item's image
with the ground-truth boxes (green) beside the predicted ones (red), the question, the expected answer, the
model's answer and why the item scored what it did.

Built from what ``giqa eval`` already computes (the report and its per-item rows), so the page and the JSON
never disagree; images are embedded (:mod:`giqa.cards`), so the page can be mailed or archived alone.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from giqa.cards import Box, Card, render_page
from giqa.evaluation.table import format_table
from giqa.grid import DEFAULT_M, DEFAULT_N
from giqa.grounded_text import parse
from giqa.schemas import BenchItem

GT_COLOUR = "#34c759"
PRED_COLOUR = "#ff2d55"
QUESTION_COLOUR = "#5ac8fa"


def item_card(
    item: BenchItem,
    response: str | None,
    row: Mapping[str, Any] | None,
    grid: tuple[int, int] = (DEFAULT_N, DEFAULT_M),
) -> Card:
    """The card of one bench item: its boxes (truth, prediction, question) and texts; ``grid`` (n, m)
    decodes grid-index boxes."""
    kind = item.task.upper() if item.task == "des" else f"{item.qtype}/{item.mode}"
    card = Card(image=item.image, title=f"{item.id}  ({kind})")
    for obj in item.objects:
        card.boxes.append(Box(obj.box.as_list(), f"truth: {obj.phrase}", GT_COLOUR))
    for mention in parse(response or "", *grid):
        for b in mention.boxes:
            card.boxes.append(Box(b.as_list(), f"model: {mention.phrase}", PRED_COLOUR))
    for mention in parse(item.question, *grid):
        for b in mention.boxes:
            card.boxes.append(Box(b.as_list(), f"asked: {mention.phrase}", QUESTION_COLOUR, dashed=True))
    card.texts += [("question", item.question), ("expected", item.answer)]
    card.texts.append(("model", response if response is not None else "(no answer)"))
    if row is not None:
        card.texts.append(("scored", str(row.get("why", ""))))
    return card


def metrics_html(rows: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """The Table-5 layout of :func:`giqa.evaluation.table.format_table` as a preformatted block."""
    return f"<h2>GIQA-Bench metrics</h2><pre>{html.escape(format_table(rows))}</pre>"


def write_report_html(
    out: Path,
    *,
    bench_file: Path,
    items: Sequence[BenchItem],
    responses: Mapping[str, str],
    rows: Sequence[Mapping[str, Any]],
    reports: Sequence[tuple[str, dict[str, Any]]],
    title: str = "GIQA-Bench report",
    intro: str = "",
    limit: int | None = 60,
    extra_html: str = "",
    grid: tuple[int, int] = (DEFAULT_N, DEFAULT_M),
) -> Path:
    """Write the page to ``out`` atomically: a metric row per named report, then up to ``limit`` items."""
    from giqa.files import atomic_write_bytes

    by_id = {str(r["id"]): r for r in rows}
    cards = [item_card(it, responses.get(it.id), by_id.get(it.id), grid) for it in list(items)[:limit]]
    legend = (
        f"Green: ground-truth boxes; red: boxes in the model's answer; dashed blue: boxes given in the "
        f"question. {len(cards)} of {len(items)} items shown."
    )
    page = render_page(
        cards,
        bench_file.parent,
        title=title,
        intro=f"{intro} {legend}".strip(),
        head_html=metrics_html(reports) + extra_html,
    )
    atomic_write_bytes(out, page.encode("utf-8"))
    return out
