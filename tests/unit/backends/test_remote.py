"""The HTTP clients of the detector and iqa_filter services (giqa.backends.remote) against a small real HTTP
server on loopback that answers as scripted: retries with backoff on 503/5xx/time-outs/refused connections
(Retry-After honoured), no retry on 4xx, contract checks, request splitting, keys; and the factory's choice
between remote and in-process."""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from PIL import Image
from pydantic import SecretStr, ValidationError

from giqa.backends.errors import RemoteBackendError
from giqa.backends.factory import JudgeConfigError, make_detector, make_judge
from giqa.backends.remote import RemoteDetector, RemoteJudge, _chunks, retry_after_s
from giqa.boxes import Box
from giqa.ports import Detection, Judgement
from giqa.settings import PipelineSettings
from http_servers import JoinedHTTPServer

pytestmark = pytest.mark.unit

Reply = tuple[int, dict[str, str], bytes]


class Scripted:
    """A loopback HTTP server; ``answer(method, path, body, headers) -> (status, headers, body)``."""

    def __init__(self, answer: Callable[[str, str, Any, dict[str, str]], Reply]) -> None:
        self.requests: list[tuple[str, str, Any, dict[str, str]]] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, method: str) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                headers = {k.lower(): v for k, v in self.headers.items()}
                scripted.requests.append((method, self.path, body, headers))
                status, extra, content = answer(method, self.path, body, headers)
                self.send_response(status)
                for key, value in ({"content-type": "application/json"} | extra).items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def do_GET(self) -> None:  # noqa: N802
                self._reply("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._reply("POST")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = JoinedHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[..., Reply]], Scripted]]:
    started: list[Scripted] = []

    def start(answer: Callable[..., Reply]) -> Scripted:
        started.append(Scripted(answer))
        return started[-1]

    yield start
    for server in started:
        server.close()


def ok_judge(body: Any) -> bytes:
    results = [
        {"p_yes": 0.25, "abstained": False, "reason": "", "detail": {"index": item["image_index"]}}
        for item in body["items"]
    ]
    return json.dumps({"results": results, "model": "classical", "seconds": 0.01}).encode()


def error_body(code: str, message: str) -> bytes:
    return json.dumps(
        {"error": {"code": code, "message": message, "detail": None, "request_id": "r"}}
    ).encode()


IMAGE = Image.new("RGB", (16, 12), (10, 200, 30))
BOX = Box(0.1, 0.1, 0.9, 0.9)


def test_503_then_200_is_retried_honouring_retry_after(serve: Any) -> None:
    calls = iter([(503, {"retry-after": "0"}, error_body("overloaded", "busy")), None])

    def answer(method: str, path: str, body: Any, headers: Any) -> Reply:
        scripted = next(calls)
        return scripted if scripted else (200, {}, ok_judge(body))

    server = serve(answer)
    judge = RemoteJudge(server.url, max_retries=2, backoff_s=5.0)  # Retry-After 0 beats the 5 s backoff
    started = time.perf_counter()
    assert judge.judge(IMAGE, BOX, "blurry") == Judgement(0.25, False, {"index": 0}, "")
    assert time.perf_counter() - started < 2.0
    assert [r[1] for r in server.requests] == ["/v1/judge", "/v1/judge"]


def test_4xx_is_not_retried_and_says_what_the_service_said(serve: Any) -> None:
    server = serve(lambda *a: (400, {}, error_body("invalid_image", "items[0].image is empty (0 bytes)")))
    with pytest.raises(RemoteBackendError) as caught:
        RemoteJudge(server.url, max_retries=3, backoff_s=0.01).judge(IMAGE, BOX, "blurry")
    assert not caught.value.retryable and caught.value.status == 400 and caught.value.code == "invalid_image"
    assert "is empty (0 bytes)" in str(caught.value)
    assert len(server.requests) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_5xx_and_429_are_retried_then_retryable(serve: Any, status: int) -> None:
    server = serve(lambda *a: (status, {}, b"plain text, not the error shape"))
    with pytest.raises(RemoteBackendError) as caught:
        RemoteJudge(server.url, max_retries=2, backoff_s=0.01).judge(IMAGE, BOX, "blurry")
    assert caught.value.retryable and f"HTTP {status}" in str(caught.value)
    assert len(server.requests) == 3


def test_refused_connection_and_timeouts_are_retryable(serve: Any) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(RemoteBackendError) as refused:
        RemoteDetector(f"http://127.0.0.1:{port}", max_retries=1, backoff_s=0.01).detect(IMAGE, ["a cat"])
    assert refused.value.retryable and "ConnectError" in str(refused.value)

    def slow(method: str, path: str, body: Any, headers: Any) -> Reply:
        time.sleep(0.5)
        return 200, {}, ok_judge(body)

    server = serve(slow)
    with pytest.raises(RemoteBackendError) as timed_out:
        RemoteJudge(server.url, timeout_s=0.1, max_retries=1, backoff_s=0.01).judge(IMAGE, BOX, "blurry")
    assert timed_out.value.retryable and "Timeout" in str(timed_out.value)
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b'{"results": [], "model": "m", "seconds": 0}',
        b'{"results": [{"p_yes": 2}], "model": "m"}',
    ],
)
def test_an_answer_that_is_not_the_contract_is_not_retried(serve: Any, content: bytes) -> None:
    server = serve(lambda *a: (200, {}, content))
    with pytest.raises(RemoteBackendError) as caught:
        RemoteJudge(server.url, max_retries=3, backoff_s=0.01).judge(IMAGE, BOX, "blurry")
    assert not caught.value.retryable and len(server.requests) == 1


