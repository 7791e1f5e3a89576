"""A page (and optionally a PNG contact sheet) to check GIQA-Synth ground truth by eye.

Works on a scenes folder (``annotations.jsonl``) and on a bench folder (``bench.jsonl``): each image is
shown enlarged with its boxes drawn over it (SVG), labelled with phrase, role and degradations, next to
the description, the grounded answer and the QA items.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from PIL import Image, ImageDraw

from giqa.cards import Box, Card, render_page
from giqa.files import atomic_write_bytes, inside
from giqa.grounded_text import parse
from giqa.synth.bench import BENCH_FILE, read_bench
from giqa.synth.writer import ANNOTATIONS, png_bytes, read_scenes

_COLOURS = {"degraded": "#ff2d55", "twin_degraded": "#ff2d55", "twin_clean": "#00c7be", "clean": "#34c759"}
_ANSWER_BOX = "#ffcc00"


def cards_from_scenes(path: Path) -> list[Card]:
    cards = []
    for r in read_scenes(path):
        card = Card(
            image=r.image, title=f"{r.id}{'  (hard case)' if r.hard_case else ''}  verdict: {r.verdict}"
        )
        for o in r.objects:
            degr = ", ".join(f"{d.kind} {d.severity:.2f}" for d in o.degradations) or "clean"
            card.boxes.append(
                Box(o.box, f"{o.id}: {o.phrase} [{o.role}] {degr}", _COLOURS.get(o.role, "#fff"))
            )
        glob = ", ".join(f"{d.kind} {d.severity:.2f}" for d in r.global_degradations)
        card.texts.append(("background", r.background + (f"; global: {glob}" if glob else "")))
        card.texts.append(("description", r.description))
        card.texts.append(("tags", "; ".join(f"{t.phrase} / {t.quality} / {t.effect}" for t in r.tags)))
        card.texts.append(("DES question", r.des_question))
        card.texts.append(("DES answer", r.des_answer))
        for q in r.vqa:
            card.texts.append((f"VQA {q.qtype}/{q.mode}", f"Q: {q.question}  A: {q.answer}"))
        cards.append(card)
    return cards


def cards_from_bench(path: Path) -> list[Card]:
    by_image: dict[str, Card] = {}
    groups: dict[str, list] = defaultdict(list)
    for item in read_bench(path):
        groups[item.image].append(item)
    for image, items in groups.items():
        card = by_image.setdefault(image, Card(image=image, title=image))
        for item in items:
            kind = item.task if item.task == "des" else f"{item.qtype}/{item.mode}"
            card.texts.append((f"{item.id} {kind}", f"Q: {item.question}  A: {item.answer}"))
            for obj in item.objects:
                card.boxes.append(Box(obj.box.as_list(), f"{item.id}: {obj.phrase}", _ANSWER_BOX))
            # boxes written in a referring question, dashed
            for mention in parse(item.question):
                for b in mention.boxes:
                    card.boxes.append(
                        Box(b.as_list(), f"{item.id}: {mention.phrase} (question)", "#5ac8fa", True)
                    )
    return list(by_image.values())


def load_cards(directory: Path) -> list[Card]:
    if (directory / ANNOTATIONS).is_file():
        return cards_from_scenes(directory / ANNOTATIONS)
    if (directory / BENCH_FILE).is_file():
        return cards_from_bench(directory / BENCH_FILE)
    raise FileNotFoundError(f"{directory} holds neither {ANNOTATIONS} nor {BENCH_FILE}")


def render_html(directory: Path, limit: int | None = None, scale: int = 3) -> str:
    cards = load_cards(directory)[:limit]
    return render_page(
        cards,
        directory,
        title=f"GIQA-Synth preview: {directory}",
        intro=f"{len(cards)} images from {directory}. Red: degraded; green: clean; teal: clean look-alike of "
        "the hard case; yellow: boxes an answer must contain; dashed blue: boxes written in a question.",
        scale=scale,
    )


def write_html(directory: str | Path, out: str | Path, limit: int | None = None) -> Path:
    path = Path(out)
    atomic_write_bytes(path, render_html(Path(directory), limit).encode("utf-8"))
    return path


def write_sheet(
    directory: str | Path, out: str | Path, limit: int | None = 36, scale: int = 2, columns: int = 6
) -> Path:
    """A PNG grid of the images with their boxes, drawn with PIL."""
    d = Path(directory)
    cards = load_cards(d)[:limit]
    if not cards:
        raise ValueError(f"{d} has no images to draw")
    tiles = []
    for card in cards:
        with Image.open(inside(d, card.image)) as img:
            tile = img.convert("RGB").resize(
                (img.width * scale, img.height * scale), Image.Resampling.NEAREST
            )
        draw = ImageDraw.Draw(tile)
        for b in card.boxes:
            x1, y1, x2, y2 = (v * (tile.width if i % 2 == 0 else tile.height) for i, v in enumerate(b.box))
            draw.rectangle((x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)), outline=b.colour, width=1)
            draw.text((x1 + 2, y1 + 1), b.label.split(":")[0], fill=b.colour)
        tiles.append(tile)
    tw, th = max(t.width for t in tiles), max(t.height for t in tiles)
    cols = min(columns, len(tiles))
    rows = -(-len(tiles) // cols)
    sheet = Image.new("RGB", (cols * (tw + 4) + 4, rows * (th + 4) + 4), (30, 30, 30))
    for k, tile in enumerate(tiles):
        sheet.paste(tile, (4 + (k % cols) * (tw + 4), 4 + (k // cols) * (th + 4)))
    path = Path(out)
    atomic_write_bytes(path, png_bytes(sheet))
    return path
