"""Print (or write into a Markdown file) the table of every ``GIQA_*`` environment variable, generated
from :class:`giqa.settings.Settings` — its field names, types, defaults and descriptions — so the
deployment docs never list a setting that does not exist or miss one that does.

    python scripts/settings_table.py                       # the table on stdout
    python scripts/settings_table.py --write docs/deploy.md   # replace the table between the markers
    python scripts/settings_table.py --check docs/deploy.md   # exit 1 when the file's table is stale
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

BEGIN = "<!-- settings-table:begin (scripts/settings_table.py --write) -->"
END = "<!-- settings-table:end -->"
PREFIX = "GIQA_"


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        return " \\| ".join(names) + (" \\| None" if type(None) in args else "")
    if origin is not None:
        inner = ", ".join(_type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if annotation is SecretStr:
        return "secret"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: FieldInfo) -> str:
    if field.default is not PydanticUndefined:
        value = field.default
    elif field.default_factory is not None:
        try:
            value = field.default_factory()  # type: ignore[call-arg]
        except TypeError:
            return "(computed)"
    else:
        return "(required)"
    if value is None:
        return "unset"
    if isinstance(value, Path) and value.is_absolute():
        return "(computed)"
    return f"`{value}`" if not isinstance(value, list | dict) or value else f"`{value!r}`"


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def rows(model: type[BaseModel], prefix: str = PREFIX) -> Iterator[tuple[str, str, str, str]]:
    """(variable, type, default, description) of every leaf field, sections flattened with ``__``."""
    for name, field in model.model_fields.items():
        variable = f"{prefix}{name.upper()}"
        if _is_section(field.annotation):
            yield from rows(field.annotation, variable + "__")
            continue
        description = (field.description or "").replace("|", "\\|").replace("\n", " ")
        yield variable, _type_name(field.annotation), _default(field), description


def table(model: type[BaseModel]) -> str:
    lines = ["| Variable | Type | Default | What it does |", "|---|---|---|---|"]
    lines += [f"| `{v}` | {t} | {d} | {text} |" for v, t, d, text in rows(model)]
    return "\n".join(lines) + "\n"


def replace_table(document: str, new_table: str) -> str:
    """``document`` with the text between :data:`BEGIN` and :data:`END` replaced by ``new_table``."""
    start, end = document.find(BEGIN), document.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the markers are missing: put {BEGIN!r} and {END!r} where the table goes")
    return document[: start + len(BEGIN)] + "\n" + new_table + document[end:]


def main(argv: list[str] | None = None) -> int:
    from giqa.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", type=Path, help="replace the table between the markers in this file")
    group.add_argument("--check", type=Path, help="exit 1 if this file's table differs from the settings")
    args = parser.parse_args(argv)
    generated = table(Settings)
    bare = [variable for variable, _, _, text in rows(Settings) if not text]
    if bare:
        sys.stderr.write(
            f"{len(bare)} settings have no description (Field(description=...)): {', '.join(bare)}\n"
        )
    target = args.write or args.check
    if target is None:
        sys.stdout.write(generated)
        return 0
    try:
        current = target.read_text(encoding="utf-8")
        updated = replace_table(current, generated)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"{target}: {exc}\n")
        return 2
    if args.check:
        if updated != current:
            sys.stderr.write(
                f"{target}: the settings table is stale; run scripts/settings_table.py --write\n"
            )
            return 1
        return 0
    target.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
