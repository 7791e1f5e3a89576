"""scripts/settings_table.py: the GIQA_* variable table generated from the settings models."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, Field, SecretStr

from deploy_checks import ROOT, check_env_name
from giqa.settings import Settings

pytestmark = pytest.mark.unit

SCRIPT = ROOT / "scripts" / "settings_table.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("settings_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Inner(BaseModel):
    url: str | None = Field(None, description="where | it is")
    key: SecretStr | None = Field(None, description="a secret")
    mode: Literal["a", "b"] = Field("a", description="which")


class Outer(BaseModel):
    inner: Inner = Field(default_factory=Inner)
    names: list[str] = Field(default_factory=list)
    path: Path = Field(Path("data"), description="a folder")


def test_rows_flatten_sections_the_way_the_environment_names_them(script):
    rows = {variable: (kind, default, text) for variable, kind, default, text in script.rows(Outer)}
    assert rows == {
        "GIQA_INNER__URL": ("str \\| None", "unset", "where \\| it is"),
        "GIQA_INNER__KEY": ("secret \\| None", "unset", "a secret"),
        "GIQA_INNER__MODE": ("a \\| b", "`a`", "which"),
        "GIQA_NAMES": ("list[str]", "`[]`", ""),
        "GIQA_PATH": ("Path", "`data`", "a folder"),
    }


def test_every_row_of_the_real_settings_is_a_variable_the_settings_read(script):
    variables = [row[0] for row in script.rows(Settings)]
    assert len(variables) == len(set(variables)) > 40
    for variable in variables:
        assert check_env_name(variable).status == "ok", variable


def test_the_table_replaces_only_the_text_between_the_markers(script):
    document = f"# Title\n\nbefore\n{script.BEGIN}\nold table\n{script.END}\nafter\n"
    updated = script.replace_table(document, "| new |\n")
    assert updated == f"# Title\n\nbefore\n{script.BEGIN}\n| new |\n{script.END}\nafter\n"
    assert script.replace_table(updated, "| new |\n") == updated
    with pytest.raises(ValueError, match="markers are missing"):
        script.replace_table("no markers here", "| new |\n")


def test_write_then_check_round_trip(tmp_path):
    doc = tmp_path / "deploy.md"
    doc.write_text(
        "x\n<!-- settings-table:begin (scripts/settings_table.py --write) -->\n<!-- settings-table:end -->\n"
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60
        )

    stale = run("--check", str(doc))
    assert stale.returncode == 1 and "stale" in stale.stderr
    assert run("--write", str(doc)).returncode == 0
    assert "| `GIQA_PIPELINE__DETECTOR_MODEL` |" in doc.read_text()
    assert run("--check", str(doc)).returncode == 0
    missing = run("--check", str(tmp_path / "absent.md"))
    assert missing.returncode == 2 and "absent.md" in missing.stderr
