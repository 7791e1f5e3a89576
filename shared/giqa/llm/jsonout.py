"""Reading JSON out of a chat model's answer and checking it against a JSON schema (pure, no network).

Servers with grammar-constrained decoding return bare JSON, but small models and servers without it wrap
it in code fences or prose. We take the first complete JSON value we can find, then validate it: the
caller only ever sees schema-valid data.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder()


class JSONOutputError(ValueError):
    """The text holds no JSON value, or the value breaks the schema; the message says which and where."""


def extract_json(text: str) -> Any:
    """The first complete JSON object or array in ``text`` (code fences and surrounding prose tolerated)."""
    if not isinstance(text, str) or not text.strip():
        raise JSONOutputError("the answer is empty")
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for candidate in candidates:
        stripped = candidate.strip()
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            pass
        for start, char in enumerate(stripped):
            if char not in "{[":
                continue
            try:
                value, _end = _DECODER.raw_decode(stripped, start)
            except json.JSONDecodeError:
                continue
            return value
    snippet = text.strip()[:120]
    raise JSONOutputError(f"no complete JSON value in the answer (starts {snippet!r})")


@lru_cache(maxsize=64)
def _validator(schema_json: str) -> Draft202012Validator:
    schema = json.loads(schema_json)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"invalid JSON schema: {exc.message}") from exc
    return Draft202012Validator(schema)


def schema_key(schema: dict[str, Any]) -> str:
    """A canonical string of a schema (cache key, and what goes over the wire)."""
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))


def check_schema(schema: dict[str, Any]) -> None:
    """Refuse a malformed schema up front (ValueError), before any request is sent."""
    _validator(schema_key(schema))


def validate(value: Any, schema: dict[str, Any]) -> None:
    """Raise :class:`JSONOutputError` naming the first few violations of ``schema`` by ``value``."""
    errors = sorted(_validator(schema_key(schema)).iter_errors(value), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    described = []
    for error in errors[:3]:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        described.append(f"at {where}: {error.message[:160]}")
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    raise JSONOutputError("schema violation " + "; ".join(described) + more)


def parse_and_validate(text: str, schema: dict[str, Any]) -> Any:
    value = extract_json(text)
    validate(value, schema)
    return value
