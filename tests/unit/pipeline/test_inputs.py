"""Input adapters: JSONL, LLaVA conversation JSON, images with .txt; bad entries become problems."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from giqa.pipeline.inputs import InputItem, read_inputs, sample_key

pytestmark = pytest.mark.unit


def problems(items: list[InputItem]) -> list[str | None]:
    return [i.problem for i in items]


def test_jsonl_good_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    lines = [
        json.dumps({"image": "a.png", "description": "The  cat is\nblurry."}).encode(),
        json.dumps({"id": "x7", "image": "b.png", "description": "Fine."}).encode(),
        b"",
        b"{not json",
        json.dumps(["a.png", "text"]).encode(),
        json.dumps({"image": "c.png", "description": "   "}).encode(),
        json.dumps({"image": "c.png"}).encode(),
        json.dumps({"description": "no image"}).encode(),
        '{"image": "d.png", "description": "caf\u00e9"}'.encode("latin-1"),
        json.dumps({"image": "e.png", "description": "x" * 50}).encode(),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    items = list(read_inputs(path, tmp_path, max_chars=40))
    assert items[0] == InputItem(sample_key("a.png", "The cat is blurry."), "a.png", "The cat is blurry.")
    assert items[1].key == "x7" and items[1].problem is None
    found = problems(items[2:])
    assert [p.split(": ", 1)[1] if p else p for p in found] == [
        "invalid JSON (Expecting property name enclosed in double quotes)",
        "expected an object with image and description",
        "empty description",
        "no description",
        "no image path",
        "not UTF-8 (invalid continuation byte at byte 38)",
        "description has 50 characters, over the limit of 40",
    ]
    assert all(p and p.startswith("d.jsonl line ") for p in found)


def test_keys_are_stable_and_distinguish_descriptions_of_one_image() -> None:
    assert sample_key("a.png", "one") == sample_key("a.png", "one") != sample_key("a.png", "two")


def test_llava_json_uses_the_first_answer(tmp_path: Path) -> None:
    records = [
        {"id": "q1", "image": "a.png", "conversations": [{"from": "human", "value": "<image>\nRate it."},
                                                          {"from": "gpt", "value": "The sky is noisy."},
                                                          {"from": "human", "value": "More?"},
                                                          {"from": "gpt", "value": "No."}]},
        {"image": "b.png", "conversations": [{"from": "human", "value": "<image>\nRate it."}]},
        "junk",
    ]  # fmt: skip
    path = tmp_path / "q.json"
    path.write_text(json.dumps(records))
    items = list(read_inputs(path, tmp_path))
    assert (items[0].key, items[0].image, items[0].description, items[0].problem) == (
        "q1", "a.png", "The sky is noisy.", None,
    )  # fmt: skip
    assert items[1].problem == "q.json record 1: no description"
    assert items[2].problem == "q.json record 2: not an object"


@pytest.mark.parametrize(
    ("content", "message"), [(b"{", "not valid JSON"), (b"{}", "JSON list"), (b"\xff", "UTF-8")]
)
def test_broken_llava_file_is_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "q.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        list(read_inputs(path, tmp_path))


def test_txt_folder(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.png").write_bytes(b"png")
    (tmp_path / "sub" / "a.txt").write_text("The dog is sharp.\n")
    (tmp_path / "b.jpg").write_bytes(b"jpg")
    (tmp_path / "c.JPEG").write_bytes(b"jpg")
    (tmp_path / "c.txt").write_bytes(b"\xff\xfe bad")
    (tmp_path / "notes.md").write_text("ignored")
    items = list(read_inputs(None, tmp_path))
    assert [(i.image, i.description, i.problem) for i in items] == [
        ("b.jpg", "", "b.jpg: no b.txt beside it"),
        ("c.JPEG", "", "c.txt: not UTF-8 text (invalid start byte at byte 0)"),
        ("sub/a.png", "The dog is sharp.", None),
    ]


@pytest.mark.parametrize("name", ["missing.jsonl", "d.csv"])
def test_unusable_description_files_are_refused(tmp_path: Path, name: str) -> None:
    (tmp_path / "d.csv").write_text("a,b")
    with pytest.raises(ValueError):
        read_inputs(tmp_path / name, tmp_path)
    with pytest.raises(ValueError, match="images folder not found"):
        read_inputs(None, tmp_path / "nope")


def test_a_bom_and_crlf_are_read_like_plain_utf8(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    line = json.dumps({"image": "a.png", "description": "The cat is blurry."})
    path.write_bytes(b"\xef\xbb\xbf" + line.encode() + b"\r\n")
    (item,) = read_inputs(path, tmp_path)
    assert item.problem is None and item.description == "The cat is blurry."
    (tmp_path / "x.png").write_bytes(b"")
    (tmp_path / "x.txt").write_bytes(b"\xef\xbb\xbfA dark photo.")
    (txt_item,) = read_inputs(None, tmp_path)
    assert txt_item.description == "A dark photo."


def test_one_id_with_several_descriptions_gets_a_key_per_description(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    rows = [
        {"id": "a", "image": "a.png", "description": "Blurry."},
        {"id": "a", "image": "a.png", "description": "Noisy."},
        {"id": "a", "image": "a.png", "description": "Blurry."},
        {"image": "a.png", "description": "Blurry."},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    keys = [i.key for i in read_inputs(path, tmp_path)]
    again = [i.key for i in read_inputs(path, tmp_path)]
    assert keys == again, "keys are stable across runs (resume)"
    assert keys[0] == "a" and keys[1].startswith("a-") and keys[2] == "a" and keys[3] == "a"
