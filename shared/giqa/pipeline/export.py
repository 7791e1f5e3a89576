"""The dataset export: VQA balancing, the split by image, LLaVA JSON written streaming and atomically.

Everything is derived from the audit JSONL at the end of a run, so an interrupted run leaves no half-written
dataset, and a resumed one exports exactly what a single run would have.
- Balancing (paper §3.3): as many Yes/No as What/Why/How questions, as many Yes as No. Which items stay is
  decided by a seeded hash of each item's id, so it does not depend on processing order (pure, two passes:
  count, then keep the ``k`` smallest hashes per class).
- Split by image: an image goes to val when a seeded hash of its path falls under ``val_fraction``, so no
  image is in both splits and the split is stable as the dataset grows.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from giqa.files import atomic_writer

YES, NO, OPEN = "yes", "no", "open"


def _rank(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest(), "big")


def vqa_class(qtype: str, answer: str) -> str:
    if qtype != "yes_no":
        return OPEN
    return YES if answer.strip().lower().startswith("yes") else NO


def balance_vqa(entries: Iterable[tuple[str, str]], *, seed: int = 0, limit: int | None = None) -> set[str]:
    """The ids to keep from ``(id, class)`` entries (class: "yes" | "no" | "open").

    ``k = min(#yes, #no, #open // 2)`` (and ``limit // 4`` when a total is asked for); keeps k Yes, k No and
    2k open items: the ``k``/``2k`` with the smallest seeded hashes, so the result is order-independent.
    """
    smallest: dict[str, list[tuple[int, str]]] = {YES: [], NO: [], OPEN: []}
    counts = {YES: 0, NO: 0, OPEN: 0}
    entries = list(entries)
    for _id, cls in entries:
        if cls not in counts:
            raise ValueError(f"unknown VQA class {cls!r}; expected yes, no or open")
        counts[cls] += 1
    k = min(counts[YES], counts[NO], counts[OPEN] // 2)
    if limit is not None:
        k = min(k, max(0, limit) // 4)
    wanted = {YES: k, NO: k, OPEN: 2 * k}
    for item_id, cls in entries:
        heap = smallest[cls]
        rank = -_rank(seed, item_id)  # a max-heap of the smallest ranks
        if len(heap) < wanted[cls]:
            heapq.heappush(heap, (rank, item_id))
        elif heap and rank > heap[0][0]:
            heapq.heapreplace(heap, (rank, item_id))
    return {item_id for heap in smallest.values() for _rank_value, item_id in heap}


def split_of(image: str, *, seed: int = 0, val_fraction: float = 0.05) -> str:
    """ "train" or "val" for an image path (stable, seeded)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    return "val" if _rank(seed, f"split:{image}") / 2**64 < val_fraction else "train"


# ------------------------------------------------------------------------------------------ writing


class JsonListWriter:
    """A JSON list written one element at a time (a 100k-record export never sits in memory)."""

    def __init__(self, handle: IO[str]) -> None:
        self.handle = handle
        self.count = 0
        handle.write("[")

    def add(self, value: dict[str, Any]) -> None:
        self.handle.write(",\n" if self.count else "\n")
        self.handle.write(json.dumps(value, ensure_ascii=False))
        self.count += 1

    def close(self) -> None:
        self.handle.write("\n]\n" if self.count else "]\n")


def scan_audit(path: Path) -> tuple[dict[str, int], dict[str, list[tuple[str, str]]]]:
    """One cheap pass: the offset of the last complete line per key (a resumed run re-records retried
    samples; a torn last line is ignored) and each key's VQA ``(id, class)`` index, read from the record's
    small ``vqa_index`` field without parsing the whole line."""
    last: dict[str, int] = {}
    index: dict[str, list[tuple[str, str]]] = {}
    for here, line in _complete_lines(path):
        key = _key_of(line)
        if key is None:
            continue
        last[key] = here
        at = line.find(_VQA_INDEX)
        if at < 0:
            index.pop(key, None)
            continue
        text = line[at + len(_VQA_INDEX) :].decode("utf-8")
        index[key] = [(i, c) for i, c in _DECODER.raw_decode(text)[0]]
    return last, index


def iter_audit(path: Path, last: dict[str, int] | None = None) -> Iterator[dict[str, Any]]:
    """Audit records, the last line per sample key winning (see :func:`scan_audit`)."""
    last = scan_audit(path)[0] if last is None else last
    for here, line in _complete_lines(path):
        key = _key_of(line)
        if key is not None and last.get(key) == here:
            yield json.loads(line)


def _complete_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(byte offset, line) of every newline-terminated line; a torn last line is skipped."""
    with path.open("rb") as handle:
        offset = 0
        for line in handle:
            here = offset
            offset += len(line)
            if line.endswith(b"\n"):
                yield here, line


_VQA_INDEX = b'"vqa_index": '
_DECODER = json.JSONDecoder()
_KEY_FIRST = re.compile(rb'^\{"key": "([^"\\]*)"')


def _key_of(line: bytes) -> str | None:
    fast = _KEY_FIRST.match(line)  # records are written key-first; skip parsing the whole line
    if fast:
        return fast.group(1).decode("utf-8")
    try:
        key = json.loads(line).get("key")
    except (ValueError, AttributeError):
        return None
    return key if isinstance(key, str) else None


# ------------------------------------------------------------------------------------------ the export


def vqa_index(samples: list[dict[str, Any]]) -> list[list[str]]:
    """``[[id, class], ...]`` of a record's VQA samples: stored in the audit so balancing reads only this."""
    return [[s["id"], vqa_class(s["qtype"], s["answer"])] for s in samples]


def llava_dict(sample: dict[str, Any]) -> dict[str, Any]:
    """:func:`giqa.schemas.to_llava` of an already validated sample dict, without re-validating it (the
    export handles 10^5 samples; equality with the pydantic path is a unit test)."""
    return {
        "id": sample["id"],
        "image": sample["image"],
        "conversations": [
            {"from": "human", "value": f"<image>\n{sample['question']}"},
            {"from": "gpt", "value": sample["answer"]},
        ],
        "task": sample["task"],
        "qtype": sample.get("qtype"),
        "mode": sample.get("mode", "none"),
    }


def export_from_audit(
    audit_path: Path,
    out_dir: Path,
    *,
    seed: int = 0,
    val_fraction: float = 0.05,
    vqa_limit: int | None = None,
) -> dict[str, Any]:
    """:func:`export_records` over an audit JSONL (the last line per sample key winning). Returns the
    statistics."""
    last, index = scan_audit(audit_path)
    entries = [(i, c) for per_key in index.values() for i, c in per_key]
    del index
    return export_records(
        entries,
        iter_audit(audit_path, last),
        out_dir,
        seed=seed,
        val_fraction=val_fraction,
        vqa_limit=vqa_limit,
    )


def export_records(
    vqa_entries: Iterable[tuple[str, str]],
    records: Iterable[dict[str, Any]],
    out_dir: Path,
    *,
    seed: int = 0,
    val_fraction: float = 0.05,
    vqa_limit: int | None = None,
) -> dict[str, Any]:
    """Write ``train.json``/``val.json`` (LLaVA), ``stats.json``/``stats.md`` (Table 1), ``box_area.png``
    (Fig. 6) and ``report.json`` from audit records (one per sample, in run order) and the ``(id, class)``
    entries of every record's ``vqa_index`` (the balancing pass reads only these). The one exporter:
    ``giqa annotate`` reads the records from its audit file, the annotation platform from its database.
    Returns the statistics."""
    from giqa.pipeline.stats import DatasetStats, RunReport

    keep = balance_vqa(vqa_entries, seed=seed, limit=vqa_limit)

    stats, report = DatasetStats(), RunReport()
    paths = {"train": out_dir / "train.json", "val": out_dir / "val.json"}
    with atomic_writer(paths["train"]) as train_handle, atomic_writer(paths["val"]) as val_handle:
        writers = {"train": JsonListWriter(train_handle), "val": JsonListWriter(val_handle)}
        for record in records:
            report.add(record)
            if record.get("status") != "ok":
                continue
            raw_areas, refined_areas = [], []
            for refined in record.get("refined", []):
                raw_areas += [_area(d["box"]) for d in refined.get("raw", [])]
                refined_areas += [_area(b) for b in refined.get("merged", [])]
            stats.add_areas(raw_areas, refined_areas)
            des = record.get("des")
            chosen = [des] if des else []
            chosen += [v for v in record.get("vqa_samples") or [] if v["id"] in keep]
            for data in chosen:
                split = split_of(data["image"], seed=seed, val_fraction=val_fraction)
                writers[split].add(llava_dict(data))
                stats.add_sample(
                    split, data["image"], data["task"], data.get("qtype"), data["mode"], data["answer"]
                )
        for writer in writers.values():
            writer.close()

    summary = stats.to_dict() | {"report": report.to_dict(), "balanced_vqa_kept": len(keep)}
    with atomic_writer(out_dir / "stats.json") as handle:
        json.dump(summary, handle, indent=2)
    with atomic_writer(out_dir / "stats.md") as handle:
        handle.write("# Dataset statistics (paper Table 1)\n\n" + stats.markdown() + "\n" + report.markdown())
    with atomic_writer(out_dir / "report.json") as handle:
        json.dump(report.to_dict(), handle, indent=2)
    with atomic_writer(out_dir / "box_area.png", "wb") as handle:
        stats.plot_histogram(handle)
    return summary


EXPORT_FILES = ("train.json", "val.json", "stats.json", "stats.md", "report.json", "box_area.png")


def _area(box: list[float]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])
