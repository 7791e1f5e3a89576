"""Stages 3–4, VQA grounding/balancing and the export at the paper's size, from recorded model outputs.

GIQA-160K has 167,657 samples: 66,689 GIQA-DES + 100,968 GIQA-VQA (50,484 Yes/No, 25,242 of each answer,
and 50,484 What/Why/How) over 42,960 images. Phase 1 (a child process, not timed against the target)
records what the models would have said for 66,689 descriptions: Stage-1 tags, Stage-2 detections (the
true boxes jittered, plus distractors), the judge's p_yes for every box, and an LLM VQA answer — built from
GIQA-Synth scenes. Phase 2 (timed, peak RSS measured in its own process) replays them through the real
``assemble`` (IQA-Filter with the recorded judgements, Box-Merge, fusion, the DES sample), VQA validation
and grounding, the audit JSONL, balancing to exactly the paper's VQA counts, the split, the LLaVA JSON,
Table 1 and the histogram. Target: <= 60 s and <= 1 GB peak on the 2-core CI machine.

    python bench/assemble_scale.py [--records 66689] [--images 42960] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PAPER_DES, PAPER_VQA, PAPER_IMAGES = 66_689, 100_968, 42_960


def record_phase(path: Path, records: int, images: int, seed: int) -> None:
    """Write the recorded Stage 1–2 outputs (+ judge p_yes and a raw VQA answer) as JSONL."""
    from giqa.synth import generate_scene

    rng = random.Random(seed)
    scenes = [generate_scene(seed, i)[1] for i in range(400)]
    scenes = [s for s in scenes if s.tags]
    with path.open("w", encoding="utf-8") as handle:
        for index in range(records):
            scene = scenes[index % len(scenes)]
            boxes = {o.phrase: o.box for o in scene.objects}
            tags, detections = [], []
            for tag in scene.tags:
                x1, y1, x2, y2 = boxes[tag.phrase]
                found = []
                for _ in range(rng.choice((1, 1, 2, 3))):  # the true box, jittered, sometimes twice
                    j = [rng.uniform(-0.02, 0.02) for _ in range(4)]
                    box = [min(max(v, 0.0), 1.0) for v in (x1 + j[0], y1 + j[1], x2 + j[2], y2 + j[3])]
                    box = [min(box[0], box[2]), min(box[1], box[3]), max(box[0], box[2]), max(box[1], box[3])]
                    found.append({"box": box, "score": rng.uniform(0.4, 0.9), "p_yes": rng.uniform(0.5, 1.0)})
                if rng.random() < 0.4:  # a distractor elsewhere, which the judge should reject
                    cx, cy, w = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.3)
                    box = [
                        max(0.0, cx - w / 2),
                        max(0.0, cy - w / 2),
                        min(1.0, cx + w / 2),
                        min(1.0, cy + w / 2),
                    ]
                    found.append({"box": box, "score": rng.uniform(0.3, 0.6), "p_yes": rng.uniform(0.0, 0.6)})
                tags.append(tag.model_dump())
                detections.append(found)
            first = scene.tags[0]
            raw_qa = [
                {"type": "yes_no", "question": f"Is the {first.phrase} {first.quality}?", "answer": "Yes"},
                {"type": "what", "question": f"Which object is {first.quality}?", "answer": first.phrase},
                {"type": "how", "question": "How is the weather?", "answer": "Sunny"},  # the filter drops it
            ]
            line = {
                "key": f"r{index:06d}",
                "image": f"images/{index % images:06d}.png",
                "description": scene.description,
                "tags": tags,
                "detections": detections,
                "raw_qa": raw_qa,
            }
            handle.write(json.dumps(line) + "\n")


class ReplayJudge:
    """The recorded judge: p_yes per (box, quality) as the recording says (model calls excluded)."""

    def __init__(self, answers: dict[tuple[tuple[float, ...], str], float]) -> None:
        self.answers = answers

    def judge_batch(self, items: Sequence[tuple[Any, Any, str]]) -> list[Any]:
        from giqa.ports import Judgement

        return [Judgement(self.answers[(box.as_tuple(), quality)]) for _image, box, quality in items]

    def judge(self, image: Any, box: Any, quality: str) -> Any:
        return self.judge_batch([(image, box, quality)])[0]


def assemble_phase(recorded: Path, out_dir: Path) -> dict[str, Any]:
    from PIL import Image
    from tqdm import tqdm

    from giqa.boxes import Box
    from giqa.pipeline.export import export_from_audit, vqa_index
    from giqa.pipeline.run import AnnotateConfig, assemble, vqa_from_recorded
    from giqa.ports import Detection
    from giqa.schemas import Tag

    config = AnnotateConfig()
    placeholder = Image.new("RGB", (8, 8))  # the replayed judge answers from the recording, not the pixels
    timings: dict[str, float] = {}
    started = time.perf_counter()
    audit = out_dir / "audit.jsonl"
    with recorded.open(encoding="utf-8") as source, audit.open("w", encoding="utf-8") as sink:
        for line in tqdm(source, total=None, desc="assemble", unit="sample", file=sys.stderr, mininterval=2):
            rec = json.loads(line)
            tags = [Tag.model_validate(t) for t in rec["tags"]]
            detections, answers = [], {}
            for tag, found in zip(tags, rec["detections"], strict=True):
                dets = []
                for d in found:
                    box = Box(*d["box"])
                    dets.append(Detection(box, d["score"], tag.phrase))
                    answers[(box.as_tuple(), tag.quality)] = d["p_yes"]
                detections.append(dets)
            done = assemble(
                rec["key"],
                rec["image"],
                rec["description"],
                tags,
                detections,
                placeholder,
                ReplayJudge(answers),
                config,
            )
            vqa, samples = vqa_from_recorded(
                rec["key"], rec["image"], rec["raw_qa"], done.objects, config.vqa_rules
            )
            record = {
                "key": rec["key"],
                "image": rec["image"],
                "status": "ok",
                "failure": None,
                "stage1": {"tags": rec["tags"], "drops": [], "repairs": []},
                "refined": [r.to_dict() for r in done.refined],
                "fuse": done.fused,
                "des": done.des.model_dump(mode="json"),
                "vqa": vqa.to_dict(),
                "vqa_samples": [s.model_dump(mode="json") for s in samples],
            }
            record["vqa_index"] = vqa_index(record["vqa_samples"])
            sink.write(json.dumps(record, ensure_ascii=False) + "\n")
    timings["stages3-4 + vqa + audit"] = time.perf_counter() - started
    started = time.perf_counter()
    summary = export_from_audit(audit, out_dir, seed=0, val_fraction=0.05, vqa_limit=PAPER_VQA)
    timings["balance + split + export + stats + histogram"] = time.perf_counter() - started
    return {"timings": timings, "table": summary["table"], "kept_vqa": summary["balanced_vqa_kept"]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=PAPER_DES, help="descriptions (= DES samples)")
    parser.add_argument("--images", type=int, default=PAPER_IMAGES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: a temp folder)")
    parser.add_argument(
        "--phase", choices=["all", "record", "assemble"], default="all", help=argparse.SUPPRESS
    )
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="giqa-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    recorded = work / "recorded.jsonl"
    if args.phase == "record":
        record_phase(recorded, args.records, args.images, args.seed)
        return
    if args.phase == "assemble":
        out = work / "out"
        out.mkdir(exist_ok=True)
        started = time.perf_counter()
        result = assemble_phase(recorded, out)
        result["wall_s"] = time.perf_counter() - started
        usage = resource.getrusage(resource.RUSAGE_SELF)
        result["peak_rss_mb"] = usage.ru_maxrss / 1024
        result["cpu_s"] = usage.ru_utime + usage.ru_stime  # wall time depends on who else shares the cores
        (work / "result.json").write_text(json.dumps(result))
        return

    me = [sys.executable, __file__, "--records", str(args.records), "--images", str(args.images)]
    me += ["--seed", str(args.seed), "--work", str(work)]
    started = time.perf_counter()
    subprocess.run([*me, "--phase", "record"], check=True)
    size_mb = recorded.stat().st_size / 2**20
    print(f"phase 1 (recording {args.records:,} model outputs, not timed against the target): "
          f"{time.perf_counter() - started:.1f} s, {size_mb:.0f} MB")  # fmt: skip
    subprocess.run([*me, "--phase", "assemble"], check=True, env=os.environ | {"PYTHONUNBUFFERED": "1"})
    result = json.loads((work / "result.json").read_text())
    for stage, seconds in result["timings"].items():
        print(f"  {stage}: {seconds:.1f} s")
    row = result["table"][2]
    wall, cpu, rss = result["wall_s"], result["cpu_s"], result["peak_rss_mb"]
    print(f"phase 2 (Stages 3-4, VQA, balancing, export): {wall:.1f} s wall, {cpu:.1f} s CPU, "
          f"peak RSS {rss:.0f} MB  (target <= 60 s, <= 1 GB)")  # fmt: skip
    print(f"load average while it ran: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("| Dataset | Image | Total | DES | VQA (Y) | VQA (W) | Yes | No |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| paper GIQA-160K | {PAPER_IMAGES:,} | {PAPER_DES + PAPER_VQA:,} | {PAPER_DES:,} | "
          f"{PAPER_VQA // 2:,} | {PAPER_VQA // 2:,} | {PAPER_VQA // 4:,} | {PAPER_VQA // 4:,} |")  # fmt: skip
    print(f"| this run | {row['images']:,} | {row['total']:,} | {row['des']:,} | {row['vqa_y']:,} | "
          f"{row['vqa_w']:,} | {row['yes']:,} | {row['no']:,} |")  # fmt: skip
    print(f"outputs in {work / 'out'}")


if __name__ == "__main__":
    main()
