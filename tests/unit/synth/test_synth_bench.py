"""GIQA-Synth-Bench: the paper's exact mix, the DESIGN §3.4 format, reproducible and apart from training."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from giqa.grid import max_error
from giqa.grounded_text import parse_text, strip_coordinates
from giqa.schemas import BenchItem
from giqa.synth.bench import BENCH_FILE, SCENES_FILE, bench_world_seed, read_bench, write_bench
from giqa.synth.writer import MAX_TRAIN_SEED, read_scenes

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def items(bench_dir: Path) -> list[BenchItem]:
    return read_bench(bench_dir / BENCH_FILE)


def test_counts_and_proportions_are_exact(items: list[BenchItem]) -> None:
    tasks = Counter(i.task for i in items)
    assert tasks == {"des": 100, "vqa": 150}
    vqa = [i for i in items if i.task == "vqa"]
    assert Counter(i.qtype for i in vqa) == {"yes_no": 90, "what": 30, "why": 18, "how": 12}
    assert Counter(i.answer for i in vqa if i.qtype == "yes_no") == {"Yes.": 35, "No.": 55}
    # each VQA type is split between referring and grounding
    for qtype, count in (("yes_no", 90), ("what", 30), ("why", 18), ("how", 12)):
        modes = Counter(i.mode for i in vqa if i.qtype == qtype)
        assert (
            set(modes) == {"referring", "grounding"}
            and abs(modes["referring"] - modes["grounding"]) <= count // 3
        )


def test_one_hundred_images_shared_by_the_items(items: list[BenchItem], bench_dir: Path) -> None:
    images = Counter(i.image for i in items)
    assert len(images) == 100
    assert max(images.values()) <= 5
    for image in images:
        assert (bench_dir / image).is_file(), "image paths are relative to the bench file"
    assert len(list((bench_dir / "images").glob("*.png"))) == 100


def test_lines_are_bench_items_in_the_design_format(bench_dir: Path) -> None:
    lines = (bench_dir / BENCH_FILE).read_text().splitlines()
    assert len(lines) == 250
    ids = set()
    for line in lines:
        raw = json.loads(line)
        assert set(raw) <= {"id", "task", "qtype", "mode", "image", "question", "answer", "objects"}
        for obj in raw["objects"]:
            assert set(obj) == {"phrase", "box"} and len(obj["box"]) == 4
        ids.add(raw["id"])
    assert len(ids) == 250


def test_objects_are_the_boxes_the_answer_contains(items: list[BenchItem], bench_dir: Path) -> None:
    ex, ey = max_error()
    scenes = {r.image: r for r in read_scenes(bench_dir / SCENES_FILE)}
    for item in items:
        if item.task == "vqa" and (item.qtype == "yes_no" or item.mode == "referring"):
            assert item.objects == []
            continue
        mentions = parse_text(item.answer).mentions
        boxes = [(m.phrase, b) for m in mentions for b in m.boxes]
        assert [p for p, _ in boxes] == [o.phrase for o in item.objects]
        for (_, b), obj in zip(boxes, item.objects, strict=True):
            assert abs(b.x1 - obj.box.x1) <= ex + 1e-9 and abs(b.y2 - obj.box.y2) <= ey + 1e-9
        if item.task == "des":
            record = scenes[item.image]
            assert strip_coordinates(item.answer) == record.description
            assert item.question == record.des_question


def test_bench_holds_hard_cases(bench_dir: Path) -> None:
    records = read_scenes(bench_dir / SCENES_FILE)
    assert len(records) == 100
    assert sum(r.hard_case for r in records) >= 10


def test_bench_world_never_overlaps_training(bench_dir: Path) -> None:
    records = read_scenes(bench_dir / SCENES_FILE)
    assert all(r.seed == bench_world_seed(0) >= MAX_TRAIN_SEED for r in records)


def test_same_seed_same_bytes_other_seed_differs(bench_dir: Path, tmp_path: Path) -> None:
    again = write_bench(0, tmp_path / "again", progress=False)
    assert again.read_bytes() == (bench_dir / BENCH_FILE).read_bytes()
    first = sorted((bench_dir / "images").iterdir())[0]
    assert (tmp_path / "again" / "images" / first.name).read_bytes() == first.read_bytes()
    other = write_bench(1, tmp_path / "other", progress=False)
    assert other.read_bytes() != again.read_bytes()


@pytest.mark.parametrize("seed", [-1, MAX_TRAIN_SEED, 1.5])
def test_bad_seed_is_refused(seed: object, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="seed"):
        write_bench(seed, tmp_path, progress=False)  # type: ignore[arg-type]


def test_output_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(NotADirectoryError):
        write_bench(0, target, progress=False)
