"""``giqa runs`` against a real annotator over loopback HTTP (uvicorn in a thread, embedded defaults:
SQLite, local folder, eager tasks, scripted backends): submit --watch, list, show, retry, export, and the
one-line errors (a dead annotator exits 3, a refused request 2)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("celery")
uvicorn = pytest.importorskip("uvicorn")

from typer.testing import CliRunner  # noqa: E402

from giqa.backends.classical import ClassicalJudge  # noqa: E402
from giqa.cli import app as cli  # noqa: E402
from giqa.settings import Settings  # noqa: E402
from giqa.synth import SceneRecord, write_scenes  # noqa: E402
from scripted_backends import ScriptedLLM, TruthDetector  # noqa: E402

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def annotator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    from services.annotator.app import create_app_from_settings
    from services.annotator.tasks import WorkerContext

    root = tmp_path_factory.mktemp("cli")
    write_scenes(3, 4, root / "scenes", progress=False)
    records = {
        r.image: r
        for r in map(
            SceneRecord.model_validate_json, (root / "scenes" / "annotations.jsonl").read_text().splitlines()
        )
    }
    settings = Settings(data_dir=root / "data")
    ctx = WorkerContext(
        settings,
        backends={"llm": ScriptedLLM(records), "detector": TruthDetector(records), "judge": ClassicalJudge()},
    )
    config = uvicorn.Config(
        create_app_from_settings(settings, ctx=ctx), host="127.0.0.1", port=0, log_level="error"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    lines = [{"image": image, "description": r.description} for image, r in records.items()]
    lines.append({"image": "images/missing.png", "description": "A blurry cat."})
    (root / "in.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    try:
        yield f"http://127.0.0.1:{port}", root
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_submit_watch_show_list_export_retry(annotator: tuple[str, Path], tmp_path: Path) -> None:
    url, root = annotator
    code, out = run_cli(
        "runs", "submit", "--url", url, "--descriptions", str(root / "in.jsonl"),
        "--images", str(root / "scenes"), "--name", "cli", "--watch",
    )  # fmt: skip
    assert code == 0, out
    assert "4 samples, 3 started, 1 refused at input" in out
    run_id = out.split()[1].rstrip(":")
    assert f"run {run_id} (cli): done" in out and "image not found: images/missing.png" in out

    code, out = run_cli("runs", "show", run_id, "--url", url)
    assert code == 0 and "3 done, 1 failed" in out and "samples/s" in out
    assert out.count("vqa") >= 1 and "stage1" in out
    code, out = run_cli("runs", "show", run_id, "--url", url, "--json")
    assert code == 0 and json.loads(out)["by_state"]["done"] == 3
    code, out = run_cli("runs", "list", "--url", url)
    assert code == 0 and run_id in out and "cli" in out

    code, out = run_cli("runs", "export", run_id, "--url", url, "--out", str(tmp_path / "ds"))
    assert code == 0, out
    train = json.loads((tmp_path / "ds" / "train.json").read_text())
    val = json.loads((tmp_path / "ds" / "val.json").read_text())
    assert sum(r["task"] == "des" for r in train + val) == 3
    assert (tmp_path / "ds" / "box_area.png").read_bytes()[:4] == b"\x89PNG"

    code, out = run_cli("runs", "retry", run_id, "--url", url)
    assert code == 0 and "0 samples retried (nothing to retry)" in out  # bad input stays failed


def test_errors_are_one_line_with_exit_codes(annotator: tuple[str, Path]) -> None:
    url, root = annotator
    code, out = run_cli("runs", "show", "nope", "--url", url)
    assert code == 2 and "HTTP 404" in out and "run nope not found" in out
    code, out = run_cli("runs", "export", "nope", "--url", url, "--out", "x")
    assert code == 2
    code, out = run_cli("runs", "list", "--url", "http://127.0.0.1:9")
    assert code == 3 and "does not answer" in out
    code, out = run_cli("runs", "submit", "--url", url, "--descriptions", str(root / "in.jsonl"))
    assert code == 2 and "--images" in out
