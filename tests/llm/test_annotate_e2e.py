"""``giqa annotate`` end to end: the real embedded LLM (SmolLM2-135M on llama.cpp), a real tiny Grounding
DINO built from configs, the classical judge, on GIQA-Synth scenes plus broken inputs; then ``--resume``.

The first run starts its own embedded server (no LLM URL) and must stop it; the resumed run talks to the
session's server through ``--llm-url``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from giqa.grounded_text import strip_coordinates
from giqa.schemas import LlavaRecord, Sample

pytestmark = pytest.mark.llm


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("transformers")
    from giqa.models.tiny_gdino import build_tiny_grounding_dino
    from giqa.synth import write_scenes

    root = tmp_path_factory.mktemp("annotate")
    annotations = write_scenes(2, 21, root / "data", progress=False)
    # 128 px: at 64 px a single (image, phrase) batch hits a 1x1 feature map that GroupNorm refuses
    detector = build_tiny_grounding_dino(root / "gdino", image_size=128)
    corrupt = root / "data" / "images" / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    lines = [json.loads(line) for line in annotations.read_text().splitlines()]
    inputs = [{"image": r["image"], "description": r["description"]} for r in lines]
    inputs += [
        {"image": "images/corrupt.png", "description": lines[0]["description"]},
        {"image": lines[1]["image"], "description": "  "},
    ]
    descriptions = root / "descriptions.jsonl"
    descriptions.write_text("".join(json.dumps(x) + "\n" for x in inputs))
    return {"root": root, "images": root / "data", "descriptions": descriptions, "detector": detector}


def giqa(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = (
        os.environ
        | {
            "HF_HUB_OFFLINE": "1",
            # the tiny detector's weights are random: thresholds at 0 so every tag gets boxes to refine
            "GIQA_PIPELINE__BOX_THRESHOLD": "0",
            "GIQA_PIPELINE__TEXT_THRESHOLD": "0",
            "GIQA_PIPELINE__MAX_DETECTIONS": "3",
            "GIQA_LLM__DIALECT": "json_object",
        }
        | (env or {})
    )
    environment.pop("GIQA_LLM__URL", None)
    command = [sys.executable, "-c", "from giqa.cli import main; main()", *args]
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=400)


def test_annotate_then_resume(workspace: dict[str, Path], llm_server) -> None:
    out = workspace["root"] / "out"
    common = ["--images", str(workspace["images"]), "--descriptions", str(workspace["descriptions"])]
    common += ["--out", str(out), "--detector", str(workspace["detector"]), "--judge", "classical"]

    first = giqa("annotate", *common, "--limit", "1")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "starting the embedded SmolLM2-135M server" in first.stderr
    assert "annotated 1 samples (0 failed, 0 skipped as done)" in first.stdout
    assert len((out / "audit.jsonl").read_text().splitlines()) == 1

    again = giqa("annotate", *common)
    assert again.returncode == 2 and "--resume" in again.stderr  # an earlier run is never overwritten

    second = giqa("annotate", *common, "--resume", "--llm-url", llm_server.url)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "annotated 3 samples (2 failed, 1 skipped as done)" in second.stdout
    assert "starting the embedded" not in second.stderr

    audit = [json.loads(line) for line in (out / "audit.jsonl").read_text().splitlines()]
    assert len(audit) == 4 and len({r["key"] for r in audit}) == 4
    failures = {r["image"]: r["failure"]["reason"] for r in audit if r["status"] != "ok"}
    assert (
        failures["images/corrupt.png"].startswith("cannot read")
        and "as an image" in failures["images/corrupt.png"]
    )
    assert [reason for image, reason in failures.items() if image != "images/corrupt.png"] == [
        "descriptions.jsonl line 4: empty description"
    ]

    ok = [r for r in audit if r["status"] == "ok"]
    assert len(ok) == 2
    for record in ok:
        des = Sample.model_validate(record["des"])
        assert strip_coordinates(des.answer) == record["description"]
        assert record["meta"]["llm"] in ("smollm2", "default") and record["meta"]["tags_prompt"]
        for refined in record["refined"]:
            for judged in refined["judgements"]:  # the classical judge's probabilities are recorded
                assert judged is None or 0.0 <= judged["p_yes"] <= 1.0
        for tag in record["stage1"]["tags"]:
            assert tag["phrase"] in record["description"] and tag["effect"] != "no impact"

    train = json.loads((out / "train.json").read_text())
    val = json.loads((out / "val.json").read_text())
    assert train or val
    for item in train + val:
        LlavaRecord.model_validate(item)
    assert {i["image"] for i in train}.isdisjoint({i["image"] for i in val})
    assert (out / "box_area.png").read_bytes()[:4] == b"\x89PNG"
    stats = json.loads((out / "stats.json").read_text())
    assert stats["report"]["counts"]["samples"] == 4 and stats["report"]["counts"]["failed"] == 2
    assert "| all |" in (out / "stats.md").read_text()


def test_tags_command_prints_validated_tags(llm_server) -> None:
    description = (
        "The red circle is blurry, while the blue square is sharp. Overall, the image quality is fair."
    )
    done = giqa("tags", "--description", description, "--llm-url", llm_server.url)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert set(result) == {"tags", "drops", "repairs", "raw"}
    for tag in result["tags"]:
        assert tag["phrase"] in description and tag["quality"] in description


def test_annotate_refuses_a_missing_detector_folder(workspace: dict[str, Path]) -> None:
    # with nothing configured the shipped demo detector serves (tests/models/test_train_detector.py);
    # a configured folder that is not there is a clear error, never a silent fallback
    missing = workspace["root"] / "no-such-gdino"
    done = giqa(
        "annotate",
        "--images",
        str(workspace["images"]),
        "--out",
        str(workspace["root"] / "x"),
        env={"GIQA_PIPELINE__DETECTOR_MODEL": str(missing)},
    )
    assert done.returncode == 2 and "no Grounding DINO checkpoint" in done.stderr


def test_dead_llm_url_is_refused_up_front() -> None:
    from giqa.llm.server import free_port

    dead = f"http://127.0.0.1:{free_port()}/v1"
    done = giqa("tags", "--description", "The red circle is blurry.", "--llm-url", dead)
    assert done.returncode == 3 and "does not answer" in done.stderr  # 3: a server that is down
