"""giqa.files: the decoding policy, atomic writes that leave nothing behind, output checks, folder swaps,
paths kept inside their root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from giqa.files import (
    InputFileError,
    OutputPathError,
    atomic_write_bytes,
    atomic_write_json,
    atomic_writer,
    check_output_dir,
    check_output_file,
    decode,
    inside,
    iter_lines,
    read_json,
    read_text,
    staged_dir,
)

pytestmark = pytest.mark.unit


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# ------------------------------------------------------------------------------------------- reading


def test_a_bom_is_dropped_only_at_the_start(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n\n  \n{"b": "\xef\xbb\xbf"}\r\n')
    lines = list(iter_lines(path))
    assert [(line.number, line.text, line.problem) for line in lines] == [
        (1, '{"a": 1}', None),
        (4, '{"b": "\ufeff"}', None),
    ]
    assert read_text(path).startswith('{"a": 1}')


def test_non_utf8_is_a_problem_of_its_line_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"ok\ncaf\xe9\nok again\n")
    lines = list(iter_lines(path))
    assert [line.problem for line in lines] == [None, "not UTF-8 (invalid continuation byte at byte 3)", None]
    assert "\ufffd" not in "".join(line.text for line in lines)
    with pytest.raises(
        InputFileError, match=r"a.jsonl: not UTF-8 text \(invalid continuation byte at byte 6\)"
    ):
        read_text(path)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.mkdir(), "is a folder"),
        (lambda p: None, "file not found"),
        (lambda p: p.write_bytes(b"{oops"), "is not JSON"),
    ],
)
def test_unreadable_inputs_are_input_file_errors(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "x.json"
    make(path)
    with pytest.raises(InputFileError, match=message):
        read_json(path)


@given(st.text())
def test_decode_round_trips_any_text_with_or_without_a_bom(text: str) -> None:
    assert decode(text.encode(), "x") == decode(b"\xef\xbb\xbf" + text.encode(), "x") == text


# ------------------------------------------------------------------------------------------- writing


def test_atomic_write_replaces_whole_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "r.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2})
    assert read_json(target) == {"a": 2}
    assert listing(tmp_path) == ["sub", "sub/r.json"]
    assert (target.stat().st_mode & 0o777) == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_writer(target) as handle:
        handle.write("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old" and listing(tmp_path) == ["r.json"]


def test_writing_over_a_folder_fails_and_leaves_no_temp(tmp_path: Path) -> None:
    (tmp_path / "r.json").mkdir()
    with pytest.raises(IsADirectoryError):
        atomic_write_bytes(tmp_path / "r.json", b"x")
    assert listing(tmp_path) == ["r.json"]


def test_output_checks_refuse_before_work(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("x")
    assert check_output_file(tmp_path / "new" / "deeper" / "r.json") == tmp_path / "new" / "deeper" / "r.json"
    with pytest.raises(OutputPathError, match="is a folder"):
        check_output_file(tmp_path / "d")
    with pytest.raises(OutputPathError, match="is a file, not a folder"):
        check_output_file(tmp_path / "f" / "r.json")
    with pytest.raises(OutputPathError, match="not writable"):
        check_output_file("/sys/giqa-probe/r.json")  # sysfs refuses new files, even to root
    with pytest.raises(OutputPathError, match="is not a folder"):
        check_output_dir(tmp_path / "f")
    assert listing(tmp_path) == ["d", "f"], "the checks create nothing"


def test_staged_dir_refuses_replaces_whole_and_cleans_up(tmp_path: Path) -> None:
    out = tmp_path / "set"
    with staged_dir(out) as stage:  # a new folder
        (stage / "a.txt").write_text("1")
    (out / "stale.txt").write_text("old run")
    with pytest.raises(FileExistsError, match="--overwrite"), staged_dir(out):
        pass
    with pytest.raises(KeyboardInterrupt), staged_dir(out, overwrite=True) as stage:
        (stage / "b.txt").write_text("2")
        raise KeyboardInterrupt
    assert listing(tmp_path) == ["set", "set/a.txt", "set/stale.txt"], "a failed swap leaves the old set"
    with staged_dir(out, overwrite=True) as stage:
        (stage / "b.txt").write_text("2")
    assert listing(tmp_path) == ["set", "set/b.txt"]
    (tmp_path / "empty").mkdir()
    with staged_dir(tmp_path / "empty") as stage:  # an empty folder is filled without --overwrite
        (stage / "c.txt").write_text("3")
    assert (tmp_path / "empty" / "c.txt").read_text() == "3"


# --------------------------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("relative", "ok"),
    [
        ("a.png", True),
        ("sub/./b.png", True),
        ("sub/../a.png", True),
        ("../a.png", False),
        ("sub/../../a.png", False),
        ("../../../etc/passwd", False),
        ("/etc/passwd", False),
        ("..\\..\\x.png", False),
        ("C:/x.png", False),
    ],
)
def test_paths_stay_inside_their_root(tmp_path: Path, relative: str, ok: bool) -> None:
    if ok:
        assert inside(tmp_path, relative).resolve().is_relative_to(tmp_path.resolve())
    else:
        with pytest.raises(ValueError, match="absolute|leads outside"):
            inside(tmp_path, relative)


def test_an_empty_current_folder_is_filled_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    with staged_dir(".") as stage:
        (stage / "a.txt").write_text("1")
    assert Path.cwd() == here and (here / "a.txt").read_text() == "1"
    assert listing(tmp_path) == ["here", "here/a.txt"]
    with pytest.raises(FileExistsError, match="holds the current folder"), staged_dir(".", overwrite=True):
        pass
