"""The annotate orchestrator and export on GIQA-Synth scenes, with scripted model ports.

The orchestrator, validation, Stages 3–4, VQA grounding, balancing and export are the real code; only the
model roles are stand-ins: an LLM that answers each scene's ground-truth tags (or fails on cue) and a
detector that returns the scene's true boxes plus a jittered copy.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from giqa.grounded_text import parse, strip_coordinates
from giqa.pipeline.export import export_from_audit
from giqa.pipeline.inputs import read_inputs
from giqa.pipeline.run import AnnotateConfig, Backends, read_done, run_annotation
from giqa.ports import Detection
from giqa.schemas import LlavaRecord, Sample
from giqa.synth import SceneRecord, write_scenes
from scripted_backends import ScriptedLLM, TruthDetector

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, SceneRecord]]:
    root = tmp_path_factory.mktemp("scenes")
    annotations = write_scenes(6, 5, root, progress=False)
    records = {}
    for line in annotations.read_text().splitlines():
        record = SceneRecord.model_validate_json(line)
        records[record.image] = record
    return root, records


def write_inputs(path: Path, world: tuple[Path, dict[str, SceneRecord]], extra: list[dict[str, Any]]) -> Path:
    root, records = world
    lines = [{"image": image, "description": r.description} for image, r in records.items()] + extra
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def run(out: Path, world: tuple[Path, dict[str, SceneRecord]], inputs: Path, **kwargs: Any) -> dict[str, int]:
    root, records = world
    backends = Backends(llm=ScriptedLLM(records), detector=TruthDetector(records), judge=None)
    return run_annotation(
        read_inputs(inputs, root), root, out, backends, AnnotateConfig(), progress=False, **kwargs
    )


def test_run_export_and_audit(tmp_path: Path, world: tuple[Path, dict[str, SceneRecord]]) -> None:
    root, records = world
    corrupt = root / "images" / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    first = next(iter(records.values()))
    extra = [
        {"image": "images/corrupt.png", "description": first.description},
        {"image": first.image, "description": ""},
        {"image": "images/missing.png", "description": first.description},
        {"image": first.image, "description": first.description + " The GARBAGE circle is blurry."},
    ]
    counts = run(tmp_path / "out", world, write_inputs(tmp_path / "in.jsonl", world, extra))
    assert counts == {"processed": 10, "skipped": 0, "failed": 4}
    audit = [json.loads(line) for line in (tmp_path / "out" / "audit.jsonl").read_text().splitlines()]
    failures = {
        f"{r['failure']['stage']}: {r['failure']['reason'].split(':')[0]}" for r in audit if r["failure"]
    }
    assert failures == {
        f"input: cannot read {corrupt} as an image (corrupt or truncated)",
        "input: in.jsonl line 8",
        "input: image not found",
        "stage1: LLMOutputError",
    }

    summary = export_from_audit(tmp_path / "out" / "audit.jsonl", tmp_path / "out", val_fraction=0.34)
    train = json.loads((tmp_path / "out" / "train.json").read_text())
    val = json.loads((tmp_path / "out" / "val.json").read_text())
    for record in train + val:
        LlavaRecord.model_validate(record)
    assert {r["image"] for r in train}.isdisjoint({r["image"] for r in val})
    assert (tmp_path / "out" / "box_area.png").read_bytes()[:4] == b"\x89PNG"
    all_row = summary["table"][2]
    assert all_row["des"] == 6 and all_row["total"] == len(train) + len(val)
    assert all_row["yes"] == all_row["no"] and all_row["vqa_w"] == all_row["vqa_y"] > 0

    for record in (r for r in audit if r["status"] == "ok"):
        des = Sample.model_validate(record["des"])
        truth = records[record["image"]]
        assert strip_coordinates(des.answer) == truth.description  # Stage 4's invariant
        assert [m.phrase for m in parse(des.answer)] == [
            p["phrase"] for p in sorted(record["fuse"]["placed"], key=lambda p: p["span"][0])
        ]
        assert len(record["stage1"]["tags"]) == len(truth.tags)
        for refined in record["refined"]:
            assert len(refined["raw"]) == 2 and len(refined["merged"]) == 1 and refined["merges"]
        assert record["timings"].keys() >= {"load", "stage1", "stage2", "stage3_4", "vqa"}
        yes_no = [i for i in record["vqa"]["items"] if i["source"] == "llm"]
        assert yes_no and yes_no[0]["answer"] == "Yes." and yes_no[0]["corrected"]  # "No" was wrong


def test_resume_skips_done_samples_and_retries_transient_failures(
    tmp_path: Path, world: tuple[Path, dict[str, SceneRecord]]
) -> None:
    first = next(iter(world[1].values()))
    inputs = write_inputs(
        tmp_path / "in.jsonl",
        world,
        # the cue sits inside the clause: Stage 1 asks clause by clause
        [{"image": first.image, "description": "The red circle is DOWN and blurry."}],
    )
    out = tmp_path / "out"
    assert run(out, world, inputs, limit=3) == {"processed": 3, "skipped": 0, "failed": 0}
    with pytest.raises(FileExistsError, match="--resume"):
        run(out, world, inputs)
    with (out / "audit.jsonl").open("a") as handle:
        handle.write('{"key": "torn')  # a crash mid-write
    assert run(out, world, inputs, resume=True) == {"processed": 4, "skipped": 3, "failed": 1}
    # the unavailable-LLM failure is retryable: a second resume tries it again, the rest is skipped
    assert len(read_done(out / "audit.jsonl")) == 6
    assert run(out, world, inputs, resume=True) == {"processed": 1, "skipped": 6, "failed": 1}
    lines = (out / "audit.jsonl").read_text().splitlines()
    assert len(lines) == 8 and all(json.loads(line) for line in lines)


def test_vqa_failure_keeps_des_and_falls_back_to_templates(
    tmp_path: Path, world: tuple[Path, dict[str, SceneRecord]]
) -> None:
    root, records = world
    image, record = next(iter(records.items()))
    changed = record.model_copy(update={"description": record.description + " VQAFAIL"})
    patched = {image: changed}
    inputs = tmp_path / "in.jsonl"
    inputs.write_text(json.dumps({"image": image, "description": changed.description}) + "\n")
    backends = Backends(llm=ScriptedLLM(patched), detector=TruthDetector(patched), judge=None)
    run_annotation(
        read_inputs(inputs, root), root, tmp_path / "out", backends, AnnotateConfig(), progress=False
    )
    (line,) = (tmp_path / "out" / "audit.jsonl").read_text().splitlines()
    audit = json.loads(line)
    assert audit["status"] == "ok" and audit["vqa_failure"].startswith("LLMOutputError")
    assert audit["des"] and {i["source"] for i in audit["vqa"]["items"]} == {"template"}


def test_every_description_of_one_image_is_annotated_and_resume_finds_them(
    tmp_path: Path, world: tuple[Path, dict[str, SceneRecord]]
) -> None:
    root, records = world
    (image, first), (_, second) = list(records.items())[:2]

    def record(text: str) -> dict[str, Any]:  # Q-Instruct-style: the id names the image, not the text
        turns = [{"from": "human", "value": "<image>\nRate it."}, {"from": "gpt", "value": text}]
        return {"id": "img-1", "image": image, "conversations": turns}

    inputs = tmp_path / "in.json"
    inputs.write_text(
        json.dumps([record(first.description), record(second.description), record(first.description)])
    )
    out = tmp_path / "out"
    assert run(out, world, inputs) == {"processed": 2, "skipped": 1, "failed": 0}  # the exact repeat is done
    audit = [json.loads(line) for line in (out / "audit.jsonl").read_text().splitlines()]
    assert [a["status"] for a in audit] == ["ok", "ok"]
    assert audit[0]["key"] == "img-1" and audit[1]["key"].startswith("img-1-")
    assert [a["description"] for a in audit] == [first.description, second.description]
    assert run(out, world, inputs, resume=True) == {"processed": 0, "skipped": 3, "failed": 0}


def test_image_paths_outside_the_images_folder_are_never_opened(
    tmp_path: Path, world: tuple[Path, dict[str, SceneRecord]]
) -> None:
    root, records = world
    image, record = next(iter(records.items()))
    outside = root.parent / "outside.png"
    outside.write_bytes((root / image).read_bytes())  # a readable image: only the path check stops it
    rows = [
        {"image": "../outside.png", "description": record.description},
        {"image": str(outside), "description": record.description},
        {"image": "images/../../outside.png", "description": record.description},
    ]
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert run(tmp_path / "out", world, inputs) == {"processed": 3, "skipped": 0, "failed": 3}
    audit = [json.loads(line) for line in (tmp_path / "out" / "audit.jsonl").read_text().splitlines()]
    reasons = [a["failure"]["reason"] for a in audit]
    assert all(("leads outside" in r or "is absolute" in r) and a["failure"]["stage"] == "input"
               for r, a in zip(reasons, audit, strict=True)), reasons  # fmt: skip


def test_stages_one_at_a_time_through_json_give_the_embedded_record(
    world: tuple[Path, dict[str, SceneRecord]],
) -> None:
    """The annotation platform runs each stage as a task and keeps its payload in a database column
    between them: stage by stage with a JSON round trip in between must give annotate_image's record."""
    from giqa.backends.classical import ClassicalJudge
    from giqa.backends.images import decode_image
    from giqa.pipeline import stages

    root, records = world
    config = AnnotateConfig()
    judge = ClassicalJudge()
    for image_ref, truth in records.items():
        backends = Backends(llm=ScriptedLLM(records), detector=TruthDetector(records), judge=judge)
        image = decode_image((root / image_ref).read_bytes(), where=image_ref)
        key = f"k-{image_ref}"
        whole = stages.annotate_image(key, image, image_ref, truth.description, backends, config)

        def through_json(payload: dict[str, Any]) -> dict[str, Any]:
            return json.loads(json.dumps(payload))

        s1 = through_json(stages.run_stage1(backends.llm, truth.description, config))
        det = through_json(stages.run_detect(backends.detector, image, stages.phrases_of(s1)))
        asm = through_json(
            stages.run_assemble(key, image_ref, truth.description, s1, det, image, judge, config)
        )
        vqa = through_json(stages.run_vqa(backends.llm, key, image_ref, truth.description, asm, config))
        payloads = {"stage1": s1, "detect": det, "assemble": asm, "vqa": vqa}
        piecewise = stages.build_record(key, image_ref, truth.description, payloads)
        whole.pop("timings"), piecewise.pop("timings")
        assert json.dumps(piecewise) == json.dumps(whole)
        assert any(any(j is not None for j in r["judgements"]) for r in whole["refined"])  # judge ran


def test_a_stage_failure_is_recorded_under_the_audit_stage_names(
    world: tuple[Path, dict[str, SceneRecord]],
) -> None:
    from giqa.backends.images import decode_image
    from giqa.pipeline import stages

    class BrokenDetector(TruthDetector):
        def detect(self, image: Image.Image, phrases: Sequence[str]) -> list[list[Detection]]:
            raise RuntimeError("CUDA error: device-side assert")

    root, records = world
    image_ref, truth = next(iter(records.items()))
    image = decode_image((root / image_ref).read_bytes())
    llm = ScriptedLLM(records)
    backends = Backends(llm=llm, detector=BrokenDetector(records), judge=None)
    record = stages.annotate_image("k", image, image_ref, truth.description, backends, AnnotateConfig())
    assert record["failure"] == {
        "stage": "stages2-4",
        "reason": "RuntimeError: CUDA error: device-side assert",
        "retryable": False,
    }
    assert record["stage1"]["tags"] and "des" not in record
    down = stages.annotate_image(
        "k2", image, image_ref, truth.description + " The DOWN circle is blurry.", backends, AnnotateConfig()
    )
    assert down["failure"]["stage"] == "stage1" and down["failure"]["retryable"] is True
