"""scripts/audit_deps.py: the ignore file needs a reason per id, an unreachable registry skips the audit
with the reason, and a vulnerability pip-audit reports fails it (pip-audit itself is stood in for)."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.unit

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "audit_deps.py"


@pytest.fixture(scope="module")
def audit() -> Any:
    spec = importlib.util.spec_from_file_location("audit_deps", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pip_audit(rc: int, stdout: str = "", stderr: str = "") -> tuple[list[list[str]], Any]:
    calls: list[list[str]] = []

    def run(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        return subprocess.CompletedProcess(command, rc, stdout, stderr)

    return calls, run


def test_ignored_ids_need_a_reason(audit: Any, tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text(
        "# header\n\nPYSEC-2024-1  only the server extra uses it; we never parse untrusted YAML\n"
    )
    assert audit.read_ignores(good) == {
        "PYSEC-2024-1": "only the server extra uses it; we never parse untrusted YAML"
    }
    assert audit.read_ignores(tmp_path / "none.txt") == {}
    for text, words in (("GHSA-xxxx-yyyy\n", "ID  reason"), ("A-1 why\nA-1 again\n", "twice")):
        bad = tmp_path / "bad.txt"
        bad.write_text(text)
        with pytest.raises(ValueError, match=words):
            audit.read_ignores(bad)


def test_an_unreachable_registry_skips_the_audit_with_the_reason(
    audit: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls, run = pip_audit(0)
    rc = audit.main(
        ["--ignore-file", str(tmp_path / "x")], probe=lambda: "pypi.org did not answer: timed out", run=run
    )
    assert rc == 0 and calls == []
    assert "dependency audit skipped: pypi.org did not answer: timed out" in capsys.readouterr().out
    calls, run = pip_audit(1, stderr="requests.exceptions.ConnectionError: Max retries exceeded with url")
    assert audit.main(["--ignore-file", str(tmp_path / "x")], probe=lambda: None, run=run) == 0
    assert "skipped: the registry stopped answering" in capsys.readouterr().out


def test_a_known_vulnerability_fails_unless_ignored_with_a_reason(
    audit: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ignores = tmp_path / "ignore.txt"
    ignores.write_text("GHSA-aaaa-bbbb-cccc  the vulnerable parser is never reached\n")
    found = "Found 1 known vulnerability in 1 package\nName Version ID\njinja2 3.1.0 GHSA-h5c8-rqwp-cp95\n"
    calls, run = pip_audit(1, stdout=found)
    assert audit.main(["--ignore-file", str(ignores)], probe=lambda: None, run=run) == 1
    [command] = calls
    assert command[1:3] == ["-m", "pip_audit"] and "--skip-editable" in command
    assert command[command.index("--vulnerability-service") + 1] == "pypi"
    assert command[command.index("--ignore-vuln") + 1] == "GHSA-aaaa-bbbb-cccc"
    out = capsys.readouterr()
    assert "GHSA-h5c8-rqwp-cp95" in out.out and "dependency audit failed" in out.err
    assert "ignoring GHSA-aaaa-bbbb-cccc: the vulnerable parser is never reached" in out.out
    skipped = (
        "No known vulnerabilities found\nName Skip Reason\n---- ----\ntorch Dependency not found on PyPI and "
    )
    _, run = pip_audit(0, stdout=skipped + "could not be audited: torch (2.13.0+cpu)\n")
    assert audit.main(["--ignore-file", str(ignores)], probe=lambda: None, run=run) == 0
    assert "1 packages not audited (version not on PyPI): torch" in capsys.readouterr().out
    bad = tmp_path / "bad.txt"
    bad.write_text("GHSA-aaaa-bbbb-cccc\n")
    assert audit.main(["--ignore-file", str(bad)], probe=lambda: None, run=run) == 2
