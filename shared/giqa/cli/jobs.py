"""``giqa jobs`` and ``giqa evals``: training jobs on the trainer service, evaluations on the evaluator.

They talk to the services' REST APIs (``--url``, default settings ``jobs.trainer_url`` /
``jobs.evaluator_url``) with the operator key of settings ``jobs.operator_key`` (else
``annotator.operator_key``). Errors are one line as in ``giqa runs``: a service that does not answer exits 3,
a request it refuses exits 2 with its message.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from giqa.cli.common import fail, url_option
from giqa.cli.runs import Api

jobs_app = typer.Typer(help="Training jobs on the trainer service.", no_args_is_help=True)
evals_app = typer.Typer(help="GIQA-Bench evaluations on the evaluator service.", no_args_is_help=True)

UrlOption = Annotated[
    str | None, typer.Option("--url", callback=url_option, help="service URL (default: settings jobs.*_url)")
]
FINAL = ("succeeded", "failed", "cancelled")
LAUNCHER_FIELDS = ("data", "image_root", "output_dir", "base_model", "preset", "progress", "resume")


class ServiceApi(Api):
    """:class:`giqa.cli.runs.Api` pointed at the trainer or the evaluator."""

    def __init__(self, service: str, url: str | None) -> None:
        import httpx

        from giqa.settings import get_settings

        settings = get_settings()
        key = settings.jobs.operator_key or settings.annotator.operator_key
        headers = {"Authorization": f"Bearer {key.get_secret_value()}"} if key is not None else {}
        self.service = service
        self.url = (url or getattr(settings.jobs, f"{service}_url")).rstrip("/")
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=settings.annotator.timeout_s)


def _config_values(config: Path | None, sets: list[str]) -> dict[str, Any]:
    """``giqa train`` fields from a YAML file and ``--set key=value`` pairs (values parsed as YAML)."""
    import yaml

    values: dict[str, Any] = {}
    if config is not None:
        try:
            loaded = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise fail(f"cannot read --config {config}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise fail(f"--config {config} must hold a mapping of giqa train fields")
        # a configs/train/*.yaml names its folders and model: on the service those are the request's
        ignored = sorted(k for k in LAUNCHER_FIELDS if k in loaded)
        if ignored:
            typer.echo(f"ignored from {config}: {', '.join(ignored)} (the job's options set them)", err=True)
        values |= {k: v for k, v in loaded.items() if k not in LAUNCHER_FIELDS}
    for item in sets:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise fail(f"--set takes key=value, got {item!r}")
        values[key.strip().replace("-", "_")] = yaml.safe_load(raw)
    return values


def render_job(job: dict[str, Any]) -> str:
    total = job["total_steps"] or "?"
    loss = f"{job['loss']:.4f}" if job["loss"] is not None else "-"
    eta = f"{job['eta_s']:.0f} s" if job["eta_s"] is not None else "-"
    lines = [
        f"job {job['id']} ({job['name']}): {job['state']}" + (f" - {job['error']}" if job["error"] else ""),
        f"step {job['step']}/{total}, loss {loss}, ETA {eta}; launcher {job['launcher']}"
        + (f" ({job['k8s_name']})" if job.get("k8s_name") else ""),
        f"dataset {job['dataset']}, base model {job['base_model']}, checkpoint name {job['checkpoint_name']}",
    ]
    lines += [f"checkpoint {c['name']}: {c['key_prefix']} (step {c['step']})" for c in job["checkpoints"]]
    return "\n".join(lines)


def _follow(api: ServiceApi, path: str, render: Any, interval: float) -> dict[str, Any]:
    shown = ""
    while True:
        body = api.request("GET", path).json()
        line = render(body).splitlines()[1]
        if line != shown:  # one line per change (a log gets no spinner noise)
            typer.echo(line)
            shown = line
        if body["state"] in FINAL:
            typer.echo(render(body))
            return body
        time.sleep(interval)


@jobs_app.command("submit")
def submit_job(
    dataset_key: Annotated[str | None, typer.Option("--dataset-key", help="LLaVA JSON in the store")] = None,
    images_prefix: Annotated[
        str | None, typer.Option("--images-prefix", help="store prefix of the images the JSON names")
    ] = None,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="instead: an annotation run's dataset")
    ] = None,
    preset: Annotated[str, typer.Option("--preset", help="tiny or paper")] = "tiny",
    config: Annotated[Path | None, typer.Option("--config", help="YAML of giqa train fields")] = None,
    sets: Annotated[list[str] | None, typer.Option("--set", help="a giqa train field: key=value")] = None,
    base_model: Annotated[
        str, typer.Option("--base-model", help="tiny, a folder there, key:<prefix> or checkpoint:<name>")
    ] = "tiny",
    name: Annotated[str, typer.Option("--name", help="job name")] = "job",
    checkpoint_name: Annotated[
        str | None, typer.Option("--checkpoint-name", help="register the final model as (default: from name)")
    ] = None,
    launcher: Annotated[str | None, typer.Option("--launcher", help="local or kubernetes")] = None,
    watch: Annotated[bool, typer.Option("--watch", help="then follow the job until it ends")] = False,
    url: UrlOption = None,
) -> None:
    """Start a training job from a dataset in the store (or an annotation run's)."""
    values = _config_values(config, sets or [])
    body: dict[str, Any] = {"name": name, "preset": preset, "config": values, "base_model": base_model}
    for key, value in (
        ("dataset_key", dataset_key),
        ("images_prefix", images_prefix),
        ("run_id", run_id),
        ("checkpoint_name", checkpoint_name),
        ("launcher", launcher),
    ):
        if value is not None:
            body[key] = value
    api = ServiceApi("trainer", url)
    job = api.request("POST", "/v1/jobs", json=body).json()
    typer.echo(f"job {job['id']}: {job['state']}, checkpoint name {job['checkpoint_name']}")
    if watch:
        ended = _follow(api, f"/v1/jobs/{job['id']}", render_job, 1.0)
        if ended["state"] != "succeeded":
            raise typer.Exit(1)


@jobs_app.command("list")
def list_jobs(
    state: Annotated[str | None, typer.Option("--state", help="only jobs in this state")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 20,
    url: UrlOption = None,
) -> None:
    """The newest jobs: state, step, loss, ETA."""
    params: dict[str, Any] = {"limit": limit} | ({"state": state} if state else {})
    jobs = ServiceApi("trainer", url).request("GET", "/v1/jobs", params=params).json()
    if not jobs:
        typer.echo("no jobs")
        return
    typer.echo(f"{'id':32}  {'state':9}  {'step':>11}  {'loss':>8}  {'eta s':>7}  name")
    for j in jobs:
        step = f"{j['step']}/{j['total_steps'] or '?'}"
        loss = f"{j['loss']:.4f}" if j["loss"] is not None else "-"
        eta = f"{j['eta_s']:.0f}" if j["eta_s"] is not None else "-"
        typer.echo(f"{j['id']:32}  {j['state']:9}  {step:>11}  {loss:>8}  {eta:>7}  {j['name']}")


@jobs_app.command("show")
def show_job(
    job_id: Annotated[str, typer.Argument(help="the job id")],
    watch: Annotated[bool, typer.Option("--watch", help="follow the job until it ends")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.1, help="seconds between polls")] = 2.0,
    as_json: Annotated[bool, typer.Option("--json", help="print the API's JSON")] = False,
    url: UrlOption = None,
) -> None:
    """A job: state, step, loss, ETA, its checkpoints."""
    api = ServiceApi("trainer", url)
    if watch:
        if _follow(api, f"/v1/jobs/{job_id}", render_job, interval)["state"] != "succeeded":
            raise typer.Exit(1)
        return
    job = api.request("GET", f"/v1/jobs/{job_id}").json()
    typer.echo(json.dumps(job, indent=2) if as_json else render_job(job))


@jobs_app.command("cancel")
def cancel_job(job_id: Annotated[str, typer.Argument(help="the job id")], url: UrlOption = None) -> None:
    """Cancel a job: a queued one at once, a running one's process is stopped by its launcher."""
    job = ServiceApi("trainer", url).request("POST", f"/v1/jobs/{job_id}/cancel").json()
    waiting = " (its process is being stopped)" if job["state"] == "running" else ""
    typer.echo(f"job {job_id}: {job['state']}{waiting}")


@jobs_app.command("checkpoints")
def checkpoints(url: UrlOption = None) -> None:
    """The registered checkpoints (the names the inference service and the evaluator load)."""
    found = ServiceApi("trainer", url).request("GET", "/v1/checkpoints").json()
    if not found:
        typer.echo("no checkpoints")
    for c in found:
        typer.echo(f"{c['name']}  {c['key_prefix']}  step {c['step']}  job {c['job_id'] or '-'}")


# ------------------------------------------------------------------------------------------ evals


def render_eval(view: dict[str, Any]) -> str:
    from giqa.evaluation.table import format_table

    lines = [
        f"evaluation {view['id']} ({view['name']}): {view['state']}"
        + (f" - {view['error']}" if view["error"] else ""),
        f"bench {view['bench_key']}, {view['model_kind']} {view['model']}, "
        f"judge {view['judge_url'] or 'none'}",
    ]
    if view["report"]:
        lines.append(format_table([(view["name"], view["report"])]))
        lines += [f"{kind}: {key}" for kind, key in view["keys"].items()]
    return "\n".join(lines)


@evals_app.command("submit")
def submit_eval(
    bench_key: Annotated[str, typer.Option("--bench-key", help="bench JSONL in the store")],
    checkpoint: Annotated[str | None, typer.Option("--checkpoint", help="a registered checkpoint")] = None,
    model_url: Annotated[str | None, typer.Option("--model-url", help="OpenAI-compatible /v1 URL")] = None,
    predictions: Annotated[
        Path | None, typer.Option("--predictions", help="predictions JSONL to upload")
    ] = None,
    predictions_key: Annotated[
        str | None, typer.Option("--predictions-key", help="predictions JSONL in the store")
    ] = None,
    judge_url: Annotated[
        str | None, typer.Option("--judge-url", help="judge /v1 URL (default: none)")
    ] = None,
    images_prefix: Annotated[str | None, typer.Option("--images-prefix", help="default: the bench's")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="score the first N items")] = None,
    name: Annotated[str, typer.Option("--name", help="evaluation name")] = "evaluation",
    watch: Annotated[bool, typer.Option("--watch", help="then wait for the report")] = False,
    url: UrlOption = None,
) -> None:
    """Score a model (checkpoint or URL) or predictions on a bench in the store."""
    body: dict[str, Any] = {"name": name, "bench_key": bench_key}
    for key, value in (
        ("checkpoint", checkpoint),
        ("model_url", model_url),
        ("predictions_key", predictions_key),
        ("judge_url", judge_url),
        ("images_prefix", images_prefix),
        ("limit", limit),
    ):
        if value is not None:
            body[key] = value
    api = ServiceApi("evaluator", url)
    if predictions is not None:
        if not predictions.is_file():
            raise fail(f"predictions file not found: {predictions}")
        files = {
            "request": (None, json.dumps(body)),
            "predictions": (predictions.name, predictions.read_bytes(), "application/x-ndjson"),
        }
        view = api.request("POST", "/v1/evaluations", files=files).json()
    else:
        view = api.request("POST", "/v1/evaluations", json=body).json()
    typer.echo(f"evaluation {view['id']}: {view['state']}")
    if watch:
        ended = _follow(api, f"/v1/evaluations/{view['id']}", render_eval, 1.0)
        if ended["state"] != "succeeded":
            raise typer.Exit(1)


