"""schemathesis against the inference service's OpenAPI document (the real app on the demo VLM, in
process, keys required; :func:`fuzzing.fuzz_openapi`): positive and negative cases, 25 per operation; no
5xx, every answer matches the schema the document declares for its status."""

from __future__ import annotations

from typing import Any

import pytest

from fuzzing import fuzz_openapi

pytest.importorskip("schemathesis")

pytestmark = pytest.mark.models


def test_every_operation_of_the_inference_openapi_document(inference_client: Any) -> None:
    statuses = fuzz_openapi(inference_client)  # the client sends the API key with every request
    assert statuses and all(code < 500 for code in statuses), statuses
