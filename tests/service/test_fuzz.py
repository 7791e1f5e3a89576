"""Fuzzing the services: schemathesis generates requests from each service's own OpenAPI document (the
detector, iqa_filter and annotator apps, in process, their lifespans run), and hypothesis posts arbitrary
JSON to the JSON endpoints. No request may get a 5xx, and every answer must match the response schema the
document declares for its status (the one error shape included). Bounded: 25 examples per operation.

Found by it: the request schemas allow bodies the models refuse (an item with both ``image`` and
``image_key``, or neither: JSON Schema as FastAPI writes it has no "exactly one of"), which get a 422 in
the one error shape, as documented.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from bad_inputs import CorpusLLM, RedSquareDetector
from fuzzing import fuzz_openapi
from giqa.settings import Settings

schemathesis = pytest.importorskip("schemathesis")

pytestmark = pytest.mark.unit

FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.filter_too_much,
    ],
)


def _apps(tmp: Path) -> dict[str, Any]:
    from giqa.backends.classical import ClassicalJudge
    from services.annotator.app import create_app_from_settings as annotator_app
    from services.annotator.tasks import WorkerContext
    from services.detector.app import create_app_from_settings as detector_app
    from services.iqa_filter.app import create_app_from_settings as judge_app

    conf = Settings(data_dir=tmp / "data", queue={"retry_backoff_s": 0.001, "retry_backoff_max_s": 0.001})
    ctx = WorkerContext(
        conf, backends={"llm": CorpusLLM(), "detector": RedSquareDetector(), "judge": ClassicalJudge()}
    )
    return {
        "detector": detector_app(conf, backend=RedSquareDetector()),  # type: ignore[arg-type]
        "iqa_filter": judge_app(conf, backend=ClassicalJudge()),
        "annotator": annotator_app(conf, ctx=ctx),
    }


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, TestClient]]:
    """Each app with its lifespan entered (the annotator migrates its SQLite and installs its context)."""
    clients = {
        name: TestClient(app, raise_server_exceptions=False)
        for name, app in _apps(tmp_path_factory.mktemp("fuzz")).items()
    }
    for client in clients.values():
        client.__enter__()
    yield clients
    for client in clients.values():
        client.__exit__(None, None, None)


@pytest.mark.parametrize("service", ["detector", "iqa_filter", "annotator"])
def test_every_operation_of_the_openapi_document(apps: dict[str, TestClient], service: str) -> None:
    """schemathesis's cases for each operation (:func:`fuzzing.fuzz_openapi`): no 5xx, responses that
    match the declared schemas."""
    statuses = fuzz_openapi(apps[service])
    assert statuses and all(code < 500 for code in statuses), statuses


# ----------------------------------------------------------------------------- arbitrary JSON (hypothesis)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
# near-valid bodies: the right field names with values of any type
near_detect = st.fixed_dictionaries(
    {
        "items": st.lists(
            st.fixed_dictionaries(
                {}, optional={"image": json_values, "image_key": json_values, "phrases": json_values}
            ),
            max_size=3,
        )
    },
    optional={"box_threshold": json_values, "text_threshold": json_values},
)
near_judge = st.fixed_dictionaries(
    {
        "items": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "image_index": json_values,
                    "box": json_values,
                    "quality": json_values,
                    "image": json_values,
                },
            ),
            max_size=3,
        )
    },
    optional={"images": json_values},
)
near_run = st.fixed_dictionaries(
    {},
    optional={
        "name": json_values,
        "images_prefix": json_values,
        "descriptions_key": json_values,
        "form": json_values,
    },
)


@pytest.mark.parametrize(
    ("service", "path", "near"),
    [
        ("detector", "/v1/detect", near_detect),
        ("iqa_filter", "/v1/judge", near_judge),
        ("annotator", "/v1/runs", near_run),
    ],
)
def test_arbitrary_json_never_gets_a_server_error(
    apps: dict[str, TestClient], service: str, path: str, near: Any
) -> None:
    client = apps[service]

    @FUZZ
    @given(body=json_values | near)
    def post(body: Any) -> None:
        response = client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
        assert response.status_code < 500, (body, response.text[:300])
        if response.status_code >= 400:
            assert set(response.json()) == {"error"}, response.text[:300]

    post()


@settings(max_examples=300, deadline=None)
@given(body=json_values | near_detect | near_judge | near_run)
def test_the_request_models_refuse_anything_with_a_validation_error_only(body: Any) -> None:
    """The wire models themselves (what every service and client validates with): arbitrary JSON is
    accepted or refused with pydantic's ValidationError — never another exception, which would be a 500."""
    from pydantic import ValidationError

    from giqa.wire import DetectRequest, JudgeRequest
    from services.annotator.app import RunFromStore

    for model in (DetectRequest, JudgeRequest, RunFromStore):
        for validate in (model.model_validate, model.model_validate_json):
            try:
                validate(body if validate is model.model_validate else json.dumps(body))
            except ValidationError:
                pass
