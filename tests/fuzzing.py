"""schemathesis driven by hand against an app already running in a TestClient (its lifespan entered once):
cases of every operation of the app's own OpenAPI document, sent through that client, checked for no
5xx and for answers that match the schema the document declares for their status. (schemathesis's pytest
plugin does not run under this suite's importlib mode, and its ASGI transport would enter the app's
lifespan again for every call.)"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def fuzz_openapi(
    client: Any, *, max_examples: int = 25, headers: dict[str, str] | None = None
) -> dict[int, int]:
    """Positive and negative cases, ``max_examples`` per operation; returns the statuses seen (count)."""
    import schemathesis
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance

    schema = schemathesis.openapi.from_dict(client.get("/openapi.json").json())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, "no operation in the OpenAPI document"
    modes = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    statuses: dict[int, int] = {}
    for operation in operations:

        @settings(max_examples=max_examples, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=st.one_of(*(operation.as_strategy(generation_mode=mode) for mode in modes)))
        def call(case: Any) -> None:
            kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
            if not kwargs.get("cookies"):
                kwargs.pop("cookies", None)
            if isinstance(kwargs.get("data"), bytes | str):  # raw bodies go as content (httpx's spelling)
                kwargs["content"] = kwargs.pop("data")
            response = client.request(**kwargs)
            case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        call()
    return statuses
