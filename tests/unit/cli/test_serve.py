"""``giqa serve``: a bad configuration is one line and exit 2 before any port opens; the service table."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from giqa.cli import app
from giqa.cli.serve import SERVICES, service_module
from giqa.settings import get_settings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("service", "env", "fragment"),
    [
        ("detector", {"GIQA_PIPELINE__DETECTOR_MODEL": "/nonexistent/gdino"}, "no Grounding DINO checkpoint"),
        ("iqa_filter", {"GIQA_PIPELINE__JUDGE_BACKEND": "qinstruct"}, "needs a model"),
    ],
)
def test_bad_configuration_is_one_line(
    service: str, env: dict[str, str], fragment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["serve", service, "--port", "0"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert f"error: cannot start the {service} service" in result.output and fragment in result.output
    assert "Traceback" not in result.output


def test_every_service_in_the_table_has_the_module_protocol() -> None:
    for name in SERVICES:
        module = service_module(name)
        assert callable(module.load_backend) and callable(module.create_app_from_settings)
        assert callable(module.app)  # uvicorn services.<name>.app:app --factory
    assert CliRunner().invoke(app, ["serve", "nope"]).exit_code == 2
