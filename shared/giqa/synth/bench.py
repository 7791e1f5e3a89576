"""GIQA-Synth-Bench: the paper's benchmark mix drawn from 100 synthetic images (DESIGN §3.4, paper §3.4).

100 DES items (one per image) and 150 VQA items: 90 Yes/No (35 "Yes.", 55 "No.") and 60 others
(30 What, 18 Why, 12 How), each VQA type split between referring and grounding. Items are spread over
the images so that no image carries many more questions than another.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from giqa.evaluation.io import read_bench as read_bench_file
from giqa.files import staged_dir
from giqa.schemas import BenchItem, BenchObject
from giqa.synth.config import SynthConfig
from giqa.synth.generate import DEFAULT_CONFIG, generate_scene, qa_pool
from giqa.synth.scene import rng_for
from giqa.synth.schema import SceneRecord, SynthQA
from giqa.synth.writer import CONFIG_FILE, MAX_TRAIN_SEED, config_json, png_bytes

BENCH_FILE = "bench.jsonl"
SCENES_FILE = "scenes.jsonl"
BENCH_IMAGES = 100
N_DES = 100
# (qtype, answer or None) -> count
VQA_MIX: dict[tuple[str, str | None], int] = {
    ("yes_no", "Yes."): 35,
    ("yes_no", "No."): 55,
    ("what", None): 30,
    ("why", None): 18,
    ("how", None): 12,
}


def bench_world_seed(seed: int) -> int:
    """The world the bench draws from: never one a training set (seed < MAX_TRAIN_SEED) uses."""
    return MAX_TRAIN_SEED + seed


def des_item(record: SceneRecord, item_id: str) -> BenchItem:
    """The DES item of a scene; its objects are the boxes the grounded answer carries."""
    key = {o.phrase: o for o in record.objects if o.mentioned}  # look-alike twins: only one is mentioned
    # in the order the answer grounds them: the first mention of each key object
    objects = [BenchObject(phrase=t.phrase, box=key[t.phrase].box) for t in record.tags]
    return BenchItem(
        id=item_id,
        task="des",
        mode="grounding",
        image=record.image,
        question=record.des_question,
        answer=record.des_answer,
        objects=objects,
    )


def vqa_item(record: SceneRecord, qa: SynthQA, item_id: str) -> BenchItem:
    return BenchItem(
        id=item_id,
        task="vqa",
        qtype=qa.qtype,
        mode=qa.mode,
        image=record.image,
        question=qa.question,
        answer=qa.answer,
        objects=list(qa.objects),
    )


def select_vqa(
    records: list[SceneRecord], pools: list[list[SynthQA]], rng: np.random.Generator
) -> list[tuple[int, SynthQA]]:
    """(scene index, item) pairs with exactly the mix of :data:`VQA_MIX`, spread over the scenes."""
    slots = [key for key, count in VQA_MIX.items() for _ in range(count)]
    slots = [slots[int(i)] for i in rng.permutation(len(slots))]
    used: set[tuple[int, int]] = set()
    per_scene: Counter[int] = Counter()
    per_type: Counter[str] = Counter()
    chosen: list[tuple[int, SynthQA]] = []
    for slot_no, (qtype, answer) in enumerate(slots):
        preferred = "referring" if per_type[qtype] % 2 == 0 else "grounding"
        per_type[qtype] += 1
        # the least-used scenes first, from a rotating start so the types interleave over images
        order = sorted(range(len(records)), key=lambda s: (per_scene[s], (s - slot_no * 37) % len(records)))
        pick: tuple[int, int] | None = None
        for modes in ((preferred,), ("referring", "grounding")):
            for s in order:
                matches = [
                    i
                    for i, q in enumerate(pools[s])
                    if (s, i) not in used
                    and q.qtype == qtype
                    and q.mode in modes
                    and answer in (None, q.answer)
                ]
                if matches:
                    pick = (s, matches[int(rng.integers(0, len(matches)))])
                    break
            if pick:
                break
        if pick is None:
            raise RuntimeError(f"no scene left with a {qtype} item (answer {answer}); use more images")
        used.add(pick)
        per_scene[pick[0]] += 1
        chosen.append((pick[0], pools[pick[0]][pick[1]]))
    return chosen


def build_bench(
    seed: int = 0, config: SynthConfig | None = None, progress: bool = True
) -> tuple[list[tuple[object, SceneRecord]], list[BenchItem]]:
    """The bench's scenes (image, record) and items, without writing anything."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < MAX_TRAIN_SEED:
        raise ValueError(f"seed must be an integer in [0, {MAX_TRAIN_SEED}), got {seed!r}")
    config = config or DEFAULT_CONFIG
    world = bench_world_seed(seed)
    scenes = [
        generate_scene(world, i, config)
        for i in tqdm(range(BENCH_IMAGES), desc="bench scenes", unit="scene", disable=not progress)
    ]
    records = [record for _, record in scenes]
    items = [des_item(r, f"des-{i:03d}") for i, r in enumerate(records[:N_DES])]
    pools = [qa_pool(r, config) for r in records]
    for j, (s, qa) in enumerate(select_vqa(records, pools, rng_for(world, 0, "bench-select"))):
        items.append(vqa_item(records[s], qa, f"vqa-{j:03d}"))
    return list(scenes), items


def write_bench(
    seed: int = 0,
    out_dir: str | Path = "giqa-synth-bench",
    config: SynthConfig | None = None,
    progress: bool = True,
    *,
    overwrite: bool = False,
) -> Path:
    """Write ``bench.jsonl`` (one BenchItem a line), ``scenes.jsonl`` (full records) and ``images/``.

    Built in a temporary folder and moved into place whole; a non-empty ``out_dir`` is refused unless
    ``overwrite`` (then replaced whole).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a directory")
    config = config or DEFAULT_CONFIG
    scenes, items = build_bench(seed, config, progress)
    with staged_dir(out, overwrite=overwrite) as stage:
        for image, record in scenes:
            (stage / record.image).parent.mkdir(parents=True, exist_ok=True)
            (stage / record.image).write_bytes(png_bytes(image))  # type: ignore[arg-type]
        (stage / SCENES_FILE).write_text("".join(r.model_dump_json() + "\n" for _, r in scenes), "utf-8")
        config_text = config_json(config, seed=seed, world_seed=bench_world_seed(seed))
        (stage / CONFIG_FILE).write_text(config_text, "utf-8")
        (stage / BENCH_FILE).write_text("".join(item.model_dump_json() + "\n" for item in items), "utf-8")
    return out / BENCH_FILE


def read_bench(path: str | Path) -> list[BenchItem]:
    """The items of a bench folder (or its ``bench.jsonl``): :func:`giqa.evaluation.io.read_bench`."""
    p = Path(path)
    return read_bench_file(p / BENCH_FILE if p.is_dir() else p)
