"""Reading bench and prediction files (DESIGN §3.4), the one home of both readers.

Both read through :func:`giqa.files.iter_lines` (a leading BOM is dropped, bytes that are not UTF-8 are a
defect of their line, never replaced). The bench is the reference: a malformed bench line is a clear error
naming the line. A prediction file is a model's output: every defect in it (lines that are not UTF-8, not
JSON or not predictions, duplicate or unknown ids, empty responses, bench items without a prediction) is
counted and listed, never raised, and the affected items score zero. (decided) A file in which no line
at all is a prediction for this bench (the bench itself, an image, another bench's predictions, an empty
file) is refused: scoring it would print a table of zeros for a wrong path.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from giqa.files import InputFileError, iter_lines
from giqa.schemas import BenchItem, Prediction


class BenchError(InputFileError):
    """A bench file that cannot be used as the reference."""


class PredictionsError(InputFileError):
    """A predictions file with nothing in it to score against this bench."""


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
    for line in iter_lines(path):
        if line.problem:
            raise BenchError(f"{path}:{line.number}: {line.problem}; is it a bench JSONL file?")
        try:
            item = BenchItem.model_validate_json(line.text)
        except ValidationError as exc:
            raise BenchError(f"{path}:{line.number}: not a bench item: {_first_error(exc)}") from exc
        if item.id in seen:
            raise BenchError(f"{path}:{line.number}: duplicate bench id {item.id!r}")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise BenchError(f"bench file {path} has no items")
    return items


def read_predictions(path: str | Path, bench_ids: Sequence[str]) -> PredictionSet:
    """The predictions for ``bench_ids``; the first line for an id wins, defects are recorded.

    A missing file is an error (a typo in a path must not score as "all predictions missing"), and so is
    a file without a single prediction for ``bench_ids`` (:class:`PredictionsError`).
    """
    path = Path(path)
    if not path.is_file():
        raise PredictionsError(f"predictions file not found: {path}")
    known = set(bench_ids)
    result = PredictionSet()
    for line in iter_lines(path):
        result.lines += 1
        prediction = None if line.problem else _parse_line(line.text)
        if prediction is None:
            result.invalid_lines.append(line.number)
        elif prediction.id not in known:
            result.unknown_ids.append(prediction.id)
        elif prediction.id in result.responses:
            result.duplicate_ids.append(prediction.id)
        else:
            result.responses[prediction.id] = prediction.response
    if not result.responses:
        raise PredictionsError(_nothing_to_score(path, result))
    result.empty_ids = [i for i in bench_ids if i in result.responses and not result.responses[i].strip()]
    result.missing_ids = [i for i in bench_ids if i not in result.responses]
    return result


def _nothing_to_score(path: Path, result: PredictionSet) -> str:
    if not result.lines:
        return f"predictions file {path} is empty"
    why = []
    if result.invalid_lines:
        why.append(f"{len(result.invalid_lines)} not {{id, response}} JSON objects")
    if result.unknown_ids:
        why.append(f"{len(result.unknown_ids)} with ids not in the bench")
    return (
        f"{path} holds no prediction for this bench ({result.lines} line(s): {', '.join(why)}); "
        'a predictions file has one {"id", "response"} object per line'
    )


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
