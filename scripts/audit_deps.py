"""Dependency audit: ``pip-audit`` over the installed environment against PyPI's vulnerability data.

Fails (exit 1) on a known vulnerability of an installed package unless its id is listed, with a reason,
in ``audit-ignore.txt`` at the repository root (one ``ID  reason`` a line; ``#`` starts a comment; a line
without a reason is refused, so nothing is ignored silently). The editable ``giqa`` itself is not on PyPI
and is skipped. When PyPI does not answer (an offline machine, a registry proxy that blocks the JSON API)
it prints that the audit was skipped and why and exits 0: the audit needs the registry, the tests do not.
The probe asks for one release's JSON (``/pypi/<name>/<version>/json``, what pip-audit reads for every
package): a mirror that serves the project pages but not those would let every package be skipped as "not
found on PyPI" and the audit pass without having checked anything. Packages skipped that way (a local
build, a version the index does not have) are counted in the last line.

    python scripts/audit_deps.py            # make audit; .ci/run runs it after the tests
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# one release that stays on PyPI, read the way pip-audit's "pypi" service reads every installed package
PROBE_URL = "https://pypi.org/pypi/pip/24.0/json"
NOT_ON_PYPI = re.compile(r"^(\S+)\s+Dependency not found on PyPI", re.MULTILINE)
# what pip-audit (requests) prints when the registry stops answering part-way
UNREACHABLE = re.compile(
    r"ConnectionError|ConnectTimeout|ReadTimeout|Max retries exceeded|Temporary failure in name resolution|"
    r"Name or service not known|Network is unreachable|Connection refused"
)
_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]*$")


def read_ignores(path: Path) -> dict[str, str]:
    """Vulnerability id -> the reason it is ignored; ValueError for a line without a reason or twice."""
    ignores: dict[str, str] = {}
    if not path.is_file():
        return ignores
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        vuln, _, reason = line.partition(" ")
        if not _ID.match(vuln) or not reason.strip():
            raise ValueError(f"{path.name}:{number}: write 'ID  reason' (why it does not apply), got {raw!r}")
        if vuln in ignores:
            raise ValueError(f"{path.name}:{number}: {vuln} is listed twice")
        ignores[vuln] = reason.strip()
    return ignores


def registry_problem(url: str = PROBE_URL, timeout_s: float = 10.0) -> str | None:
    """None when the registry answers; else why not."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:  # noqa: S310 - a fixed https URL
            answer.read(1)
    except urllib.error.HTTPError as exc:
        return f"{url} answered HTTP {exc.code} (the per-release JSON that pip-audit reads is not served)"
    except (urllib.error.URLError, OSError) as exc:
        return f"{url} did not answer: {getattr(exc, 'reason', exc)}"
    return None


def audit_command(ignores: dict[str, str], timeout_s: float) -> list[str]:
    command = [sys.executable, "-m", "pip_audit", "--progress-spinner", "off", "--skip-editable"]
    command += ["--vulnerability-service", "pypi", "--desc", "on", "--timeout", str(int(timeout_s))]
    for vuln in sorted(ignores):
        command += ["--ignore-vuln", vuln]
    return command


def main(
    argv: list[str] | None = None,
    *,
    probe: Callable[[], str | None] = registry_problem,
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ignore-file", type=Path, default=ROOT / "audit-ignore.txt")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per registry request")
    args = parser.parse_args(argv)
    try:
        ignores = read_ignores(args.ignore_file)
    except ValueError as exc:
        print(f"dependency audit: {exc}", file=sys.stderr)
        return 2
    problem = probe()
    if problem is not None:
        print(f"dependency audit skipped: {problem}")
        return 0
    for vuln, reason in sorted(ignores.items()):
        print(f"dependency audit: ignoring {vuln}: {reason}")
    done = run(audit_command(ignores, args.timeout), capture_output=True, text=True, check=False)
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    unaudited = NOT_ON_PYPI.findall(done.stdout)
    if unaudited:
        names = ", ".join(unaudited)
        print(f"dependency audit: {len(unaudited)} packages not audited (version not on PyPI): {names}")
    if done.returncode != 0 and UNREACHABLE.search(done.stderr):
        print("dependency audit skipped: the registry stopped answering during the audit (see above)")
        return 0
    if done.returncode != 0:
        print(
            "dependency audit failed: upgrade the packages named above, or list a vulnerability id with "
            f"the reason it does not apply in {args.ignore_file.name}",
            file=sys.stderr,
        )
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
