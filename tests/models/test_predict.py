"""``giqa predict`` end to end: a tiny LLaVA through transformers, a real local OpenAI-compatible vision
server, resuming, and the refusals; then ``giqa eval`` on what the tiny model wrote."""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from giqa.cli import app
from giqa.predict.runner import PredictError, run_predictions
from http_servers import JoinedHTTPServer

pytestmark = pytest.mark.models

runner = CliRunner()


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_tiny_llava_predict_then_eval(tiny_llava: Path, bench_slice: Path, tmp_path: Path) -> None:
    out = tmp_path / "pred.jsonl"
    args = ["predict", "--bench", str(bench_slice), "--model", str(tiny_llava), "--out", str(out)]
    result = runner.invoke(app, [*args, "--batch-size", "5", "--max-new-tokens", "12", "--quiet"])
    assert result.exit_code == 0, result.output
    preds = lines(out)
    bench_ids = [json.loads(line)["id"] for line in bench_slice.read_text().splitlines()]
    assert [p["id"] for p in preds] == bench_ids
    assert all(isinstance(p["response"], str) for p in preds)
    report_path = tmp_path / "report.json"
    result = runner.invoke(
        app,
        [
            "eval",
            "--bench",
            str(bench_slice),
            "--predictions",
            str(out),
            "--out",
            str(report_path),
            "--no-judge",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    assert report["counts"]["missing_predictions"] == 0 and report["counts"]["bench_items"] == 12
    assert 0.0 <= report["des"]["bleu4"] <= 100.0 and 0.0 <= report["vqa"]["acc_y"] <= 1.0
    assert "GIQA-DES" in result.output and "N/A" in result.output


def test_resume_answers_only_the_rest_and_drops_a_torn_line(
    tiny_llava: Path, bench_slice: Path, tmp_path: Path
) -> None:
    from giqa.predict.local import TransformersVLM

    vlm = TransformersVLM(tiny_llava)
    out = tmp_path / "pred.jsonl"
    first = run_predictions(bench_slice, vlm, out, batch_size=2, max_new_tokens=4, limit=5, progress=False)
    assert (first.answered, first.already_done) == (5, 0)
    with out.open("a") as handle:
        handle.write('{"id": "half a li')  # a crash mid-write
    with pytest.raises(PredictError, match="--resume"):
        run_predictions(bench_slice, vlm, out, max_new_tokens=4, progress=False)
    second = run_predictions(
        bench_slice, vlm, out, batch_size=4, max_new_tokens=4, resume=True, progress=False
    )
    assert (second.answered, second.already_done, second.total) == (7, 5, 12)
    ids = [p["id"] for p in lines(out)]
    assert len(ids) == 12 == len(set(ids))


def test_a_missing_model_path_is_refused_clearly(bench_slice: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "predict",
            "--bench",
            str(bench_slice),
            "--model",
            str(tmp_path / "nope"),
            "--out",
            str(tmp_path / "p"),
        ],
    )
    assert result.exit_code == 2
    assert "model path does not exist" in result.output
    (tmp_path / "notllava").mkdir()
    (tmp_path / "notllava" / "config.json").write_text('{"model_type": "bert"}')
    result = runner.invoke(
        app,
        [
            "predict",
            "--bench",
            str(bench_slice),
            "--model",
            str(tmp_path / "notllava"),
            "--out",
            str(tmp_path / "p"),
        ],
    )
    assert result.exit_code == 2 and "not supported" in result.output


def test_missing_images_are_refused_before_any_work(
    bench_slice: Path, tmp_path: Path, tiny_llava: Path
) -> None:
    rows = lines(bench_slice)
    rows[3]["image"] = "missing.png"
    bench = tmp_path / "b.jsonl"
    bench.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = runner.invoke(
        app, ["predict", "--bench", str(bench), "--model", str(tiny_llava), "--out", str(tmp_path / "p")]
    )
    assert result.exit_code == 2 and "not found" in result.output
    assert not (tmp_path / "p").exists()


def test_an_unreadable_image_stops_cleanly_and_resume_goes_on(
    tiny_llava: Path, bench_slice: Path, tmp_path: Path
) -> None:
    rows = lines(bench_slice)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    rows[2]["image"] = str(broken)
    bench = tmp_path / "b.jsonl"
    bench.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "p.jsonl"
    args = [
        "predict",
        "--bench",
        str(bench),
        "--model",
        str(tiny_llava),
        "--out",
        str(out),
        "--batch-size",
        "2",
    ]
    result = runner.invoke(app, [*args, "--max-new-tokens", "2", "--quiet"])
    assert result.exit_code == 2 and f"cannot read the image of {rows[2]['id']}" in result.output
    assert len(lines(out)) == 2  # the first batch is kept
    rows[2]["image"] = rows[1]["image"]
    bench.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = runner.invoke(app, [*args, "--max-new-tokens", "2", "--quiet", "--resume"])
    assert result.exit_code == 0 and "10 answered, 2 already" in result.output


# ------------------------------------------------------------------- a real OpenAI-compatible vision server


class _VisionHandler(BaseHTTPRequestHandler):
    """/v1/models and /v1/chat/completions: answers with what it saw, so the test checks the request."""

    seen: list[dict[str, Any]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/v1/models":
            self._json(
                200, {"object": "list", "data": [{"id": "llava-hf/llava-1.5-7b-hf", "object": "model"}]}
            )
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _VisionHandler.seen.append(body)
        parts = body["messages"][0]["content"]
        url = next(p["image_url"]["url"] for p in parts if p["type"] == "image_url")
        text = next(p["text"] for p in parts if p["type"] == "text")
        header, b64 = url.split(",", 1)
        with Image.open(io.BytesIO(base64.b64decode(b64))) as img:
            size = f"{img.width}x{img.height}"
        answer = f"Yes. The [object](<0, 399>) is {size}; asked {len(text)} chars"
        self._json(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}]})


@pytest.fixture()
def vision_server() -> Iterator[str]:
    _VisionHandler.seen = []
    server = JoinedHTTPServer(("127.0.0.1", 0), _VisionHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_openai_vision_endpoint(vision_server: str, bench_slice: Path, tmp_path: Path) -> None:
    out = tmp_path / "pred.jsonl"
    result = runner.invoke(
        app,
        ["predict", "--bench", str(bench_slice), "--model", vision_server, "--out", str(out), "--limit", "3",
         "--max-new-tokens", "40", "--concurrency", "2", "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "llava-hf/llava-1.5-7b-hf" in result.output
    preds = lines(out)
    assert len(preds) == 3 and all(
        p["response"].startswith("Yes. The [object](<0, 399>) is 64x64") for p in preds
    )
    sent = _VisionHandler.seen[0]
    assert (
        sent["model"] == "llava-hf/llava-1.5-7b-hf"
        and sent["temperature"] == 0.0
        and sent["max_tokens"] == 40
    )
    assert sent["messages"][0]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    question = json.loads(bench_slice.read_text().splitlines()[0])["question"]
    assert preds[0]["response"].endswith(f"asked {len(question)} chars")


def test_an_unreachable_endpoint_is_a_clear_error(bench_slice: Path, tmp_path: Path) -> None:
    from giqa.llm.server import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    result = runner.invoke(
        app, ["predict", "--bench", str(bench_slice), "--model", url, "--out", str(tmp_path / "p")]
    )
    assert result.exit_code == 3 and "cannot list models" in result.output
    assert not (tmp_path / "p").exists(), "nothing is written when the endpoint is down"
