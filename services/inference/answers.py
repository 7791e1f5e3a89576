"""Turning the model's grounded text into what apps use: objects with quality words and boxes in three
forms, masks per quality word, the referring question, P(Yes) and the Q-Align score.

Pure functions (no model, no HTTP), so each rule is tested on its own.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image

from giqa.boxes import Box
from giqa.client.contract import LEVELS, BoxOut, GroundedObject, Mask, Region
from giqa.client.masks import rle_encode
from giqa.grid import encode_box
from giqa.grounded_text import ParseResult, render_mention
from giqa.pipeline.lexicon import polarity, quality_words, typo_of

SCORE_QUESTION = "How would you rate the quality of this image?"
SCORE_PREFIX = "The quality of the image is"  # Q-Align: the level word is the next token
YES_NO = ("Yes", "No")
_YES_NO_START = re.compile(
    r"^\s*(is|are|was|were|does|do|did|can|could|has|have|had|will|would|should|shall|may|might)\b", re.I
)
_YES_NO_WORD = re.compile(r"\b(yes|no)\b", re.I)
_SENTENCE_END = re.compile(r"[.!?\n]")


def box_out(box: Box, width: int, height: int, n: int, m: int) -> BoxOut:
    return BoxOut(
        norm=[round(v, 4) for v in box.as_list()],
        pixels=list(box.to_pixels(width, height)),
        grid=list(encode_box(box, n, m)),
    )


def _sentence_around(text: str, start: int, end: int) -> tuple[int, int]:
    left = max((m.end() for m in _SENTENCE_END.finditer(text, 0, start)), default=0)
    right = _SENTENCE_END.search(text, end)
    return left, right.end() if right else len(text)


def grounded_objects(
    text: str, parsed: ParseResult, width: int, height: int, n: int, m: int
) -> list[GroundedObject]:
    """One object per phrase (a phrase the model repeats is merged): its boxes, and the quality words of
    the sentences it appears in (the phrase's own words included, "blurry cat") with their polarity."""
    merged: dict[str, tuple[list[Box], list[str], str]] = {}
    for mention in parsed.mentions:
        start, end = _sentence_around(text, *mention.span)
        sentence = text[start : mention.span[0]] + mention.phrase + text[mention.span[1] : end]
        words = [typo_of(w) or w.lower() for _s, _e, w in quality_words(sentence)]
        boxes, quality, said = merged.setdefault(mention.phrase, ([], [], ""))
        boxes.extend(b for b in mention.boxes if b not in boxes)
        quality.extend(w for w in words if w not in quality)
        merged[mention.phrase] = (boxes, quality, (said + " " + sentence).strip())
    return [
        GroundedObject(
            phrase=phrase,
            quality=quality,
            polarity=polarity(said) if quality else None,
            boxes=[box_out(b, width, height, n, m) for b in boxes],
        )
        for phrase, (boxes, quality, said) in merged.items()
    ]


def masks_for(objects: Sequence[GroundedObject], width: int, height: int, fmt: str = "png") -> list[Mask]:
    """A mask per quality word: the union of the pixel boxes of every object said to be that word."""
    by_word: dict[str, list[BoxOut]] = {}
    for obj in objects:
        for word in obj.quality:
            by_word.setdefault(word, []).extend(obj.boxes)
    out: list[Mask] = []
    for word, boxes in by_word.items():
        mask = np.zeros((height, width), dtype=bool)
        for b in boxes:
            x1, y1, x2, y2 = b.pixels
            mask[y1 : max(y2, y1 + 1), x1 : max(x2, x1 + 1)] = True
        area = float(mask.mean()) if mask.size else 0.0
        if fmt == "rle":
            out.append(
                Mask(quality=word, polarity=polarity(word), format="rle", rle=rle_encode(mask), area=area)
            )
        else:
            buffer = io.BytesIO()
            Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(buffer, format="PNG", optimize=True)
            png = base64.b64encode(buffer.getvalue()).decode("ascii")
            out.append(Mask(quality=word, polarity=polarity(word), format="png", png=png, area=area))
    return out


def referring_question(question: str, regions: Sequence[Region], n: int, m: int) -> str:
    """The question with each region's box rendered in the grounded format: its phrase's first mention
    in the question becomes ``[phrase](<a, b>)``; a phrase the question does not contain is appended as
    "Region: [phrase](<a, b>)."."""
    out = question.strip()
    extra: list[str] = []
    for region in regions:
        mention = render_mention(region.phrase, [Box(*region.box)], "grid", n, m)
        found = re.search(re.escape(region.phrase), out, re.I)
        if found and "[" not in out[max(0, found.start() - 1) : found.start()]:
            out = (
                out[: found.start()] + mention.replace(region.phrase, found.group(0), 1) + out[found.end() :]
            )
        else:
            extra.append(mention)
    if extra:
        out += " " + " ".join(f"Region: {mention}." for mention in extra)
    return out


def is_yes_no(question: str) -> bool:
    return _YES_NO_START.match(question) is not None


def yes_no_prefix(answer: str) -> str:
    """The answer up to its last "yes"/"no": where P(Yes) is read. An answer with neither word is read at
    its start (empty prefix: the model's first word)."""
    found = list(_YES_NO_WORD.finditer(answer))
    return answer[: found[-1].start()].strip() if found else ""


def p_yes(probs: Mapping[str, float]) -> float:
    yes, no = probs.get("Yes", 0.0), probs.get("No", 0.0)
    return 0.5 if yes + no <= 0 else yes / (yes + no)


def qalign_score(probs: Mapping[str, float]) -> tuple[float, dict[str, float]]:
    """Q-Align: the level words' probabilities normalized over the five, and their expected value (1-5)."""
    total = sum(probs.get(word, 0.0) for word, _ in LEVELS)
    if total <= 0:
        levels = {word: 1 / len(LEVELS) for word, _ in LEVELS}
    else:
        levels = {word: probs.get(word, 0.0) / total for word, _ in LEVELS}
    score = sum(levels[word] * value for word, value in LEVELS)
    return min(5.0, max(1.0, score)), levels
