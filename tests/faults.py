"""Fault injection for the platform tests: a Redis server of the test's own (to restart it), a flaky HTTP
proxy standing in front of a remote service (to make it answer 500 or hang for a while), and Postgres
backend termination limited to one database.

The shared Redis on 6379 is never touched: a test that restarts its broker starts ``redis-server`` on a
free port without persistence (a restart loses every queued message, the worst case) and stops it at the
end.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from giqa.llm.server import free_port
from http_servers import JoinedHTTPServer


class RedisServer:
    """``redis-server`` on a free loopback port, no persistence; :meth:`restart` keeps the port."""

    def __init__(self, log_dir: Path) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            pytest.skip("redis-server is not installed (apt-get install redis-server)")
        self.executable = executable
        self.port = free_port()
        self.log_dir = log_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        argv = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--daemonize", "no"]
        with (self.log_dir / f"redis-{self.port}.log").open("ab") as log:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self.wait_up()
        return self

    def wait_up(self, timeout_s: float = 20.0) -> None:
        import redis

        deadline = time.monotonic() + timeout_s
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, "redis-server exited"
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise AssertionError(f"redis-server on {self.port} did not answer within {timeout_s:.0f} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # no graceful save: what is in memory is lost, as in a crash
            self.process.wait(timeout=10)
        self.process = None

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()
        self.restarts += 1


HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "content-encoding"}


class FlakyProxy:
    """An HTTP proxy in front of a service: ``mode`` ``pass`` forwards, ``500`` answers a server error in the
    service's error shape, ``hang`` waits ``hang_s`` before answering 500 (a client with a shorter timeout
    sees a time-out). ``seen`` counts requests by mode."""

    def __init__(self, target: str, hang_s: float = 5.0) -> None:
        import httpx

        self.target = target.rstrip("/")
        self.mode = "pass"
        self.hang_s = hang_s
        self.seen: dict[str, int] = {}
        self.lock = threading.Lock()
        client = httpx.Client(timeout=120.0, headers={"accept-encoding": "identity"})
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def send(self, status: int, body: bytes, kind: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def forward(self, method: str) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with proxy.lock:
                    mode = proxy.mode
                    proxy.seen[mode] = proxy.seen.get(mode, 0) + 1
                if mode in ("500", "hang"):
                    if mode == "hang":
                        time.sleep(proxy.hang_s)
                    error = b'{"error": {"code": "internal", "message": "injected fault", "request_id": ""}}'
                    self.send(500, b"" if method == "HEAD" else error)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                answer = client.request(method, proxy.target + self.path, content=data, headers=headers)
                self.send_response(answer.status_code)
                for name, value in answer.headers.multi_items():
                    if name.lower() not in HOP_BY_HOP:
                        self.send_header(name, value)
                body = answer.content
                length = answer.headers.get("content-length") if method == "HEAD" else None
                self.send_header("Content-Length", length or str(len(body)))
                self.end_headers()
                if method != "HEAD":
                    self.wfile.write(body)

            def do_GET(self) -> None:
                self.forward("GET")

            def do_POST(self) -> None:
                self.forward("POST")

            def do_PUT(self) -> None:
                self.forward("PUT")

            def do_HEAD(self) -> None:
                self.forward("HEAD")

            def do_DELETE(self) -> None:
                self.forward("DELETE")

        self.server = JoinedHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self._client = client

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._client.close()


def terminate_backends(database: str) -> int:
    """``pg_terminate_backend`` every connection to ``database`` but this one; how many it ended. Only the
    named database: other sessions' databases on the shared server are left alone."""
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname=database, autocommit=True) as c:
        rows = c.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    return sum(1 for (ended,) in rows if ended)
