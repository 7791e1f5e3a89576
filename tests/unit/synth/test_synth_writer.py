"""write_scenes: images + annotations.jsonl, identical bytes on a re-run, atomic, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from giqa.grounded_text import parse_text, strip_coordinates
from giqa.synth import SceneRecord, SynthConfig, generate_scene
from giqa.synth.writer import ANNOTATIONS, CONFIG_FILE, read_scenes, write_scenes

pytestmark = pytest.mark.unit


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_rerun_reproduces_identical_bytes(tmp_path: Path) -> None:
    write_scenes(12, 4, tmp_path / "a", progress=False)
    write_scenes(12, 4, tmp_path / "b", progress=False)
    write_scenes(12, 4, tmp_path / "a", progress=False, overwrite=True)  # over an existing set
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert a == b
    assert len([k for k in a if k.startswith("images/")]) == 12
    assert not [k for k in a if k.endswith(".tmp")], "no temporary files left behind"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"], "no staging folder left behind"


def test_a_non_empty_folder_is_refused_unless_overwrite_then_replaced_whole(tmp_path: Path) -> None:
    out = tmp_path / "set"
    write_scenes(3, 0, out, progress=False)
    (out / "llava.json").write_text("[]")  # an export of the earlier set
    before = _tree(out)
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_scenes(2, 1, out, progress=False)
    assert _tree(out) == before
    write_scenes(2, 1, out, progress=False, overwrite=True)
    after = _tree(out)
    assert "llava.json" not in after and len([k for k in after if k.startswith("images/")]) == 2
    assert [r.seed for r in read_scenes(out)] == [1, 1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


def test_an_interrupted_overwrite_leaves_the_old_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import giqa.synth.writer as writer

    out = tmp_path / "set"
    write_scenes(2, 0, out, progress=False)
    before = _tree(out)
    calls = 0

    def broken(seed: int, index: int, config: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt
        return generate_scene(seed, index, config)  # type: ignore[arg-type]

    monkeypatch.setattr(writer, "generate_scene", broken)
    with pytest.raises(KeyboardInterrupt):
        write_scenes(3, 5, out, progress=False, overwrite=True)
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


def test_records_point_at_their_images(tmp_path: Path) -> None:
    path = write_scenes(5, 2, tmp_path, progress=False, start=10)
    records = read_scenes(path)
    assert [r.index for r in records] == list(range(10, 15))
    for r in records:
        with Image.open(path.parent / r.image) as image:
            assert image.size == (r.width, r.height)
            assert image.tobytes() == generate_scene(2, r.index)[0].tobytes()
    saved = json.loads((tmp_path / CONFIG_FILE).read_text())
    assert saved["seed"] == 2 and saved["config"]["width"] == 128


def test_annotations_lines_are_scene_records(tmp_path: Path) -> None:
    write_scenes(3, 0, tmp_path, progress=False)
    for line in (tmp_path / ANNOTATIONS).read_text().splitlines():
        SceneRecord.model_validate_json(line)


@pytest.mark.parametrize(("n", "seed"), [(0, 0), (-3, 0), (2, -1), (2, 10**9)])
def test_bad_arguments_are_refused(n: int, seed: int, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n must|seed must"):
        write_scenes(n, seed, tmp_path, progress=False)
    assert not (tmp_path / ANNOTATIONS).exists()


def test_a_file_in_place_of_the_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("keep me")
    with pytest.raises(NotADirectoryError):
        write_scenes(1, 0, tmp_path / "x", progress=False)
    assert (tmp_path / "x").read_text() == "keep me"


def test_reading_a_broken_file_names_the_line(tmp_path: Path) -> None:
    write_scenes(2, 0, tmp_path, progress=False)
    path = tmp_path / ANNOTATIONS
    path.write_text(path.read_text() + '{"id": "broken"}\n')
    with pytest.raises(ValueError, match=r":3: not a scene record"):
        read_scenes(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_scenes(tmp_path / "nowhere")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), index=st.integers(0, 10**6), size=st.sampled_from([64, 96, 128, 160]))
def test_any_seed_gives_a_valid_record(seed: int, index: int, size: int) -> None:
    image, r = generate_scene(seed, index, SynthConfig(width=size, height=size))
    assert image.size == (size, size)
    assert strip_coordinates(r.des_answer) == r.description
    assert not parse_text(r.des_answer).problems
    for tag in r.tags:
        assert tag.phrase in r.description and tag.quality in r.description
    for o in r.objects:
        x1, y1, x2, y2 = o.box_px
        assert 0 <= x1 < x2 <= size and 0 <= y1 < y2 <= size
    assert any(o.degradations for o in r.objects) or r.verdict in ("good", "fair")
    for q in r.vqa:
        assert q.qtype != "yes_no" or q.answer in ("Yes.", "No.")
    SceneRecord.model_validate_json(r.model_dump_json())


def test_llava_export_keeps_every_sample(tmp_path: Path) -> None:
    from giqa.schemas import LlavaRecord, from_llava
    from giqa.synth.export import to_samples, write_llava

    write_scenes(4, 1, tmp_path, progress=False)
    records = read_scenes(tmp_path)
    path, count = write_llava(tmp_path, tmp_path / "llava.json")
    rows = json.loads(path.read_text())
    assert count == len(rows) == sum(1 + len(r.vqa) for r in records)
    by_id = {row["id"]: row for row in rows}
    for r in records:
        des = by_id[f"{r.id}-des"]
        LlavaRecord.model_validate(des)
        assert from_llava(des) == (r.image, r.des_question, r.des_answer)
        assert des["task"] == "des" and des["mode"] == "grounding"
        for k, q in enumerate(r.vqa):
            row = by_id[f"{r.id}-vqa-{k}"]
            assert (row["qtype"], row["mode"]) == (q.qtype, q.mode)
            assert from_llava(row)[1:] == (q.question, q.answer)
        samples = to_samples(r)
        assert [o.phrase for o in samples[0].objects] == [t.phrase for t in r.tags]
