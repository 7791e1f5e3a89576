"""What the deployment tests share (tests/deploy/): the checkout's root, finding a tool, and resolving a
``GIQA_*`` environment variable against :class:`giqa.settings.Settings` the way pydantic-settings does
(prefix ``GIQA_``, sections nested with ``__``, names case-insensitive)."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from giqa.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "GIQA_"


def tool(name: str) -> str | None:
    """``name`` on PATH, else beside this interpreter (a venv's bin/ need not be on PATH)."""
    found = shutil.which(name)
    if found:
        return found
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.is_file() else None


@dataclass(frozen=True)
class EnvCheck:
    """``ok``: the variable names a setting; ``absent-section``: its top-level section is not in this
    checkout's Settings (a service branch adds it; the check is meaningful once it is merged);
    ``unknown``: no such setting — the variable would be ignored silently (``extra="ignore"``)."""

    status: Literal["ok", "absent-section", "unknown"]
    reason: str = ""


def _model_of(annotation: object) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def check_env_name(name: str) -> EnvCheck:
    """Whether ``name`` (``GIQA_SECTION__FIELD``...) sets a field of :class:`Settings`."""
    if not name.startswith(PREFIX):
        return EnvCheck("unknown", f"{name} does not start with {PREFIX}")
    parts = name[len(PREFIX) :].lower().split("__")
    model: type[BaseModel] = Settings
    for depth, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields:
            if depth == 0 and len(parts) > 1:
                return EnvCheck("absent-section", f"Settings has no section {part!r} in this checkout")
            where = ".".join(parts[:depth]) or "Settings"
            return EnvCheck("unknown", f"{name}: {where} has no field {part!r} (known: {sorted(fields)})")
        nested = _model_of(fields[part].annotation)
        if depth < len(parts) - 1:
            if nested is None:
                return EnvCheck("unknown", f"{name}: {'.'.join(parts[: depth + 1])} is not a section")
            model = nested
    return EnvCheck("ok")
