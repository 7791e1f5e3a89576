"""Start-up of the inference service: /health at once, /ready 503 with the reason while the model loads or
after it failed to load, model endpoints 503 meanwhile; the CLI refuses a model path that is no checkpoint."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import typer
from starlette.testclient import TestClient
from typer.testing import CliRunner

from giqa.cli.serve_inference import inference
from giqa.settings import InferenceSettings, Settings
from giqa.wire import ErrorBody
from services.inference.app import create_app_from_settings

pytestmark = pytest.mark.unit


def test_ready_is_503_while_loading_and_says_why_loading_failed() -> None:
    release = threading.Event()

    def slow_then_broken():
        assert release.wait(10)
        raise OSError("weights file is truncated")

    app = create_app_from_settings(Settings(), engine_factory=slow_then_broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/health").status_code == 200
        loading = client.get("/ready")
        assert loading.status_code == 503 and loading.json()["detail"] == "loading the model"
        busy = client.post("/v1/score", json={"image": "AAAA"})
        assert busy.status_code == 503 and busy.headers["retry-after"] == "5"
        assert "not ready (loading the model)" in ErrorBody.model_validate(busy.json()).error.message
        release.set()
        for _ in range(100):
            if app.state.inference.failure:
                break
            threading.Event().wait(0.02)
        failed = client.get("/ready").json()
        assert failed["status"] == "unavailable" and "weights file is truncated" in failed["detail"]


def test_the_cli_refuses_a_model_that_is_no_checkpoint(tmp_path: Path) -> None:
    cli = typer.Typer()
    cli.command()(inference)
    result = CliRunner().invoke(cli, ["--model", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "model path does not exist" in result.output
    bad_backend = CliRunner().invoke(cli, ["--backend", "onnx"])
    assert bad_backend.exit_code == 2 and "invalid settings" in bad_backend.output


def test_settings_refuse_a_url_without_the_vllm_backend() -> None:
    from services.inference.engine import build_engine

    with pytest.raises(ValueError, match="GIQA_INFERENCE__BACKEND=vllm"):
        build_engine(InferenceSettings(model="http://127.0.0.1:1/v1"))
    with pytest.raises(ValueError, match="needs the server's URL"):
        build_engine(InferenceSettings(backend="vllm"))


@pytest.mark.models
def test_requests_over_the_time_limit_get_504_and_leave_the_queue(tmp_path: Path) -> None:
    import concurrent.futures
    import time

    from giqa.settings import ServiceSettings
    from inference_helpers import b64, png_bytes

    settings = Settings(
        data_dir=tmp_path,
        service=ServiceSettings(request_timeout_s=0.4),
        inference=InferenceSettings(max_batch_size=1, batch_wait_ms=0, max_new_tokens=256),
    )
    app = create_app_from_settings(settings)
    body = {"image": b64(png_bytes())}
    with TestClient(app, raise_server_exceptions=False) as client:
        assert app.state.inference.ready.wait(60)
        # 24 at once through a batch of one: the last waits for 23 answers, past 0.4 s however short the
        # demo VLM's answers come out (6 at once passed only while its answers were long)
        with concurrent.futures.ThreadPoolExecutor(24) as pool:
            responses = list(pool.map(lambda _: client.post("/v1/assess", json=body), range(24)))
        timed_out = [r for r in responses if r.status_code == 504]
        assert timed_out and {r.status_code for r in responses} <= {200, 504}
        error = ErrorBody.model_validate(timed_out[0].json()).error
        assert error.code == "timeout" and "service.request_timeout_s" in error.message
        assert app.state.inference.batcher.depth == 0  # the timed-out requests left the queue
        time.sleep(1.5)  # the model call already running finishes; its answer has no one to go to
        assert client.post("/v1/score", json=body).status_code == 200
        calls = client.get("/metrics").text
        assert 'giqa_http_errors_total{code="timeout"}' in calls


def test_a_backend_loaded_before_the_app_is_served_as_is() -> None:
    """``giqa serve``'s convention: ``load_backend(settings)`` first, then the app around it."""
    from PIL import Image

    from giqa.ports import Health
    from services.inference.app import load_backend

    class Scripted:  # a backend with fixed answers: the app's wiring is under test, not a model
        model_name = "scripted"

        def generate(self, items, max_new_tokens):
            return ["The [cat](<0, 399>) is blurry." for _ in items]

        def word_probs(self, items, words):
            return [dict.fromkeys(words, 0.2) for _ in items]

        def top_tokens(self, items, k):
            return [[("good", -0.1)] for _ in items]

        def count_tokens(self, text):
            return len(text.split())

        def health(self):
            return Health(True)

    import io

    buffer = io.BytesIO()
    Image.new("RGB", (20, 10)).save(buffer, format="PNG")
    app = create_app_from_settings(Settings(inference=InferenceSettings(warmup=False)), backend=Scripted())
    with TestClient(app) as client:
        assert app.state.inference.ready.wait(5)
        body = client.post("/v1/assess", files={"image": ("a.png", buffer.getvalue())}).json()
        assert body["model"] == "scripted" and body["objects"][0]["boxes"][0]["pixels"] == [0, 0, 20, 10]
    with pytest.raises(ValueError, match="vllm backend"):
        load_backend(Settings(inference=InferenceSettings(model="http://127.0.0.1:1/v1")))