def test_judge_sends_each_image_once_per_request_and_splits(serve: Any) -> None:
    server = serve(lambda m, p, body, h: (200, {}, ok_judge(body)))
    other = Image.new("RGB", (8, 8), (1, 2, 3))
    items = [
        (IMAGE, BOX, "blurry"),
        (IMAGE, BOX, "noisy"),
        (other, BOX, "dark"),
        (IMAGE, BOX, "sharp"),
        (other, BOX, "x"),
    ]
    judge = RemoteJudge(server.url, api_key="secret-key", batch_size=2)
    answers = judge.judge_batch(items)
    assert len(answers) == 5
    bodies = [r[2] for r in server.requests]
    assert [len(b["items"]) for b in bodies] == [2, 2, 1]
    assert [len(b["images"]) for b in bodies] == [1, 2, 1]  # one image sent once for its two boxes
    assert [a.detail["index"] for a in answers] == [0, 0, 0, 1, 0]  # request 2 sends (other, IMAGE)
    decoded = Image.open(io.BytesIO(base64.b64decode(bodies[0]["images"][0])))
    assert decoded.format == "PNG" and decoded.tobytes() == IMAGE.tobytes()  # lossless
    assert all(r[3]["authorization"] == "Bearer secret-key" for r in server.requests)
    assert judge.name == "classical at " + server.url


def test_detector_splits_by_images_and_phrases_and_sends_thresholds(serve: Any) -> None:
    def answer(method: str, path: str, body: Any, headers: Any) -> Reply:
        results = [
            [[{"box": [0, 0, 0.5, 0.5], "score": 0.5, "label": p}] for p in item["phrases"]]
            for item in body["items"]
        ]
        return 200, {}, json.dumps({"results": results, "model": "gdino", "seconds": 0.1}).encode()

    server = serve(answer)
    detector = RemoteDetector(server.url, batch_size=2, box_threshold=0.2)
    phrases = [["a"], [f"p{k}" for k in range(40)], ["b", "c"]]  # 40 > MAX_PHRASES: two items
    out = detector.detect_batch([IMAGE, IMAGE, IMAGE], phrases)
    assert [[d[0].label for d in per] for per in out] == phrases
    assert out[0][0][0] == Detection(Box(0, 0, 0.5, 0.5), 0.5, "a")
    bodies = [r[2] for r in server.requests]
    assert [[len(i["phrases"]) for i in b["items"]] for b in bodies] == [[1, 32], [8, 2]]
    assert all(b["box_threshold"] == 0.2 and "text_threshold" not in b for b in bodies)
    assert detector.detect_batch([IMAGE], [[]]) == [[]]  # nothing to ask: no request
    assert len(server.requests) == 2
    with pytest.raises(ValueError, match="empty phrase"):
        detector.detect(IMAGE, ["  ."])
    assert detector.model_path == f"gdino at {server.url}"


