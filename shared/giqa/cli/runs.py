"""``giqa runs``: operate annotation runs on the annotator service (submit, list, show, retry, export).

Talks to the annotator's REST API (``--url``, default settings ``annotator.url``) with the operator key of
settings ``annotator.operator_key``. Errors are one line: an annotator that does not answer exits 3, a
request it refuses exits 2 with its message.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from giqa.cli.common import EXIT_UNAVAILABLE, fail, url_option

app = typer.Typer(help="Annotation runs on the annotator service.", no_args_is_help=True)

UrlOption = Annotated[
    str | None, typer.Option("--url", callback=url_option, help="annotator URL (default: annotator.url)")
]
FINAL = ("done", "failed", "cancelled")


class Api:
    """A thin httpx client of the annotator: JSON in and out, errors as one line and an exit code.
    (``giqa jobs`` subclasses it for the trainer and the evaluator: ``service`` names the one it talks to.)"""

    service = "annotator"

    def __init__(self, url: str | None) -> None:
        import httpx

        from giqa.settings import get_settings

        conf = get_settings().annotator
        headers = {}
        if conf.operator_key is not None:
            headers["Authorization"] = f"Bearer {conf.operator_key.get_secret_value()}"
        self.url = (url or conf.url).rstrip("/")
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=conf.timeout_s)

    def request(self, method: str, path: str, **kw: Any) -> Any:
        import httpx

        try:
            response = self.client.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise fail(f"the {self.service} at {self.url} does not answer: {exc}", EXIT_UNAVAILABLE) from exc
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:300]
            code = EXIT_UNAVAILABLE if response.status_code in (502, 503, 504) else 2
            raise fail(f"{method} {path}: HTTP {response.status_code}: {message}", code)
        return response


def _images(folder: Path) -> list[Path]:
    from giqa.pipeline.inputs import IMAGE_SUFFIXES

    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


@app.command("submit")
def submit(
    descriptions: Annotated[
        Path | None, typer.Option("--descriptions", help=".jsonl {image, description} lines or .json LLaVA")
    ] = None,
    images: Annotated[
        Path | None, typer.Option("--images", help="folder the image paths are relative to (uploaded)")
    ] = None,
    images_prefix: Annotated[
        str | None, typer.Option("--images-prefix", help="instead of an upload: store prefix of the images")
    ] = None,
    descriptions_key: Annotated[
        str | None, typer.Option("--descriptions-key", help="with --images-prefix: store key of descriptions")
    ] = None,
    name: Annotated[str, typer.Option("--name", help="run name")] = "run",
    form: Annotated[str | None, typer.Option("--form", help="box text form: grid or norm")] = None,
    watch: Annotated[bool, typer.Option("--watch", help="then follow the run until it ends")] = False,
    url: UrlOption = None,
) -> None:
    """Start a run: upload descriptions and images, or name objects already in the store."""
    api = Api(url)
    if images_prefix or descriptions_key:
        if not (images_prefix and descriptions_key) or images or descriptions:
            raise fail("give --images-prefix with --descriptions-key, or --descriptions with --images")
        body = {"name": name, "images_prefix": images_prefix, "descriptions_key": descriptions_key}
        created = api.request("POST", "/v1/runs", json=body | ({"form": form} if form else {})).json()
    else:
        if descriptions is None or images is None:
            raise fail("give --descriptions and --images (or --images-prefix and --descriptions-key)")
        if not descriptions.is_file():
            raise fail(f"descriptions file not found: {descriptions}")
        if not images.is_dir():
            raise fail(f"images folder not found: {images}")
        found = _images(images)
        # bytes, not open handles: a run of thousands of images would exceed the open-file limit
        files: list[tuple[str, Any]] = [
            ("descriptions", (descriptions.name, descriptions.read_bytes(), "application/octet-stream"))
        ]
        files += [
            ("images", (path.relative_to(images).as_posix(), path.read_bytes(), "application/octet-stream"))
            for path in found
        ]
        data = {"name": name} | ({"form": form} if form else {})
        created = api.request("POST", "/v1/runs", files=files, data=data).json()
    typer.echo(
        f"run {created['run_id']}: {created['total']} samples, {created['started']} started, "
        f"{created['failed_at_input']} refused at input"
    )
    if watch:
        _watch(api, created["run_id"], 1.0)


@app.command("list")
def list_runs(
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 20,
    url: UrlOption = None,
) -> None:
    """The newest runs: state and samples by state."""
    runs = Api(url).request("GET", "/v1/runs", params={"limit": limit}).json()
    if not runs:
        typer.echo("no runs")
        return
    typer.echo(f"{'id':32}  {'state':9}  {'total':>6}  {'done':>6}  {'failed':>6}  {'running':>7}  name")
    for r in runs:
        s = r["by_state"]
        typer.echo(
            f"{r['id']:32}  {r['state']:9}  {r['total']:>6}  {s['done']:>6}  {s['failed']:>6}  "
            f"{s['running'] + s['pending']:>7}  {r['name']}"
        )


def render(run: dict[str, Any]) -> str:
    """The run as ``giqa runs show`` prints it: states, stages with seconds, throughput, failures."""
    s = run["by_state"]
    lines = [
        f"run {run['id']} ({run['name']}): {run['state']}"
        + (f" - {run['error']}" if run.get("error") else ""),
        f"samples: {run['total']} total, {s['done']} done, {s['failed']} failed, {s['running']} running, "
        f"{s['pending']} pending; {run['samples_per_s']:.2f} samples/s over {run['elapsed_s']:.1f} s",
        "stage      results  mean s/sample",
    ]
    for stage, count in run["by_stage"].items():
        timing = run["stage_seconds"].get(stage)
        mean = f"{timing['mean_s']:.3f}" if timing else "-"
        lines.append(f"{stage:9}  {count:>7}  {mean:>13}")
    if run["failures"]:
        lines.append(f"latest failures ({len(run['failures'])}):")
        for f in run["failures"]:
            flag = " (retryable)" if f["retryable"] else ""
            lines.append(f"  {f['sample_key']} at {f['stage']}{flag}: {f['reason'][:160]}")
    if run.get("dataset_key"):
        lines.append(f"dataset: {run['dataset_key']} (giqa runs export {run['id']} --out DIR)")
    return "\n".join(lines)


def _watch(api: Api, run_id: str, interval: float) -> dict[str, Any]:
    from tqdm import tqdm

    run = api.request("GET", f"/v1/runs/{run_id}").json()
    shown: dict[str, Any] = {}
    with tqdm(total=run["total"], desc=f"run {run_id[:8]}", unit="sample") as bar:
        while True:
            s = run["by_state"]
            postfix = {"state": run["state"], "failed": s["failed"], "running": s["running"]}
            postfix |= {k: v for k, v in run["by_stage"].items() if v}
            ended = s["done"] + s["failed"]
            if ended != bar.n or postfix != shown:  # redraw on change only (a log file gets one line each)
                bar.set_postfix(postfix, refresh=False)
                bar.update(ended - bar.n)
                bar.refresh()
                shown = postfix
            if run["state"] in FINAL:
                break
            time.sleep(interval)
            run = api.request("GET", f"/v1/runs/{run_id}").json()
    typer.echo(render(run))
    return run


@app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="the run id")],
    watch: Annotated[bool, typer.Option("--watch", help="a progress bar until the run ends")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.1, help="seconds between polls")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="print the API's JSON")] = False,
    url: UrlOption = None,
) -> None:
    """Progress of a run: samples by state, results and seconds per stage, throughput, latest failures."""
    api = Api(url)
    if watch:
        run = _watch(api, run_id, interval)
        if run["state"] != "done":
            raise typer.Exit(1)
        return
    run = api.request("GET", f"/v1/runs/{run_id}").json()
    typer.echo(json.dumps(run, indent=2) if as_json else render(run))


@app.command("retry")
def retry(
    run_id: Annotated[str, typer.Argument(help="the run id")],
    retryable_only: Annotated[
        bool, typer.Option("--retryable-only", help="only failures a retry can help (transient)")
    ] = False,
    stalled: Annotated[
        bool, typer.Option("--stalled", help="also send again samples still pending or running (lost tasks)")
    ] = False,
    url: UrlOption = None,
) -> None:
    """Run a run's failed samples again (those with bad input stay failed)."""
    params = {"retryable_only": retryable_only, "stalled": stalled}
    answer = Api(url).request("POST", f"/v1/runs/{run_id}/retry", params=params)
    body = answer.json()
    stages = ", ".join(f"{n} at {stage}" for stage, n in body["by_stage"].items()) or "nothing to retry"
    typer.echo(f"run {run_id}: {body['retried']} samples retried ({stages})")


@app.command("export")
def export(
    run_id: Annotated[str, typer.Argument(help="the run id")],
    out: Annotated[Path, typer.Option("--out", help="folder to write the dataset files into")],
    url: UrlOption = None,
) -> None:
    """Download a finished run's dataset (train.json, val.json, stats, histogram) into --out."""
    from giqa.files import atomic_writer

    api = Api(url)
    info = api.request("GET", f"/v1/runs/{run_id}/dataset").json()
    out.mkdir(parents=True, exist_ok=True)
    for name in info["files"]:
        data = api.request("GET", f"/v1/runs/{run_id}/dataset", params={"file": name}).content
        with atomic_writer(out / name, "wb") as handle:
            handle.write(data)
    table = info["stats"].get("table") or []
    total = table[-1].get("total") if table else "?"
    typer.echo(f"wrote {', '.join(info['files'])} to {out} ({total} samples)")
