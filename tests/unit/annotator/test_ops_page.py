"""The operator page (``/ops``) and its data (``GET /v1/ops/summary``) on the real annotator app over loopback
HTTP (uvicorn in a thread, embedded defaults: SQLite, local folder, eager tasks, scripted backends), with a
finished run, a run with a failure, a training job and an evaluation in the database. The page is driven in
a real headless Chromium (Playwright, Debian's chromium): the operator key typed in is sent as Bearer, the
runs show their stages as bars and their failures with reasons, the retry button calls the retry endpoint.
Skips where chromium is absent (``scripts/ensure_browser.sh`` installs it)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery")
uvicorn = pytest.importorskip("uvicorn")

import httpx  # noqa: E402

from giqa.backends.classical import ClassicalJudge  # noqa: E402
from giqa.settings import Settings  # noqa: E402
from giqa.synth import SceneRecord, write_scenes  # noqa: E402
from inference_helpers import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from scripted_backends import ScriptedLLM, TruthDetector  # noqa: E402

pytestmark = pytest.mark.unit

KEY = "op-secret-key"


def _submit(url: str, root: Path, lines: list[dict[str, str]], name: str) -> str:
    files: list[tuple[str, tuple[str, bytes, str]]] = [
        ("descriptions", ("in.jsonl", "".join(json.dumps(x) + "\n" for x in lines).encode(), "text/plain"))
    ]
    for image in sorted({x["image"] for x in lines}):
        if (root / image).is_file():
            files.append(("images", (image, (root / image).read_bytes(), "image/png")))
    auth = {"Authorization": f"Bearer {KEY}"}
    answer = httpx.post(f"{url}/v1/runs", files=files, data={"name": name}, headers=auth, timeout=30)
    assert answer.status_code == 201, answer.text
    run_id = answer.json()["run_id"]
    deadline = time.monotonic() + 30
    while httpx.get(f"{url}/v1/runs/{run_id}", headers=auth).json()["state"] != "done":
        assert time.monotonic() < deadline, f"run {name} did not finish"
        time.sleep(0.1)
    return run_id


@pytest.fixture(scope="module")
def annotator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from giqa.infra.db import jobs_dal
    from services.annotator.app import create_app_from_settings
    from services.annotator.tasks import WorkerContext

    root = tmp_path_factory.mktemp("ops")
    write_scenes(3, 5, root / "scenes", progress=False)
    records = {
        r.image: r
        for r in map(
            SceneRecord.model_validate_json, (root / "scenes" / "annotations.jsonl").read_text().splitlines()
        )
    }
    settings = Settings(data_dir=root / "data", service={"operator_keys": [KEY]})
    ctx = WorkerContext(
        settings,
        backends={"llm": ScriptedLLM(records), "detector": TruthDetector(records), "judge": ClassicalJudge()},
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app_from_settings(settings, ctx=ctx), host="127.0.0.1", port=0, log_level="error"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    good = [{"image": image, "description": r.description} for image, r in records.items()]
    clean = _submit(url, root / "scenes", good, "clean-run")
    bad = good[:2] + [{"image": "images/missing.png", "description": "A blurry cat."}]
    flawed = _submit(url, root / "scenes", bad, "flawed-run")
    with ctx.session() as s:
        job = jobs_dal.create_job(
            s,
            name="tiny-finetune",
            launcher="local",
            config={"preset": "tiny"},
            dataset_ref=f"run:{clean}",
            base_model="tiny",
            total_steps=40,
        )
        jobs_dal.claim_job(s, job_id=job)
        jobs_dal.record_progress(s, job_id=job, step=12, loss=1.2345, eta_s=95.0)
        evaluation = jobs_dal.create_evaluation(
            s, name="synth-bench-eval", bench_key="benches/synth.json", model_kind="checkpoint",
            model_ref="tiny-finetune-1", options={},
        )  # fmt: skip
        jobs_dal.finish_evaluation(
            s, eval_id=evaluation, report={"n": 12, "metrics": {"srcc": 0.61, "plcc": 0.66}},
            report_key="evals/r.json", items_key="evals/i.jsonl", chart_key=None, predictions_key=None,
        )  # fmt: skip
    try:
        yield {"url": url, "clean": clean, "flawed": flawed, "job": job, "evaluation": evaluation}
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def test_the_summary_needs_the_operator_key_and_lists_runs_jobs_evaluations(
    annotator: dict[str, Any],
) -> None:
    url = annotator["url"]
    refused = httpx.get(f"{url}/v1/ops/summary")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    body = httpx.get(f"{url}/v1/ops/summary", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert body["stages"] == ["stage1", "detect", "assemble", "vqa"]
    runs = {r["name"]: r for r in body["runs"]}
    assert runs["clean-run"]["by_state"]["done"] == 3 and runs["clean-run"]["failures"] == []
    assert runs["clean-run"]["by_stage"]["vqa"] == 3
    flawed = runs["flawed-run"]
    assert flawed["by_state"] == {"pending": 0, "running": 0, "done": 2, "failed": 1}
    assert [f["stage"] for f in flawed["failures"]] == ["stage1"]
    assert "images/missing.png" in flawed["failures"][0]["reason"]
    (job,) = body["jobs"]
    assert (job["name"], job["state"], job["step"], job["total_steps"]) == (
        "tiny-finetune",
        "running",
        12,
        40,
    )
    (evaluation,) = body["evaluations"]
    assert evaluation["state"] == "succeeded" and evaluation["metrics"]["metrics.srcc"] == pytest.approx(0.61)
    # the page itself is public (it holds no data); the static files come with it
    assert "giqa operators" in httpx.get(f"{url}/ops").text
    assert httpx.get(f"{url}/ops/static/ops.js").status_code == 200


def test_metrics_count_failures_only_for_runs_in_flight(annotator: dict[str, Any]) -> None:
    text = httpx.get(f"{annotator['url']}/metrics").text
    assert 'giqa_run_failures{stage="stage1"} 0.0' in text  # both runs are done: nothing in flight
    assert "giqa_queue_depth" not in text  # eager mode: no broker, no queues


def test_the_operator_page_in_headless_chromium(annotator: dict[str, Any], tmp_path: Path) -> None:
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: run scripts/ensure_browser.sh (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="the playwright package (dev extra) is not installed")
    from playwright.sync_api import sync_playwright

    url = annotator["url"]
    shot = tmp_path / "operator_page.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(url + "/ops")
            # no key yet: the page says why it shows nothing
            page.wait_for_function("document.getElementById('error').textContent.includes('401')")
            page.fill("#key", KEY)
            page.click("#refresh")
            page.wait_for_function("document.querySelectorAll('.run').length === 2")
            assert page.inner_text("#error") == ""
            runs = page.inner_text("#runs")
            assert "clean-run" in runs and "flawed-run" in runs
            assert "stage1: input: image not found: images/missing.png" in runs
            assert "judge" not in runs  # the judge runs inside assemble: no bar of its own
            assert "3 samples · 3 done · 0 failed" in runs
            # the clean run's vqa bar is full; the flawed run's is two thirds
            widths = page.eval_on_selector_all(".run .bar span", "spans => spans.map(s => s.style.width)")
            assert "100%" in widths and "66.7%" in widths, widths
            assert "tiny-finetune" in page.inner_text("#jobs") and "12 / 40" in page.inner_text("#jobs")
            evaluations = page.inner_text("#evaluations")
            assert "synth-bench-eval" in evaluations and "metrics.srcc 0.610" in evaluations
            flawed = page.locator(f".run[data-run='{annotator['flawed']}']")
            assert page.locator(f".run[data-run='{annotator['clean']}'] button.retry").count() == 0
            page.screenshot(path=str(shot), full_page=True)
            flawed.locator("button.retry").click()
            page.wait_for_function("document.getElementById('notice').textContent.startsWith('retried')")
            # an input failure stays failed: the endpoint answered, nothing was sent again
            assert page.inner_text("#notice") == "retried 0 sample(s) of flawed-run"
            assert problems == []
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    out = Path(__file__).resolve().parents[3] / "docs" / "operator_page.png"
    if out.parent.is_dir() and not out.exists():  # the README's picture, made once
        out.write_bytes(shot.read_bytes())
