"""Reading and writing the project's files: one decoding policy, one atomic write, one output check.

Reading (decided): a UTF-8 byte-order mark at the very start of a file is dropped (Windows editors write
one, and it must not turn line 1 into "not JSON"); any other byte sequence that is not UTF-8 is a problem
naming the line and byte, never replaced silently. What a bad line means is the caller's choice: a bench
refuses the file, a predictions file counts the line as invalid, ``giqa annotate`` records a failed sample.

Writing: a temporary file in the target's folder, flushed, fsynced and renamed over the target; on any
failure the temporary file is removed, so a reader sees the old file or the whole new one, never a part,
and no stray file is left. Folders are replaced the same way (:func:`staged_dir`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

BOM = b"\xef\xbb\xbf"


class InputFileError(ValueError):
    """An input file that cannot be read as the text or the kind of file it should be."""


class OutputPathError(ValueError):
    """An output path that cannot be written: a folder in place of a file, a read-only folder, ..."""


@dataclass(frozen=True, slots=True)
class Line:
    """One non-blank line of a text file: its text, or why it has none (not UTF-8)."""

    number: int  # 1-based
    text: str
    problem: str | None = None


def decode(data: bytes, where: str) -> str:
    """``data`` as UTF-8 without a leading BOM; :class:`InputFileError` naming ``where`` and the byte."""
    if data.startswith(BOM):
        data = data[len(BOM) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def iter_lines(path: str | Path) -> Iterator[Line]:
    """The non-blank lines of a text file (streamed); a line that is not UTF-8 comes with a problem."""
    path = Path(path)
    with _open_input(path) as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(BOM):
                raw = raw[len(BOM) :]
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield Line(number, "", f"not UTF-8 ({exc.reason} at byte {exc.start})")
                continue
            yield Line(number, text.rstrip("\r\n"))


def read_text(path: str | Path) -> str:
    """A whole text file under the decoding policy; a missing file is :class:`InputFileError` too."""
    path = Path(path)
    with _open_input(path) as handle:
        return decode(handle.read(), str(path))


def read_json(path: str | Path) -> Any:
    """A JSON document under the decoding policy; malformed JSON is an :class:`InputFileError`."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputFileError(f"{path} is not JSON: {exc.msg} at line {exc.lineno}") from exc


