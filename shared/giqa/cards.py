"""Images with boxes drawn over them beside their texts, as one self-contained HTML page.

A :class:`Card` is one image, the boxes to draw on it (colour, label, dashed or not) and (heading, body)
texts; :func:`render_page` embeds each image as a data URL and draws the boxes as SVG, so the page opens
anywhere without the files beside it. The GIQA-Synth preview and the demo report both build on it.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from giqa.files import inside


@dataclass
class Box:
    box: list[float]  # normalized x1, y1, x2, y2
    label: str
    colour: str
    dashed: bool = False


@dataclass
class Card:
    """One image with what to draw on it and what to print beside it."""

    image: str  # a path relative to the page's root folder
    title: str
    boxes: list[Box] = field(default_factory=list)
    texts: list[tuple[str, str]] = field(default_factory=list)  # (heading, body)


STYLE = (
    "body{font-family:sans-serif;background:#222;color:#eee;margin:1em}"
    "section{border-top:1px solid #555;padding:.5em 0}.row{display:flex;gap:1em}"
    ".text{max-width:60em;font-size:13px}ul{padding-left:1em}"
    "table{border-collapse:collapse}td,th{border:1px solid #555;padding:.2em .6em;text-align:right}"
)


def svg_boxes(card: Card, width: int, height: int, scale: int) -> str:
    shapes = []
    for b in card.boxes:
        x1, y1, x2, y2 = (v * (width if i % 2 == 0 else height) * scale for i, v in enumerate(b.box))
        dash = ' stroke-dasharray="4 3"' if b.dashed else ""
        label = html.escape(b.label)
        shapes.append(
            f'<rect x="{x1:.1f}" y="{y1:.1f}" width="{x2 - x1:.1f}" height="{y2 - y1:.1f}" fill="none" '
            f'stroke="{b.colour}" stroke-width="2"{dash}><title>{label}</title></rect>'
            f'<text x="{x1 + 2:.1f}" y="{y1 + 11:.1f}" fill="{b.colour}" font-size="10" '
            f'stroke="black" stroke-width="0.3">{label.split(":")[0]}</text>'
        )
    return "".join(shapes)


def card_html(card: Card, root: Path, scale: int = 3) -> str:
    image_path = inside(root, card.image)  # a bench or dataset file cannot point the page elsewhere
    with Image.open(image_path) as img:
        width, height = img.size
        fmt = (img.format or "png").lower()
    data = base64.b64encode(image_path.read_bytes()).decode("ascii")
    w, h = width * scale, height * scale
    legend = "".join(f'<li style="color:{b.colour}">{html.escape(b.label)}</li>' for b in card.boxes)
    texts = "".join(f"<p><b>{html.escape(head)}</b><br>{html.escape(body)}</p>" for head, body in card.texts)
    return (
        f'<section><h3>{html.escape(card.title)}</h3><div class="row">'
        f'<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}">'
        f'<image href="data:image/{fmt};base64,{data}" width="{w}" height="{h}" '
        f'style="image-rendering:pixelated"/>{svg_boxes(card, width, height, scale)}</svg>'
        f'<div class="text"><ul>{legend}</ul>{texts}</div></div></section>'
    )


def render_page(
    cards: Sequence[Card], root: Path, *, title: str, intro: str, scale: int = 3, head_html: str = ""
) -> str:
    """The whole page: a title, an intro paragraph, optional raw HTML (e.g. a metric table), the cards."""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p>"
        + head_html
        + "".join(card_html(card, root, scale) for card in cards)
        + "</body></html>"
    )
