"""Fixtures of the inference-service tests (a folder of their own, so other services' fixtures stay apart):
the real app on the shipped demo VLM, in-process and loaded once per session, and the real service as a
uvicorn subprocess."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from inference_helpers import API_KEY, Served, serve, stop


@pytest.fixture(scope="session")
def inference_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A TestClient on the real app (demo VLM), keys required, small limits so the bad inputs are cheap."""
    from pydantic import SecretStr
    from starlette.testclient import TestClient

    from giqa.settings import InferenceSettings, ServiceSettings, Settings
    from services.inference.app import create_app_from_settings

    settings = Settings(
        data_dir=tmp_path_factory.mktemp("inference-data"),  # the embedded object store's folder
        service=ServiceSettings(api_keys=[SecretStr(API_KEY)], max_body_bytes=2 * 1024 * 1024),
        inference=InferenceSettings(max_image_pixels=4_000_000, max_new_tokens=96, batch_wait_ms=5),
    )
    app = create_app_from_settings(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert app.state.inference.ready.wait(60), app.state.inference.health()
        client.headers["Authorization"] = f"Bearer {API_KEY}"
        yield client


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The service as a uvicorn subprocess (demo VLM, key required, batches of 4, a queue of 4 so that 16
    concurrent requests overflow it)."""
    tmp = tmp_path_factory.mktemp("served")
    service = serve(
        tmp,
        "--max-batch-size", "4",
        "--queue-size", "4",
        env={"GIQA_SERVICE__API_KEYS": f'["{API_KEY}"]', "GIQA_DATA_DIR": str(tmp / "data")},
    )  # fmt: skip
    try:
        yield service
    finally:
        stop(service)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal: -15 is its clean exit
    log = service.log.read_text()
    assert service.process.returncode in (0, -15) and "Traceback" not in log, log[-2000:]
