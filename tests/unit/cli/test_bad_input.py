"""The bad-input corpus: every ``giqa`` command met with bad files, bad paths, bad URLs and dead servers.

Each row sets up a working folder, runs one command and asserts what a user must see: the exit code (2 bad
input or usage, 3 a server that does not answer), a short ``error: ...`` message with no traceback, and the
folder exactly as it was (no 0-byte output, no stray temporary file, no ``./data`` cache), with no child
process left. Rows run in-process (typer's CliRunner); a few run as real subprocesses to see the real
stderr and exit status. Nothing here starts the embedded LLM server: the dead server is a free local port.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from giqa.cli import app
from giqa.llm.server import free_port
from giqa.settings import get_settings

pytestmark = pytest.mark.unit

DEAD_URL = f"http://127.0.0.1:{free_port()}/v1"  # nobody listens there
PNG_BYTES = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
BENCH_ITEMS = [
    {"id": "d1", "task": "des", "mode": "grounding", "image": "images/a.png", "question": "Rate the quality.",
     "answer": "The [cat](<0.10, 0.10, 0.50, 0.50>) is blurry.",
     "objects": [{"phrase": "cat", "box": [0.1, 0.1, 0.5, 0.5]}]},
    {"id": "y1", "task": "vqa", "qtype": "yes_no", "mode": "none", "image": "images/a.png",
     "question": "Is the image noisy?", "answer": "No."},
]  # fmt: skip


# ------------------------------------------------------------------------------------- setup pieces


def _jsonl(rows: list[dict[str, object]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def bench(root: Path, rows: list[dict[str, object]] | None = None, raw: bytes | None = None) -> None:
    (root / "b" / "images").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 32), (90, 120, 150)).save(root / "b" / "images" / "a.png")
    (root / "b" / "bench.jsonl").write_bytes(raw if raw is not None else _jsonl(rows or BENCH_ITEMS))


def preds(root: Path, raw: bytes) -> None:
    (root / "p.jsonl").write_bytes(raw)


def good_inputs(root: Path) -> None:
    bench(root)
    preds(root, _jsonl([{"id": "d1", "response": "The cat is blurry."}, {"id": "y1", "response": "No."}]))


def read_only(root: Path) -> None:
    (root / "ro").mkdir()
    (root / "ro").chmod(0o555)


def file_at(name: str, data: bytes = b"keep me") -> Callable[[Path], None]:
    def make(root: Path) -> None:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)

    return make


def folder_at(name: str) -> Callable[[Path], None]:
    return lambda root: (root / name).mkdir(parents=True)


def scenes(root: Path, edit: Callable[[str], str] | None = None) -> None:
    from giqa.synth.config import SynthConfig
    from giqa.synth.writer import write_scenes

    write_scenes(
        1, 0, root / "s", SynthConfig(width=48, height=48, min_objects=1, max_objects=2), progress=False
    )
    if edit:
        path = root / "s" / "annotations.jsonl"
        path.write_text(edit(path.read_text()))


def _all(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    def run(root: Path) -> None:
        for step in steps:
            step(root)

    return run


@dataclass(frozen=True)
class Case:
    name: str
    args: list[str]
    setup: Callable[[Path], None] = field(default=lambda root: None)
    code: int = 2
    message: str = ""
    env: dict[str, str] = field(default_factory=dict)


E = ["eval", "--bench", "b/bench.jsonl", "--predictions", "p.jsonl", "--quiet"]
P = ["predict", "--bench", "b/bench.jsonl", "--quiet", "--model"]
ANN = ["annotate", "--images", "b/images", "--out", "run"]

CASES = [
    # ---------------------------------------------------------------- synth
    Case(
        "scenes-out-is-file",
        ["synth", "scenes", "--n", "1", "--out", "x"],
        file_at("x"),
        2,
        "not a directory",
    ),
    Case(
        "scenes-out-not-empty",
        ["synth", "scenes", "--n", "1", "--out", "old"],
        file_at("old/llava.json"),
        2,
        "not empty: pass --overwrite",
    ),
    Case("scenes-n-zero", ["synth", "scenes", "--n", "0", "--out", "x"], code=2, message="--n"),
    Case(
        "scenes-overwrite-the-current-folder",
        ["synth", "scenes", "--n", "1", "--out", ".", "--overwrite"],
        file_at("keep.txt"),
        2,
        "holds the current folder",
    ),
    Case(
        "bench-out-not-empty", ["synth", "bench", "--out", "old"], file_at("old/bench.jsonl"), 2, "not empty"
    ),
    Case(
        "export-no-folder",
        ["synth", "export", "nowhere", "--out", "x.json"],
        code=2,
        message="not a directory",
    ),
    Case(
        "export-not-utf8",
        ["synth", "export", "s", "--out", "x.json"],
        file_at("s/annotations.jsonl", b"\xff\xfe{"),
        2,
        "not UTF-8",
    ),
    Case(
        "export-out-is-folder",
        ["synth", "export", "s", "--out", "o"],
        _all(scenes, folder_at("o")),
        2,
        "is a folder",
    ),
    Case(
        "preview-image-outside",
        ["synth", "preview", "s", "--out", "p.html"],
        lambda r: scenes(r, lambda t: t.replace('"images/', '"../../images/')),
        2,
        "leads outside",
    ),
    Case(
        "preview-out-read-only",
        ["synth", "preview", "s", "--out", "ro/p.html"],
        _all(scenes, read_only),
        2,
        "not writable",
    ),
    Case(
        "preview-out-in-sysfs",
        ["synth", "preview", "s", "--out", "/sys/giqa-p.html"],
        scenes,
        2,
        "not writable",
    ),
    # ---------------------------------------------------------------- annotate / tags
    Case(
        "annotate-configured-detector-missing",
        [*ANN, "--descriptions", "d.jsonl"],
        lambda root: (
            bench(root),
            file_at("d.jsonl", b'{"image": "a.png", "description": "The cat is blurry."}\n')(root),
        ),
        2,
        "no Grounding DINO checkpoint",
        env={"GIQA_PIPELINE__DETECTOR_MODEL": "no-such-gdino"},
    ),
    Case(
        "annotate-llm-url-not-url",
        [*ANN, "--llm-url", "localhost:8080/v1"],
        code=2,
        message="--llm-url: 'localhost:8080/v1' is not an http(s) URL",
    ),
    Case(
        "annotate-empty-descriptions",
        [*ANN, "--descriptions", "d.jsonl", "--detector", "gd"],
        _all(bench, file_at("d.jsonl", b"\n\n")),
        2,
        "no (image, description) pairs",
    ),
    Case(
        "annotate-bom-only-descriptions",
        [*ANN, "--descriptions", "d.jsonl", "--detector", "gd"],
        _all(bench, file_at("d.jsonl", b"\xef\xbb\xbf\n")),
        2,
        "no (image, description) pairs",
    ),
    Case(
        "annotate-missing-descriptions",
        [*ANN, "--descriptions", "nope.jsonl", "--detector", "gd"],
        bench,
        2,
        "descriptions file not found",
    ),
    Case(
        "annotate-out-is-file",
        [*ANN, "--descriptions", "d.jsonl", "--detector", "gd"],
        _all(bench, file_at("run"), file_at("d.jsonl", b'{"image": "a.png", "description": "Blurry."}\n')),
        2,
        "not a folder",
    ),
    Case(
        "tags-llm-url-not-url",
        ["tags", "--description", "A blurry cat.", "--llm-url", "ftp://x/v1"],
        code=2,
        message="not an http(s) URL",
    ),
    Case(
        "tags-llm-url-bad-port",
        ["tags", "--description", "A blurry cat.", "--llm-url", "http://h:99999/v1"],
        code=2,
        message="--llm-url",
    ),
    Case(
        "tags-dead-server",
        ["tags", "--description", "A blurry cat.", "--llm-url", DEAD_URL],
        code=3,
        message="does not answer",
    ),
    Case(
        "tags-bad-url-in-settings",
        ["tags", "--description", "A blurry cat."],
        code=2,
        message="invalid settings: GIQA_LLM__URL: Value error, 'notaurl' is not an http(s) URL",
        env={"GIQA_LLM__URL": "notaurl"},
    ),
    Case(
        "eval-bad-settings",
        [*E, "--out", "r.json"],
        good_inputs,
        2,
        "GIQA_EVAL__JUDGE_CONCURRENCY",
        env={"GIQA_EVAL__JUDGE_CONCURRENCY": "0"},
    ),
    Case("tags-empty", ["tags", "--description", "  ", "--llm-url", DEAD_URL], code=2, message="empty"),
    # ---------------------------------------------------------------- detect / judge
    Case(
        "detect-configured-model-missing",
        ["detect", "--image", "b/images/a.png", "--phrase", "cat"],
        bench,
        2,
        "no Grounding DINO checkpoint",
        env={"GIQA_PIPELINE__DETECTOR_MODEL": "no-such-gdino"},
    ),
    Case(
        "detect-missing-image",
        ["detect", "--image", "no.png", "--phrase", "cat", "--model", "gd"],
        code=2,
        message="not found",
    ),
    Case(
        "judge-bad-box",
        ["judge", "--image", "b/images/a.png", "--box", "0.5", "0.5", "0.1", "0.1", "--quality", "blurry"],
        bench,
        2,
        "bad --box",
    ),
    Case(
        "judge-corrupt-image",
        ["judge", "--image", "x.png", "--box", "0", "0", "1", "1", "--quality", "blurry"],
        file_at("x.png", PNG_BYTES),
        2,
        "x.png",
    ),
    # ---------------------------------------------------------------- predict
    Case(
        "predict-dead-endpoint",
        [*P, DEAD_URL, "--served-model", "m", "--out", "o.jsonl"],
        bench,
        3,
        "does not answer",
    ),
    Case("predict-dead-endpoint-no-name", [*P, DEAD_URL, "--out", "o.jsonl"], bench, 3, "cannot list models"),
    Case(
        "predict-model-url-typo",
        [*P, "htp://127.0.0.1:1/v1", "--out", "o.jsonl"],
        bench,
        2,
        "--model: 'htp://127.0.0.1:1/v1' is not an http(s) URL",
    ),
    Case(
        "predict-bench-not-utf8",
        [*P, "nowhere-model", "--out", "o.jsonl"],
        lambda r: bench(r, raw=b"\xff\xfe\x00{"),
        2,
        "bench.jsonl:1: not UTF-8",
    ),
    Case(
        "predict-bench-is-png",
        [*P, "nowhere-model", "--out", "o.jsonl"],
        lambda r: bench(r, raw=PNG_BYTES),
        2,
        "bench.jsonl:1",
    ),
    Case(
        "predict-bench-not-jsonl",
        [*P, "nowhere-model", "--out", "o.jsonl"],
        lambda r: bench(r, raw=b"id,question\n1,why\n"),
        2,
        "not a bench item",
    ),
    Case(
        "predict-image-missing",
        [*P, "nowhere-model", "--out", "o.jsonl"],
        lambda r: bench(r, [{**BENCH_ITEMS[1], "image": "images/gone.png"}]),
        2,
        "1 bench image(s) not found",
    ),
    Case(
        "predict-out-is-folder",
        [*P, DEAD_URL, "--served-model", "m", "--out", "o"],
        _all(bench, folder_at("o")),
        2,
        "is a folder",
    ),
    Case(
        "predict-out-read-only",
        [*P, DEAD_URL, "--served-model", "m", "--out", "ro/o.jsonl"],
        _all(bench, read_only),
        2,
        "not writable",
    ),
    Case(
        "predict-out-in-sysfs",
        [*P, DEAD_URL, "--served-model", "m", "--out", "/sys/giqa/o.jsonl"],
        bench,
        2,
        "not writable",
    ),
    Case(
        "predict-out-exists",
        [*P, DEAD_URL, "--served-model", "m", "--out", "o.jsonl"],
        _all(bench, file_at("o.jsonl", b'{"id": "d1", "response": "x"}\n')),
        2,
        "pass --resume",
    ),
    Case(
        "predict-overwrite-dead-keeps-old",
        [*P, DEAD_URL, "--served-model", "m", "--out", "o.jsonl", "--overwrite"],
        _all(bench, file_at("o.jsonl", b'{"id": "d1", "response": "x"}\n')),
        3,
        "does not answer",
    ),
    Case("predict-missing-model-folder", [*P, "no-such-checkpoint", "--out", "o.jsonl"], bench, 2, "no-such"),
    # ---------------------------------------------------------------- eval
    Case(
        "eval-bench-not-utf8",
        [*E, "--out", "r.json", "--no-judge"],
        _all(good_inputs, lambda r: bench(r, raw=b"\xff\n")),
        2,
        "not UTF-8",
    ),
    Case(
        "eval-bench-is-png",
        [*E, "--out", "r.json", "--no-judge"],
        _all(good_inputs, lambda r: bench(r, raw=PNG_BYTES)),
        2,
        "bench.jsonl:1",
    ),
    Case(
        "eval-predictions-are-the-bench",
        [*E[:4], "b/bench.jsonl", "--quiet", "--out", "r.json", "--no-judge"],
        good_inputs,
        2,
        "holds no prediction for this bench",
    ),
    Case(
        "eval-predictions-are-a-png",
        [*E, "--out", "r.json", "--no-judge"],
        _all(good_inputs, lambda r: preds(r, PNG_BYTES + b"\n\x00\xff\n")),
        2,
        "holds no prediction",
    ),
    Case(
        "eval-predictions-empty",
        [*E, "--out", "r.json", "--no-judge"],
        _all(good_inputs, lambda r: preds(r, b"")),
        2,
        "is empty",
    ),
    Case(
        "eval-predictions-other-bench",
        [*E, "--out", "r.json", "--no-judge"],
        _all(good_inputs, lambda r: preds(r, _jsonl([{"id": "zz", "response": "No."}]))),
        2,
        "ids not in the bench",
    ),
    Case(
        "eval-judge-url-not-url",
        [*E, "--out", "r.json", "--judge-url", "127.0.0.1:8000"],
        good_inputs,
        2,
        "--judge-url",
    ),
    Case(
        "eval-judge-dead",
        [*E, "--out", "r.json", "--judge-url", DEAD_URL],
        good_inputs,
        3,
        "judge is unavailable",
    ),
    Case(
        "eval-out-is-folder",
        [*E, "--out", "r", "--no-judge"],
        _all(good_inputs, folder_at("r")),
        2,
        "is a folder",
    ),
    Case(
        "eval-out-read-only",
        [*E, "--out", "ro/r.json", "--no-judge"],
        _all(good_inputs, read_only),
        2,
        "not writable",
    ),
    Case(
        "eval-out-in-sysfs", [*E, "--out", "/sys/giqa-r.json", "--no-judge"], good_inputs, 2, "not writable"
    ),
    Case(
        "eval-items-in-sysfs",
        [*E, "--out", "r.json", "--items", "/sys/giqa/i.jsonl", "--no-judge"],
        good_inputs,
        2,
        "not writable",
    ),
    Case("eval-out-under-a-file", [*E, "--out", "p.jsonl/r.json", "--no-judge"], good_inputs, 2, "is a file"),
    Case(
        "eval-missing-bench",
        [*E, "--out", "r.json", "--no-judge"],
        lambda r: preds(r, b"{}\n"),
        2,
        "bench file not found",
    ),
    # ---------------------------------------------------------------- eval compare, llm serve
    Case(
        "compare-not-a-report",
        ["eval", "compare", "j.json", "--out", "c.png"],
        file_at("j.json", b'{"a": 1}'),
        2,
        "not a GIQA-Bench report",
    ),
    Case(
        "compare-report-sections-wrong",
        ["eval", "compare", "j.json", "--out", "c.png"],
        file_at("j.json", b'{"des": 1, "vqa": []}'),
        2,
        "not a GIQA-Bench report",
    ),
    Case(
        "compare-png",
        ["eval", "compare", "j.json", "--out", "c.png"],
        file_at("j.json", PNG_BYTES),
        2,
        "not UTF-8",
    ),
    Case(
        "compare-not-json",
        ["eval", "compare", "j.json", "--out", "c.png"],
        file_at("j.json", b"des,vqa\n"),
        2,
        "is not JSON",
    ),
    Case(
        "compare-missing", ["eval", "compare", "j.json", "--out", "c.png"], code=2, message="file not found"
    ),
    Case(
        "compare-out-is-folder",
        ["eval", "compare", "j.json", "--out", "c"],
        _all(file_at("j.json", b'{"des": {}, "vqa": {}}'), folder_at("c")),
        2,
        "is a folder",
    ),
]
# run as a subprocess only: `llm serve` installs a SIGTERM handler, which must not land in the test process
# (its message depends on whether llama-cpp-python is installed: "GGUF model file not found" or "needs ...")
LLM_SERVE = Case("llm-serve-missing-gguf", ["llm", "serve", "--model", "none.gguf"], code=1, message="error:")


# ------------------------------------------------------------------------------------------- checks


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with a digest of its bytes (folders as 'dir')."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        out[rel] = "dir" if path.is_dir() else hashlib.sha1(path.read_bytes()).hexdigest()
    return out


def child_pids() -> set[int]:
    me, found = str(os.getpid()), set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if stat.rsplit(")", 1)[1].split()[1] == me:
                found.add(int(entry.name))
    return found


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working folder as the current directory; caches and settings kept outside it."""
    root = tmp_path / "work"
    root.mkdir()
    monkeypatch.chdir(root)
    monkeypatch.setenv("GIQA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("GIQA_LLM__URL", raising=False)
    get_settings.cache_clear()
    yield root
    get_settings.cache_clear()
    for ro in root.rglob("ro"):
        ro.chmod(0o755)


def assert_clean_failure(code: int, stderr: str, case: Case) -> None:
    assert code == case.code, f"{case.name}: exit {code}, stderr: {stderr}"
    assert "Traceback" not in stderr, f"{case.name}: {stderr}"
    assert case.message in stderr, f"{case.name}: {case.message!r} not in {stderr!r}"
    error_lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    if not stderr.lstrip().startswith(("Usage:", "╭")):  # click's own usage errors keep their form
        assert len(error_lines) == 1 and len(error_lines[0]) < 400, f"{case.name}: {stderr!r}"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gives_one_line_and_leaves_nothing(case: Case, workdir: Path) -> None:
    if "read-only" in case.name and os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    case.setup(workdir)
    before, children = snapshot(workdir), child_pids()
    get_settings.cache_clear()
    result = CliRunner().invoke(app, case.args, env=case.env)
    get_settings.cache_clear()
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), (
        f"{case.name}: {result.exception!r}"
    )
    assert_clean_failure(result.exit_code, result.stderr, case)
    assert snapshot(workdir) == before, f"{case.name}: files changed"
    assert child_pids() <= children, f"{case.name}: a child process was left"


# each costs a fresh interpreter (~4 s on a busy 2-core machine): the kinds of failure, once each
SUBPROCESS_CASES = ["tags-bad-url-in-settings", "eval-predictions-are-a-png", "predict-dead-endpoint",
                    "eval-out-in-sysfs"]  # fmt: skip


@pytest.mark.parametrize("name", [*SUBPROCESS_CASES, LLM_SERVE.name])
def test_real_process_stderr_and_exit_status(name: str, workdir: Path) -> None:
    case = next(c for c in [*CASES, LLM_SERVE] if c.name == name)
    case.setup(workdir)
    before = snapshot(workdir)
    shared = str(Path(__file__).resolve().parents[3] / "shared")
    env = {**os.environ, **case.env, "PYTHONPATH": shared + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run(
        [sys.executable, "-c", "from giqa.cli import main; main()", *case.args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert_clean_failure(done.returncode, done.stderr, case)
    assert not done.stdout.strip(), done.stdout
    assert snapshot(workdir) == before