@contextmanager
def _open_input(path: Path) -> Iterator[IO[bytes]]:
    if path.is_dir():
        raise InputFileError(f"{path} is a folder, not a file")
    if not path.exists():
        raise InputFileError(f"file not found: {path}")
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputFileError(f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        yield handle


# ------------------------------------------------------------------------------------------- writing


def check_output_file(path: str | Path, what: str = "output") -> Path:
    """Refuse, before any work, an output file that could not be written; returns the path.

    A folder in its place, a file where its folder should be, or a nearest existing folder that this
    process cannot create a file in are :class:`OutputPathError`. The write itself can still fail
    later (a full disk); it is atomic, so nothing half-written stays.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{what} {path} is a folder; give a file path")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputPathError(f"cannot write {what} {path}: {parent} is a file, not a folder")
    _probe(parent, f"cannot write {what} {path}")
    return path


def check_output_dir(path: str | Path, what: str = "output folder") -> Path:
    """Refuse, before any work, an output folder that could not be created or written; returns it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{what} {path} exists and is not a folder")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise OutputPathError(f"cannot create {what} {path}: {probe} is a file, not a folder")
    _probe(probe, f"cannot write {what} {path}")
    return path


def _probe(folder: Path, context: str) -> None:
    """Create and remove a file in ``folder``: the one test that sees permissions, ACLs, read-only mounts
    and root alike (``os.access`` says yes to root everywhere)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".giqa-probe-", dir=folder)
    except OSError as exc:
        raise OutputPathError(f"{context}: {folder} is not writable ({exc.strerror})") from None
    os.close(fd)
    os.unlink(name)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _readable_mode(tmp: str) -> None:
    # mkstemp makes 0600 files; an output is as readable as any file this process creates
    os.chmod(tmp, 0o666 & ~_umask())


@contextmanager
def atomic_writer(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """A handle on a temporary file beside ``path``, renamed over it only when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        _readable_mode(tmp)
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_writer(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_lines(path: str | Path, lines: Iterable[str]) -> None:
    with atomic_writer(path) as handle:
        for line in lines:
            handle.write(line + "\n")


def atomic_write_json(path: str | Path, data: object) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def atomic_write_jsonl(path: str | Path, rows: Iterable[object]) -> None:
    atomic_write_lines(path, (json.dumps(row, ensure_ascii=False) for row in rows))


def is_empty_dir(path: Path) -> bool:
    return path.is_dir() and next(path.iterdir(), None) is None


@contextmanager
def staged_dir(out: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """A fresh temporary folder beside ``out`` to fill; on success it takes ``out``'s place whole.

    A non-empty ``out`` is refused (:class:`FileExistsError`) unless ``overwrite``, so files of an earlier
    run never mix with a new one (decided: a folder is replaced whole, not merged). The swap is two
    renames: the old folder is moved aside, the new one moved in, the old one deleted. An existing empty
    folder is kept and filled (it may be a mount point or the current folder). On failure the temporary
    folder is removed and ``out`` is left as it was.
    """
    shown, out = Path(out), Path(out).absolute()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{shown} exists and is not a directory")
    if out.is_dir() and not is_empty_dir(out) and not overwrite:
        raise FileExistsError(f"{shown} is not empty: pass --overwrite to replace it, or choose another one")
    if overwrite and out.is_dir() and Path.cwd().resolve().is_relative_to(out.resolve()):
        raise FileExistsError(f"{shown} holds the current folder; it cannot be replaced from inside")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".staging", dir=out.parent))
    try:
        os.chmod(staging, 0o777 & ~_umask())
        yield staging
        publish_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def publish_dir(staging: str | Path, out: str | Path) -> Path:
    """Move the fully written folder ``staging`` to ``out`` (same file system), replacing an older ``out``
    only once the new one is whole: the old folder is moved aside, the new one moved in, the old one
    deleted (put back if the second rename fails). An existing empty ``out`` (maybe a mount point or the
    current folder) is kept and filled. Files some writers create as 0600 get the umask's permissions, so a
    published folder (a model, a dataset) is as readable as any other output."""
    staging, out = Path(staging), Path(out)
    mode = 0o666 & ~_umask()
    for file in staging.rglob("*"):
        if file.is_file() and not file.is_symlink():
            os.chmod(file, mode)
    if out.is_dir() and not is_empty_dir(out):
        aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        os.replace(out, aside / out.name)
        try:
            os.replace(staging, out)
        except BaseException:
            os.replace(aside / out.name, out)  # put the old set back
            raise
        finally:
            shutil.rmtree(aside, ignore_errors=True)
    elif out.is_dir():
        for child in staging.iterdir():
            os.replace(child, out / child.name)
        staging.rmdir()
    else:
        os.replace(staging, out)
    return out


# --------------------------------------------------------------------------------------------- paths


def inside(root: str | Path, relative: str) -> Path:
    """``root / relative`` when ``relative`` stays inside ``root``; :class:`ValueError` otherwise.

    (decided) The check is on the path as written: absolute paths and ``..`` that climb out of the root are
    refused, so an input file cannot make the tool open ``/etc/passwd``; symbolic links inside the root are
    followed, as whoever owns the root put them there.
    """
    rel = PurePosixPath(relative.replace("\\", "/"))
    if rel.is_absolute() or (rel.parts and rel.parts[0].endswith(":")):
        raise ValueError(f"image path {relative!r} is absolute; it must be relative to {root}")
    depth = 0
    for part in rel.parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            raise ValueError(f"image path {relative!r} leads outside {root}")
    return Path(root) / rel
