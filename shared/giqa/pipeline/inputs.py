"""Input adapters for ``giqa annotate``: (image, description) pairs from three layouts.

- JSONL, one ``{"image", "description"}`` per line (an ``"id"`` is optional);
- LLaVA conversation JSON (as Q-Instruct's data ships): the description is the first answer;
- a folder of images with same-named ``.txt`` descriptions (``cat.jpg`` + ``cat.txt``).

A bad entry does not stop the run: it becomes an :class:`InputItem` with a ``problem`` (invalid JSON, a
missing field, a description that is empty, too long or not UTF-8) and is recorded as failed. Files are
decoded by :mod:`giqa.files` (a leading BOM dropped, other non-UTF-8 bytes a problem).

Keys (decided): an entry's ``id`` when it has one, else a hash of (image, description). An id seen before
with another (image, description) gets that hash appended, so several descriptions of one image under one id
are all annotated; the same pair seen again keeps its first key and is skipped as done. Keys depend only on
the file's content and order, so ``--resume`` finds them again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from giqa.files import InputFileError, decode, iter_lines, read_text

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})


@dataclass(frozen=True, slots=True)
class InputItem:
    key: str  # stable id of the sample: resume and exports use it
    image: str  # path relative to the images folder, as written in the exports
    description: str
    problem: str | None = None  # why this entry cannot be annotated


def sample_key(image: str, description: str) -> str:
    """A stable key from the pair itself (the same image may come with several descriptions)."""
    return hashlib.sha1(f"{image}\n{description}".encode(), usedforsecurity=False).hexdigest()[:16]


def length_problem(description: str, max_chars: int) -> str | None:
    """Why a description is refused for its length (``annotate.max_description_chars``), else None.

    One wording for ``giqa annotate`` (a failed sample) and ``giqa tags`` (exit 2): Stage 1 asks the LLM
    once per clause, so run time grows with the text and a pasted document would tie a worker up.
    """
    if len(description) <= max_chars:
        return None
    return f"description has {len(description):,} characters, over the limit of {max_chars:,}"


def _item(key: str | None, image: object, description: object, max_chars: int, where: str) -> InputItem:
    image_str = image if isinstance(image, str) else ""
    text = description if isinstance(description, str) else ""
    problem = None
    if not image_str.strip():
        problem = f"{where}: no image path"
    elif description is None or not isinstance(description, str):
        problem = f"{where}: no description"
    elif not text.strip():
        problem = f"{where}: empty description"
    elif too_long := length_problem(text, max_chars):
        problem = f"{where}: {too_long}"
    text = " ".join(text.split())
    return InputItem(key or sample_key(image_str, text), image_str.strip(), text, problem)


def read_jsonl(path: Path, *, max_chars: int = 4000) -> Iterator[InputItem]:
    for line in iter_lines(path):
        number = line.number
        where = f"{path.name} line {number}"
        if line.problem:
            yield InputItem(f"line{number}", "", "", f"{where}: {line.problem}")
            continue
        try:
            data = json.loads(line.text)
        except json.JSONDecodeError as exc:
            yield InputItem(f"line{number}", "", "", f"{where}: invalid JSON ({exc.msg})")
            continue
        except RecursionError:
            yield InputItem(f"line{number}", "", "", f"{where}: JSON nested too deeply")
            continue
        if not isinstance(data, dict):
            yield InputItem(
                f"line{number}", "", "", f"{where}: expected an object with image and description"
            )
            continue
        key = str(data["id"]) if data.get("id") not in (None, "") else None
        yield _item(key, data.get("image"), data.get("description"), max_chars, where)


def read_llava(path: Path, *, max_chars: int = 4000) -> Iterator[InputItem]:
    """LLaVA/Q-Instruct records: ``{"id"?, "image", "conversations": [human, gpt, ...]}``."""
    text = read_text(path)  # InputFileError (a ValueError) when it is not UTF-8
    try:
        records = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputFileError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    except RecursionError:  # the stdlib parser recurses per nesting level: a hostile file exhausts it
        raise InputFileError(f"{path} is not usable JSON: nested too deeply") from None
    if not isinstance(records, list):
        raise ValueError(f"{path}: a LLaVA conversation file is a JSON list of records")
    for index, record in enumerate(records):
        where = f"{path.name} record {index}"
        if not isinstance(record, dict):
            yield InputItem(f"record{index}", "", "", f"{where}: not an object")
            continue
        turns = record.get("conversations")
        answer = None
        if isinstance(turns, list):
            answer = next(
                (
                    t.get("value")
                    for t in turns
                    if isinstance(t, dict) and t.get("from") in ("gpt", "assistant")
                ),
                None,
            )
        key = str(record["id"]) if record.get("id") not in (None, "") else None
        yield _item(key, record.get("image"), answer, max_chars, where)


def read_txt_folder(images: Path, *, max_chars: int = 4000) -> Iterator[InputItem]:
    for image in sorted(p for p in images.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        relative = image.relative_to(images).as_posix()
        text_path = image.with_suffix(".txt")
        if not text_path.is_file():
            yield InputItem(
                sample_key(relative, ""), relative, "", f"{relative}: no {text_path.name} beside it"
            )
            continue
        try:
            text = decode(text_path.read_bytes(), text_path.name)
        except InputFileError as exc:
            yield InputItem(sample_key(relative, ""), relative, "", str(exc))
            continue
        yield _item(None, relative, text, max_chars, text_path.name)


def unique_keys(items: Iterable[InputItem]) -> Iterator[InputItem]:
    """Each distinct (image, description) under its own key (see the module docstring)."""
    key_of_pair: dict[str, str] = {}
    used: set[str] = set()
    for item in items:
        pair = sample_key(item.image, item.description)
        key = key_of_pair.get(pair) if item.problem is None else None
        if key is None:
            key = item.key if item.key not in used else f"{item.key}-{pair[:8]}"
            used.add(key)
            if item.problem is None:
                key_of_pair[pair] = key
        yield item if key == item.key else dataclasses.replace(item, key=key)


def read_inputs(descriptions: Path | None, images: Path, *, max_chars: int = 4000) -> Iterator[InputItem]:
    """Pick the adapter: ``.jsonl`` lines, ``.json`` LLaVA records, or (no file) ``.txt`` beside images."""
    if not images.is_dir():
        raise ValueError(f"images folder not found: {images}")
    if descriptions is None:
        return unique_keys(read_txt_folder(images, max_chars=max_chars))
    if not descriptions.is_file():
        raise ValueError(f"descriptions file not found: {descriptions}")
    if descriptions.suffix.lower() == ".jsonl":
        return unique_keys(read_jsonl(descriptions, max_chars=max_chars))
    if descriptions.suffix.lower() == ".json":
        return unique_keys(read_llava(descriptions, max_chars=max_chars))
    raise ValueError(
        f"descriptions must be .jsonl (image/description lines) or .json (LLaVA): {descriptions}"
    )
