"""``giqa annotate`` (the automated annotation pipeline) and ``giqa tags`` (Stage 1 alone, for debugging).

Without an LLM URL both start the embedded llama.cpp server (SmolLM2-135M) and stop it afterwards. Bad
configuration (a detector folder that is not there, a missing or empty input file, an earlier run in --out
without --resume) ends with a one-line message on stderr and exit code 2 (3: the LLM server does not answer);
bad samples (an image path outside --images among them) are recorded in the audit, not fatal. With no detector
configured, Stage 2 uses the demo detector shipped in ``giqa/assets/detector``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from giqa.cli.common import EXIT_UNAVAILABLE, url_option
from giqa.cli.common import fail as _fail
from giqa.settings import Settings, get_settings


@contextlib.contextmanager
def chat_llm(settings: Settings, url: str | None) -> Iterator[Any]:
    """The composition root's chat LLM (:func:`giqa.backends.factory.make_chat_llm`) for a command: a
    server that does not answer, or an embedded one that cannot start, ends it with exit code 3."""
    from giqa.backends.factory import make_chat_llm
    from giqa.llm.errors import LLMUnavailableError

    if not (url or settings.llm.url):
        typer.echo("no LLM URL configured: starting the embedded SmolLM2-135M server", err=True)
    with contextlib.ExitStack() as stack:
        try:
            llm = stack.enter_context(make_chat_llm(settings, url=url))
        except LLMUnavailableError as exc:
            raise _fail(str(exc), EXIT_UNAVAILABLE) from exc
        yield llm


def annotate(
    images: Annotated[Path, typer.Option("--images", help="folder the image paths are relative to")],
    out: Annotated[
        Path, typer.Option("--out", help="output folder (audit, train/val JSON, stats, histogram)")
    ],
    descriptions: Annotated[
        Path | None,
        typer.Option(
            "--descriptions",
            help='.jsonl lines {"image", "description"}, or .json LLaVA records (first answer); '
            "omit to read same-named .txt files beside the images",
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="continue the run in --out, skipping done samples")
    ] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", min=0, help="annotate at most N new samples")
    ] = None,
    llm_url: Annotated[
        str | None,
        typer.Option(
            "--llm-url",
            callback=url_option,
            help="OpenAI-compatible /v1 URL (default: settings, else embedded)",
        ),
    ] = None,
    detector: Annotated[
        Path | None,
        typer.Option(
            "--detector",
            help="Grounding DINO folder (default: settings pipeline.detector_model, else the shipped demo "
            "detector trained on GIQA-Synth shapes; give a real one for photographs)",
        ),
    ] = None,
    judge: Annotated[
        Literal["classical", "qinstruct"] | None,
        typer.Option("--judge", help="IQA-Filter judge (default: settings pipeline.judge_backend)"),
    ] = None,
    judge_model: Annotated[
        Path | None, typer.Option("--judge-model", help="Q-Instruct folder (qinstruct)")
    ] = None,
    form: Annotated[
        Literal["grid", "norm"] | None, typer.Option("--form", help="box text form (default: settings)")
    ] = None,
    detector_url: Annotated[
        str | None,
        typer.Option(
            "--detector-url",
            callback=url_option,
            help="detector service base URL, e.g. http://127.0.0.1:8101 (default: settings "
            "pipeline.detector_url, else in process); not with --detector",
        ),
    ] = None,
    judge_url: Annotated[
        str | None,
        typer.Option(
            "--judge-url",
            callback=url_option,
            help="iqa_filter service base URL (default: settings pipeline.judge_url, else in process); "
            "not with --judge/--judge-model",
        ),
    ] = None,
) -> None:
    """Stages 1–4 and VQA generation over images with quality descriptions; writes a LLaVA dataset.

    Outputs in --out: audit.jsonl (every stage's decisions per sample), train.json / val.json (split by
    image), stats.md / stats.json (Table 1 and the run report), box_area.png (raw vs refined box areas).
    """
    from giqa.backends.factory import JudgeConfigError, annotate_config, make_detector, make_judge
    from giqa.backends.remote import RemoteDetector, RemoteJudge
    from giqa.files import OutputPathError, check_output_dir
    from giqa.pipeline.export import export_from_audit
    from giqa.pipeline.inputs import read_inputs
    from giqa.pipeline.run import Backends, run_annotation

    settings = get_settings()
    try:
        check_output_dir(out, "--out")
        items = read_inputs(descriptions, images, max_chars=settings.annotate.max_description_chars)
        first = next(items, None)  # an empty input is an error before any model or server starts
        if first is None:
            raise ValueError(f"no (image, description) pairs in {descriptions or images}")
        items = itertools.chain([first], items)
        detector_backend = make_detector(settings.pipeline, model=detector, url=detector_url)
        judge_backend = make_judge(settings.pipeline, backend=judge, model=judge_model, url=judge_url)
    except (ValueError, FileNotFoundError, JudgeConfigError, OutputPathError) as exc:
        raise _fail(str(exc)) from exc
    for backend in (detector_backend, judge_backend):
        if isinstance(backend, (RemoteDetector, RemoteJudge)):  # refuse up front, not after every sample
            health = backend.health()
            if not health.ok:
                raise _fail(health.detail, EXIT_UNAVAILABLE)
    config = annotate_config(settings, form)
    started = time.perf_counter()
    try:
        with chat_llm(settings, llm_url) as llm:
            backends = Backends(llm=llm, detector=detector_backend, judge=judge_backend)
            counts = run_annotation(items, images, out, backends, config, resume=resume, limit=limit)
    except FileExistsError as exc:
        raise _fail(str(exc)) from exc
    except ValueError as exc:  # a broken LLaVA file shows up when iteration starts
        raise _fail(str(exc)) from exc
    summary = export_from_audit(
        out / "audit.jsonl",
        out,
        seed=settings.annotate.seed,
        val_fraction=settings.annotate.val_fraction,
        vqa_limit=settings.annotate.vqa_limit,
    )
    typer.echo(
        f"annotated {counts['processed']} samples ({counts['failed']} failed, "
        f"{counts['skipped']} skipped as done) in {time.perf_counter() - started:.1f} s"
    )
    typer.echo((out / "stats.md").read_text(encoding="utf-8"))
    typer.echo(f"dataset: {out / 'train.json'}, {out / 'val.json'}; histogram: {out / 'box_area.png'}")
    if summary["report"]["counts"].get("ok", 0) == 0 and counts["processed"]:
        raise typer.Exit(code=1)


def tags(
    description: Annotated[str, typer.Option("--description", help="the quality description to tag")],
    llm_url: Annotated[
        str | None,
        typer.Option(
            "--llm-url",
            callback=url_option,
            help="OpenAI-compatible /v1 URL (default: settings, else embedded)",
        ),
    ] = None,
    mode: Annotated[
        Literal["sentences", "constrained", "free"] | None,
        typer.Option("--mode", help="Stage-1 mode (default: settings)"),
    ] = None,
) -> None:
    """Stage 1 alone: print the tags, the drops and the repairs (with reasons) as JSON."""
    from giqa.llm.errors import LLMError
    from giqa.pipeline.inputs import length_problem
    from giqa.pipeline.tags import TagRules, extract_tags

    settings = get_settings()
    if not description.strip():
        raise _fail("the description is empty")
    a = settings.annotate
    if too_long := length_problem(description, a.max_description_chars):
        raise _fail(f"{too_long} (setting annotate.max_description_chars)")
    try:
        with chat_llm(settings, llm_url) as llm:
            result = extract_tags(
                llm,
                description,
                TagRules(repair_threshold=a.tag_repair_threshold, max_tags=a.max_tags),
                mode=mode or a.stage1_mode,
                few_shot=a.stage1_few_shot,
            )
    except LLMError as exc:
        raise _fail(f"{type(exc).__name__}: {exc}") from exc
    sys.stdout.write(json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n")