def test_health_reads_ready(serve: Any) -> None:
    state = {"status": 503}
    server = serve(
        lambda *a: (
            state["status"],
            {},
            json.dumps({"status": "x", "service": "detector", "detail": "loading"}).encode(),
        )
    )
    detector = RemoteDetector(server.url)
    assert not detector.health().ok and "loading" in detector.health().detail
    state["status"] = 200
    assert detector.health().ok
    server.close()
    assert not detector.health().ok and "unreachable" in detector.health().detail
    server.close = lambda: None  # type: ignore[method-assign]


def test_retry_after_forms() -> None:
    assert retry_after_s("3") == 3.0
    assert retry_after_s(None) is None and retry_after_s("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (retry_after_s(later) or 0) <= 31


@pytest.mark.parametrize(
    ("sizes", "count", "limit", "want"),
    [
        ([], 2, 10, []),
        ([1, 1, 1], 2, 10, [[0, 1], [2]]),
        ([6, 6, 6], 5, 10, [[0], [1], [2]]),
        ([20, 1, 1], 5, 10, [[0], [1, 2]]),  # one member over the limit goes alone
    ],
)
def test_chunks(sizes: list[int], count: int, limit: int, want: list[list[int]]) -> None:
    assert [list(r) for r in _chunks(sizes, count, limit)] == want


def test_factory_picks_remote_or_local() -> None:
    cfg = PipelineSettings(judge_url="http://127.0.0.1:9/", services_api_key=SecretStr("k"))
    judge = make_judge(cfg)
    assert isinstance(judge, RemoteJudge) and judge.url == "http://127.0.0.1:9"
    assert type(make_judge(cfg, backend="classical")).__name__ == "ClassicalJudge"  # explicit beats settings
    assert isinstance(make_detector(PipelineSettings(), url="http://127.0.0.1:9"), RemoteDetector)
    remote = make_detector(PipelineSettings(detector_url="https://det.example:8443"), box_threshold=0.3)
    assert isinstance(remote, RemoteDetector) and remote.box_threshold == 0.3
    from pathlib import Path

    with pytest.raises(JudgeConfigError, match="not both"):
        make_detector(PipelineSettings(), url="http://127.0.0.1:9", model=Path("x"))
    with pytest.raises(JudgeConfigError, match="not both"):
        make_judge(PipelineSettings(), url="http://127.0.0.1:9", backend="classical")
    with pytest.raises(ValidationError, match="is not an http"):
        PipelineSettings(detector_url="ftp://host/x")


def test_annotate_refuses_a_service_that_does_not_answer_before_starting_anything(tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from giqa.cli import app

    IMAGE.save(tmp_path / "a.png")
    (tmp_path / "in.jsonl").write_text(json.dumps({"image": "a.png", "description": "A blurry cat."}) + "\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    common = ["annotate", "--images", str(tmp_path), "--descriptions", str(tmp_path / "in.jsonl")]
    runner = CliRunner()
    urls = ["--detector-url", closed, "--judge-url", closed]  # both remote: no model loads here
    down = runner.invoke(app, [*common, "--out", str(tmp_path / "o1"), *urls])
    assert down.exit_code == 3 and "detector service at" in down.output and "unreachable" in down.output
    assert not (tmp_path / "o1" / "audit.jsonl").exists()
    both = runner.invoke(
        app, [*common, "--out", str(tmp_path / "o2"), "--detector-url", closed, "--detector", str(tmp_path)]
    )
    assert both.exit_code == 2 and "not both" in both.output
    bad = runner.invoke(app, [*common, "--out", str(tmp_path / "o3"), "--detector-url", "ftp://x"])
    assert bad.exit_code == 2 and "--detector-url" in bad.output