@evals_app.command("list")
def list_evals(
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 20, url: UrlOption = None
) -> None:
    """The newest evaluations."""
    views = ServiceApi("evaluator", url).request("GET", "/v1/evaluations", params={"limit": limit}).json()
    if not views:
        typer.echo("no evaluations")
    for v in views:
        typer.echo(f"{v['id']}  {v['state']:9}  {v['model_kind']:11}  {v['model']}  {v['name']}")


@evals_app.command("show")
def show_eval(
    eval_id: Annotated[str, typer.Argument(help="the evaluation id")],
    as_json: Annotated[bool, typer.Option("--json", help="print the API's JSON")] = False,
    url: UrlOption = None,
) -> None:
    """An evaluation: its state, the Table-5 row of its report, the keys of its files."""
    view = ServiceApi("evaluator", url).request("GET", f"/v1/evaluations/{eval_id}").json()
    typer.echo(json.dumps(view, indent=2) if as_json else render_eval(view))


@evals_app.command("compare")
def compare(
    eval_ids: Annotated[list[str], typer.Argument(help="evaluation ids")],
    chart: Annotated[Path | None, typer.Option("--chart", help="also write the chart PNG here")] = None,
    kind: Annotated[str, typer.Option("--kind", help="radar or bars")] = "radar",
    url: UrlOption = None,
) -> None:
    """Reports side by side (the giqa eval compare table), and the chart."""
    from giqa.files import atomic_writer

    if kind not in ("radar", "bars"):
        raise typer.BadParameter("--kind is radar or bars")
    api = ServiceApi("evaluator", url)
    params: dict[str, Any] = {"ids": eval_ids}
    typer.echo(api.request("GET", "/v1/evaluations/compare", params=params).json()["table"])
    if chart is not None:
        png = api.request("GET", "/v1/evaluations/compare", params=params | {"chart": kind}).content
        with atomic_writer(chart, "wb") as handle:
            handle.write(png)
        typer.echo(f"chart: {chart}")
