"""``giqa jobs submit``'s config handling without a service: a configs/train YAML loses the fields the job's
options set (said on stderr), ``--set`` values are parsed as YAML, bad input is one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from giqa.cli.jobs import _config_values

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


def test_a_train_config_file_keeps_only_what_a_job_may_set(capsys: pytest.CaptureFixture[str]) -> None:
    values = _config_values(
        ROOT / "configs" / "train" / "tiny.yaml", ["max_steps=20", "lr=0.0005", "lora=true"]
    )
    assert values["max_steps"] == 20 and values["lr"] == 5e-4 and values["lora"] is True
    assert values["text_layers"] == 4  # from the file
    assert not {"data", "output_dir", "base_model", "preset"} & set(values)
    assert "ignored from" in capsys.readouterr().err


def test_bad_config_input_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(typer.Exit):
        _config_values(None, ["max_steps"])
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(typer.Exit):
        _config_values(listed, [])
    with pytest.raises(typer.Exit):
        _config_values(tmp_path / "missing.yaml", [])
