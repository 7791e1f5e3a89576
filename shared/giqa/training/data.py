"""The training data: a LLaVA conversation JSON read up front, images loaded lazily, bad rows skipped.

A wholly wrong file (not JSON, not a list, no row with conversations) is refused at once with a one-line
:class:`DataError`. Rows that cannot be trained on are counted with their reason instead of stopping the run:
structural faults (no image, unknown role, no answer, an empty answer, a missing image file) are found while
reading; a corrupt image or a conversation longer than ``max_length`` only when the row is first loaded.
A row found bad at load time is replaced by the next good row of the dataset (decided): every batch stays
full, so data-parallel ranks always run the same number of forward/backward passes.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from giqa.training.masking import TemplateError, answer_labels, render_conversation

log = logging.getLogger(__name__)

IMAGE_PLACEHOLDER = "<image>"
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
_LOGGED_PER_REASON = 5  # the first few rows of each reason are logged one by one, then only counted


class DataError(ValueError):
    """A training file that cannot be used at all."""


class SkipRow(Exception):  # noqa: N818 - a control-flow signal, not an error to report
    """One row that cannot be trained on; the message is the reason."""


@dataclass(frozen=True, slots=True)
class Row:
    id: str
    image: Path
    messages: list[dict[str, Any]]


@dataclass
class SkipLog:
    """Skipped rows by reason (the reason's first words, e.g. 'missing image') with a few example ids."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    _seen: set[str] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, row_id: str, reason: str) -> None:
        kind = reason.split(":")[0]
        with self._lock:
            if row_id in self._seen:  # a bad row meets every epoch and every worker: count it once
                return
            self._seen.add(row_id)
            self.counts[kind] += 1
            seen = self.examples.setdefault(kind, [])
            if len(seen) < _LOGGED_PER_REASON:
                seen.append(row_id)
                log.warning("skipping row %s: %s", row_id, reason)
            elif len(seen) == _LOGGED_PER_REASON:
                seen.append("...")
                log.warning("more rows skipped for '%s'; see skipped.json for the counts", kind)

    def as_dict(self) -> dict[str, Any]:
        return {"total": sum(self.counts.values()), "by_reason": dict(self.counts), "examples": self.examples}


def to_messages(conversations: list[Any]) -> list[dict[str, Any]]:
    """LLaVA turns as chat-template messages; raises :class:`SkipRow` on a malformed conversation."""
    messages: list[dict[str, Any]] = []
    images = 0
    for turn in conversations:
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
            raise SkipRow("malformed turn: each turn needs 'from' and a string 'value'")
        role = ROLES.get(str(turn.get("from")))
        if role is None:
            raise SkipRow(f"unknown role: {turn.get('from')!r}")
        text = turn["value"]
        n_images = text.count(IMAGE_PLACEHOLDER)
        images += n_images
        text = text.replace(IMAGE_PLACEHOLDER, "").strip()
        if role == "assistant" and not text:
            raise SkipRow("empty answer")
        messages.append(
            {"role": role, "content": [{"type": "image"}] * n_images + [{"type": "text", "text": text}]}
        )
    if not any(m["role"] == "assistant" for m in messages):
        raise SkipRow("no answer: the conversation has no gpt turn")
    if images != 1:
        raise SkipRow(f"image placeholders: {images} <image> tokens, expected exactly one")
    return messages


def read_rows(path: str | Path, image_root: str | Path | None, skips: SkipLog) -> list[Row]:
    """The usable rows of a LLaVA JSON; structural faults are recorded in ``skips``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"cannot read training data {path}: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not a JSON file: {exc}") from exc
    if not isinstance(data, list):
        raise DataError(f"{path} must hold a JSON list of conversation records, not a {type(data).__name__}")
    if not any(isinstance(r, dict) and isinstance(r.get("conversations"), list) for r in data):
        raise DataError(f"{path} has no record with a 'conversations' list: not a LLaVA training file")
    root = Path(image_root) if image_root else path.parent
    rows: list[Row] = []
    for index, record in enumerate(data):
        row_id = str(record.get("id", f"#{index}")) if isinstance(record, dict) else f"#{index}"
        try:
            if not isinstance(record, dict) or not isinstance(record.get("conversations"), list):
                raise SkipRow("malformed record: no 'conversations' list")
            if not record.get("image"):
                raise SkipRow("no image: text-only rows are not supported")
            messages = to_messages(record["conversations"])
            image = Path(str(record["image"]))
            image = image if image.is_absolute() else root / image
            if not image.is_file():
                raise SkipRow(f"missing image: {image}")
        except SkipRow as exc:
            skips.add(row_id, str(exc))
            continue
        rows.append(Row(row_id, image, messages))
    if not rows:
        raise DataError(f"{path}: none of its {len(data)} rows can be trained on ({dict(skips.counts)})")
    return rows


class LlavaJsonDataset:
    """Map-style dataset of encoded rows: ``input_ids``, ``labels`` (−100 off the answers), pixels."""

    def __init__(self, rows: list[Row], processor: Any, *, max_length: int, skips: SkipLog) -> None:
        self.rows = rows
        self.processor = processor
        self.max_length = max_length
        self.skips = skips
        self.image_token_id = int(processor.tokenizer.convert_tokens_to_ids(processor.image_token))
        self._bad: set[int] = set()
        try:  # a template that cannot mask answers is a configuration fault: refuse before training
            render_conversation(processor, rows[0].messages)
        except TemplateError as exc:
            raise DataError(str(exc)) from exc

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        skipped: list[tuple[str, str]] = []
        for step in range(len(self.rows)):
            j = (index + step) % len(self.rows)
            if j in self._bad:
                continue
            try:
                sample = self.encode(self.rows[j])
            except SkipRow as exc:
                self._bad.add(j)
                skipped.append((self.rows[j].id, str(exc)))
                continue
            sample["skipped"] = skipped
            return sample
        raise DataError("no row of the training data could be loaded; see the skipped-row log")

    def encode(self, row: Row) -> dict[str, Any]:
        try:
            with Image.open(row.image) as img:
                image = img.convert("RGB")
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise SkipRow(f"corrupt image: {row.image}: {exc}") from exc
        text, spans = render_conversation(self.processor, row.messages)
        enc = self.processor(images=[image], text=[text], return_tensors="pt")
        input_ids = enc["input_ids"][0]
        if len(input_ids) > self.max_length:
            raise SkipRow(f"too long: {len(input_ids)} tokens > max_length {self.max_length}")
        try:
            labels = answer_labels(self.processor.tokenizer, text, spans, input_ids, self.image_token_id)
        except TemplateError as exc:
            raise SkipRow(f"tokenization: {exc}") from exc
        sample = {"input_ids": input_ids, "labels": labels, "pixel_values": enc["pixel_values"][0]}
        if "image_sizes" in enc:
            sample["image_sizes"] = enc["image_sizes"][0]
        return sample


class Collator:
    """Right-pads a list of encoded rows into a batch; reports the rows skipped to build it."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        longest = max(len(s["input_ids"]) for s in samples)
        n = len(samples)
        input_ids = torch.full((n, longest), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((n, longest), dtype=torch.long)
        labels = torch.full((n, longest), -100, dtype=torch.long)
        for i, s in enumerate(samples):
            k = len(s["input_ids"])
            input_ids[i, :k] = s["input_ids"]
            attention[i, :k] = 1
            labels[i, :k] = s["labels"]
        pixels = [s["pixel_values"] for s in samples]
        if pixels[0].dim() == 4:  # LLaVA-NeXT: (tiles, 3, H, W), tile counts differ with the aspect ratio
            most = max(p.shape[0] for p in pixels)
            pixels = [torch.cat([p, p.new_zeros((most - p.shape[0], *p.shape[1:]))]) for p in pixels]
        batch: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": attention,
            "labels": labels,
            "pixel_values": torch.stack(pixels),
        }
        if "image_sizes" in samples[0]:
            batch["image_sizes"] = torch.stack([torch.as_tensor(s["image_sizes"]) for s in samples])
        batch["skipped"] = [item for s in samples for item in s.get("skipped", [])]
        return batch
