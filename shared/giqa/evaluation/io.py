"""Reading bench and prediction files (DESIGN §3.4).

The bench is the reference: a malformed bench line is a clear error naming the line. A prediction file is a
model's output: every defect in it (non-JSON lines, lines that are not predictions, duplicate or unknown ids,
empty responses, bench items without a prediction) is counted and listed, never raised, and the affected
items score zero.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from giqa.schemas import BenchItem, Prediction


class BenchError(ValueError):
    """A bench file that cannot be used as the reference."""


@dataclass(slots=True)
class PredictionSet:
    """The usable prediction per bench id, and an account of everything wrong with the file."""

    responses: dict[str, str] = field(default_factory=dict)
    lines: int = 0
    invalid_lines: list[int] = field(
        default_factory=list
    )  # 1-based line numbers: not JSON / not a prediction
    duplicate_ids: list[str] = field(default_factory=list)  # later lines for an id already seen (ignored)
    unknown_ids: list[str] = field(default_factory=list)  # ids not in the bench (ignored)
    empty_ids: list[str] = field(default_factory=list)  # bench ids whose response is blank (scored as such)
    missing_ids: list[str] = field(default_factory=list)  # bench ids without any prediction (score zero)

    def counts(self) -> dict[str, object]:
        return {
            "prediction_lines": self.lines,
            "predictions_used": len(self.responses),
            "invalid_lines": len(self.invalid_lines),
            "duplicate_ids": len(self.duplicate_ids),
            "unknown_ids": len(self.unknown_ids),
            "empty_responses": len(self.empty_ids),
            "missing_predictions": len(self.missing_ids),
            "invalid_line_numbers": list(self.invalid_lines),
            "duplicate_id_list": list(self.duplicate_ids),
            "unknown_id_list": list(self.unknown_ids),
            "empty_id_list": list(self.empty_ids),
            "missing_id_list": list(self.missing_ids),
        }


def read_bench(path: str | Path) -> list[BenchItem]:
    """Every item of a bench JSONL file; raises :class:`BenchError` naming the first bad line."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"bench file not found: {path}")
    items: list[BenchItem] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                item = BenchItem.model_validate_json(line)
            except ValidationError as exc:
                raise BenchError(f"{path}:{number}: not a bench item: {_first_error(exc)}") from exc
            if item.id in seen:
                raise BenchError(f"{path}:{number}: duplicate bench id {item.id!r}")
            seen.add(item.id)
            items.append(item)
    if not items:
        raise BenchError(f"bench file {path} has no items")
    return items


def read_predictions(path: str | Path, bench_ids: Sequence[str]) -> PredictionSet:
    """The predictions for ``bench_ids``; the first line for an id wins, defects are recorded.

    A missing file is an error (a typo in a path must not score as "all predictions missing").
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"predictions file not found: {path}")
    known = set(bench_ids)
    result = PredictionSet()
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            result.lines += 1
            prediction = _parse_line(line)
            if prediction is None:
                result.invalid_lines.append(number)
            elif prediction.id not in known:
                result.unknown_ids.append(prediction.id)
            elif prediction.id in result.responses:
                result.duplicate_ids.append(prediction.id)
            else:
                result.responses[prediction.id] = prediction.response
    result.empty_ids = [i for i in bench_ids if i in result.responses and not result.responses[i].strip()]
    result.missing_ids = [i for i in bench_ids if i not in result.responses]
    return result


def _parse_line(line: str) -> Prediction | None:
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("id"), int) and not isinstance(data.get("id"), bool):
        data["id"] = str(data["id"])  # ids written as numbers by other tools still name the item
    try:
        return Prediction.model_validate(data)
    except ValidationError:
        return None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "line"
    return f"{where}: {err.get('msg', 'invalid')}"


def write_jsonl_atomic(path: Path, rows: Sequence[dict[str, object]]) -> None:
    """Write a JSONL file through a temporary file and a rename, so a reader never sees half of it."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


def write_json_atomic(path: Path, data: object) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
