"""The detector and iqa_filter services as real processes (``giqa serve ... --port 0`` under uvicorn) and
their HTTP clients: RemoteDetector/RemoteJudge answer exactly what the in-process backends answer (also when
the work is split over several requests), ``giqa detect/judge --url`` print what the local commands print,
and an annotation run over remote backends writes the same audit as one over in-process backends. The
services stop on SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from giqa.backends.factory import make_detector, make_judge
from giqa.backends.remote import RemoteDetector, RemoteJudge
from giqa.ports import Health
from giqa.settings import PipelineSettings
from processes import giqa_cli, kill_parent, listening_port, spawn, wait_ready

pytestmark = pytest.mark.models

PIPELINE = PipelineSettings(box_threshold=0.1, text_threshold=0.05, device="cpu")
SERVICE_ENV = {
    "GIQA_PIPELINE__BOX_THRESHOLD": "0.1",
    "GIQA_PIPELINE__TEXT_THRESHOLD": "0.05",
    "GIQA_PIPELINE__DEVICE": "cpu",
    "OMP_NUM_THREADS": "1",
}


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    logs = tmp_path_factory.mktemp("service_logs")
    started: dict[str, subprocess.Popen[bytes]] = {}
    urls: dict[str, str] = {}
    try:
        for name in ("detector", "iqa_filter"):
            started[name] = spawn(
                giqa_cli("serve", name, "--port", "0", "--log-level", "warning"), logs, name, env=SERVICE_ENV
            )
        for name, process in started.items():
            urls[name] = f"http://127.0.0.1:{listening_port(process)}"
            wait_ready(urls[name], process)
        yield {"urls": urls, "processes": started, "logs": logs}
    finally:
        for process in started.values():
            kill_parent(process)


@pytest.fixture(scope="module")
def local() -> dict[str, Any]:
    return {"detector": make_detector(PIPELINE), "judge": make_judge(PIPELINE)}


def assert_close(got: list[list[list[Any]]], want: list[list[list[Any]]]) -> None:
    assert [[[d.label for d in f] for f in item] for item in got] == [
        [[d.label for d in f] for f in item] for item in want
    ]
    for item_got, item_want in zip(got, want, strict=True):
        for found_got, found_want in zip(item_got, item_want, strict=True):
            for a, b in zip(found_got, found_want, strict=True):
                assert a.box.as_tuple() == pytest.approx(b.box.as_tuple(), abs=1e-4)
                assert a.score == pytest.approx(b.score, abs=1e-4)


def test_remote_backends_answer_as_in_process(
    services: dict[str, Any], local: dict[str, Any], scenes: Any
) -> None:
    urls = services["urls"]
    phrases = [[t.phrase for t in r.tags] + ["red square"] for r in scenes.records]
    want = local["detector"].detect_batch(scenes.images, phrases)
    assert sum(len(found) for item in want for found in item) > 0
    with (
        RemoteDetector(urls["detector"]) as one_request,
        RemoteDetector(urls["detector"], batch_size=1) as split,
    ):
        assert one_request.health().ok
        assert one_request.detect_batch(scenes.images, phrases) == want
        # one image per request: the model's forward batches differ, so floats agree to 1e-4, as the
        # in-process detector's batched and one-by-one answers do (tests/models/test_gdino.py)
        assert_close(split.detect_batch(scenes.images, phrases), want)
        assert split.detect(scenes.images[0], phrases[0]) == local["detector"].detect(
            scenes.images[0], phrases[0]
        )
    items = scenes.judge_items()
    want_j = local["judge"].judge_batch(items)
    with (
        RemoteJudge(urls["iqa_filter"]) as one_request,
        RemoteJudge(urls["iqa_filter"], batch_size=3) as split,
    ):
        assert one_request.judge_batch(items) == want_j
        assert split.judge_batch(items) == want_j
        assert split.judge(*items[0]) == want_j[0]


def test_cli_url_options_print_what_the_local_commands_print(
    services: dict[str, Any], scenes: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from giqa.cli import app
    from giqa.settings import get_settings

    for key, value in SERVICE_ENV.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        image = str(scenes.root / scenes.records[0].image)
        phrases = [a for t in scenes.records[0].tags for a in ("--phrase", t.phrase)]
        runner = CliRunner()
        here = runner.invoke(app, ["detect", "--image", image, *phrases])
        there = runner.invoke(
            app, ["detect", "--image", image, *phrases, "--url", services["urls"]["detector"]]
        )
        assert here.exit_code == 0 and there.exit_code == 0, there.output
        assert json.loads(here.stdout)["phrases"] == json.loads(there.stdout)["phrases"]
        box = [str(v) for v in scenes.records[0].objects[0].box]
        args = ["judge", "--image", image, "--box", *box, "--quality", "blurry"]
        judged_here = json.loads(runner.invoke(app, args).stdout)
        judged_there = json.loads(runner.invoke(app, [*args, "--url", services["urls"]["iqa_filter"]]).stdout)
        assert judged_here["p_yes"] == judged_there["p_yes"] and judged_there["backend"].startswith(
            "classical at"
        )
        # a service that does not answer: one line, exit 3
        monkeypatch.setenv("GIQA_PIPELINE__REMOTE_MAX_RETRIES", "0")
        get_settings.cache_clear()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
        down = runner.invoke(app, [*args, "--url", closed])
        assert down.exit_code == 3 and "error: the iqa_filter service at" in down.output
        assert "Traceback" not in down.output
    finally:
        get_settings.cache_clear()


class ScriptedStage1:
    """An LLM that answers Stage 1 with each scene's true tags of the asked sentence and one VQA question
    (the model roles under test here are the detector and the judge; the LLM only has to be the same)."""

    model_name = "scripted"

    def __init__(self, records: Sequence[Any]) -> None:
        self.records = list(records)

    def health(self) -> Health:
        return Health(True)

    def chat(self, messages: Sequence[dict[str, Any]], **_: Any) -> str:
        return ""

    def chat_json(self, messages: Sequence[dict[str, Any]], schema: dict[str, Any], **_: Any) -> Any:
        text = messages[-1]["content"].removeprefix("Description: ").split("\n")[0]
        record = next(r for r in self.records if text in r.description)
        if schema["title"] == "quality_tags":
            return {"tags": [t.model_dump() for t in record.tags if t.phrase.lower() in text.lower()]}
        first = record.tags[0]
        return {
            "qa": [{"type": "yes_no", "question": f"Is the {first.phrase} {first.quality}?", "answer": "No"}]
        }


def test_annotation_over_remote_backends_writes_the_same_audit(
    services: dict[str, Any], local: dict[str, Any], scenes: Any, tmp_path: Path
) -> None:
    from giqa.pipeline.inputs import read_inputs
    from giqa.pipeline.run import AnnotateConfig, Backends, run_annotation

    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text(
        "".join(json.dumps({"image": r.image, "description": r.description}) + "\n" for r in scenes.records)
    )
    urls = services["urls"]
    audits = {}
    for kind, detector, judge in (
        ("local", local["detector"], local["judge"]),
        ("remote", RemoteDetector(urls["detector"]), RemoteJudge(urls["iqa_filter"])),
    ):
        backends = Backends(llm=ScriptedStage1(scenes.records), detector=detector, judge=judge)
        out = tmp_path / kind
        counts = run_annotation(
            read_inputs(inputs, scenes.root), scenes.root, out, backends, AnnotateConfig(), progress=False
        )
        assert counts["processed"] == 3 and counts["failed"] == 0
        audits[kind] = [json.loads(line) for line in (out / "audit.jsonl").read_text().splitlines()]
        for record in audits[kind]:
            record.pop("timings")
    assert audits["remote"] == audits["local"]
    assert any(r["refined"] and any(t["merged"] for t in r["refined"]) for r in audits["local"])


def test_a_service_that_is_down_fails_samples_retryably_and_resume_redoes_them(
    services: dict[str, Any], local: dict[str, Any], scenes: Any, tmp_path: Path
) -> None:
    from giqa.pipeline.inputs import read_inputs
    from giqa.pipeline.run import AnnotateConfig, Backends, run_annotation

    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text(
        "".join(json.dumps({"image": r.image, "description": r.description}) + "\n" for r in scenes.records)
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    out = tmp_path / "run"

    def run(detector: Any, resume: bool) -> dict[str, int]:
        backends = Backends(llm=ScriptedStage1(scenes.records), detector=detector, judge=local["judge"])
        return run_annotation(
            read_inputs(inputs, scenes.root),
            scenes.root,
            out,
            backends,
            AnnotateConfig(),
            resume=resume,
            progress=False,
        )

    assert run(RemoteDetector(closed, max_retries=0), resume=False)["failed"] == 3
    failures = [json.loads(line)["failure"] for line in (out / "audit.jsonl").read_text().splitlines()]
    assert all(f["stage"] == "stages2-4" and f["retryable"] for f in failures)
    assert "RemoteBackendError" in failures[0]["reason"]
    again = run(RemoteDetector(services["urls"]["detector"]), resume=True)
    assert again["processed"] == 3 and again["failed"] == 0


def test_a_service_stops_on_sigterm(services: dict[str, Any]) -> None:
    process = services["processes"]["iqa_filter"]
    process.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal it caught: the exit status is -SIGTERM
    assert process.wait(timeout=15) in (0, -signal.SIGTERM)
    assert "Traceback" not in (services["logs"] / "iqa_filter.err").read_text()
