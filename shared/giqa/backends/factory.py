"""The composition root: the one place that maps settings to backends, for the CLI and every service.

Each builder returns a port type (:mod:`giqa.ports`): the chat LLM (a URL's client or the embedded
llama.cpp server), the Stage-2 detector, the Stage-3 judge, the grounded-IQA VLM, the GIQA-Bench judge,
and the annotation pipeline's configuration. No CLI command or service holds composition logic of its own.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from giqa.settings import LLMSettings, PipelineSettings, Settings, http_url

log = logging.getLogger("giqa")

# The demo Grounding DINO trained on GIQA-Synth (MODEL_CARD.md beside it): the default with no detector set.
SHIPPED_DETECTOR = Path(__file__).resolve().parent.parent / "assets" / "detector"


def shipped_detector() -> Path:
    """The demo detector folder; a clear error when an install lacks it (package data left out)."""
    if not (SHIPPED_DETECTOR / "config.json").is_file():
        raise FileNotFoundError(
            f"no detector configured and the shipped demo detector is missing from {SHIPPED_DETECTOR}: "
            "pass --model/--detector or set GIQA_PIPELINE__DETECTOR_MODEL"
        )
    return SHIPPED_DETECTOR


class JudgeConfigError(ValueError):
    """Settings that do not describe a usable judge or detector (e.g. qinstruct without a model path)."""


def _api_key(cfg: PipelineSettings) -> str | None:
    return cfg.services_api_key.get_secret_value() if cfg.services_api_key else None


def _remote_url(url: str | None, configured: str | None, *, local: bool, what: str) -> str | None:
    """The service URL to use, if any (decided): an explicit argument beats the settings, so an explicit
    ``url`` means the service, an explicit local model or backend means in-process even where the
    settings name a service, and both explicit at once is an error."""
    if url and local:
        raise JudgeConfigError(f"give the {what} either as a service URL or as a local model, not both")
    if url:
        return http_url(url)
    return None if local else configured


def make_judge(
    cfg: PipelineSettings,
    *,
    backend: str | None = None,
    model: Path | None = None,
    url: str | None = None,
) -> Any:
    """The configured :class:`giqa.ports.QualityJudge` (``backend``/``model`` override the settings).

    With ``url`` (or ``pipeline.judge_url`` and neither ``backend`` nor ``model``): the HTTP client of that
    iqa_filter service (:class:`giqa.backends.remote.RemoteJudge`); the service's settings choose its judge.
    """
    remote = _remote_url(url, cfg.judge_url, local=backend is not None or model is not None, what="judge")
    if remote:
        from giqa.backends.remote import RemoteJudge

        return RemoteJudge(
            remote,
            api_key=_api_key(cfg),
            timeout_s=cfg.remote_timeout_s,
            max_retries=cfg.remote_max_retries,
        )
    name = backend or cfg.judge_backend
    if name == "classical":
        from giqa.backends.classical import ClassicalJudge

        return ClassicalJudge(cfg.judge_params)
    if name == "qinstruct":
        path = model or cfg.judge_model
        if path is None:
            raise JudgeConfigError("the qinstruct judge needs a model: --model or GIQA_PIPELINE__JUDGE_MODEL")
        from giqa.backends.qinstruct import QInstructJudge

        return QInstructJudge(path, batch_size=cfg.judge_batch_size, device=cfg.device, dtype=cfg.judge_dtype)
    raise JudgeConfigError(f"unknown judge backend {name!r}; expected 'classical' or 'qinstruct'")


def make_detector(
    cfg: PipelineSettings,
    *,
    model: Path | None = None,
    box_threshold: float | None = None,
    text_threshold: float | None = None,
    url: str | None = None,
) -> Any:
    """The configured :class:`giqa.ports.Detector` (Grounding DINO from a local folder); the keyword
    arguments, when given, override the settings. With no model given or configured, the shipped demo
    detector (:func:`shipped_detector`).

    With ``url`` (or ``pipeline.detector_url`` and no ``model``): the HTTP client of that detector service
    (:class:`giqa.backends.remote.RemoteDetector`); thresholds given here are sent with every request,
    else the service's settings apply.
    """
    remote = _remote_url(url, cfg.detector_url, local=model is not None, what="detector")
    if remote:
        from giqa.backends.remote import RemoteDetector

        return RemoteDetector(
            remote,
            api_key=_api_key(cfg),
            timeout_s=cfg.remote_timeout_s,
            max_retries=cfg.remote_max_retries,
            box_threshold=box_threshold,
            text_threshold=text_threshold,
        )
    path = model or cfg.detector_model
    if path is None:
        path = shipped_detector()
        logging.getLogger("giqa").warning(
            "no detector configured: using the shipped demo Grounding DINO (GIQA-Synth shapes only, "
            "box recall 0.18; %s/MODEL_CARD.md); set GIQA_PIPELINE__DETECTOR_MODEL for real photos",
            path,
        )
    from giqa.backends.gdino import GroundingDinoDetector

    return GroundingDinoDetector(
        path,
        box_threshold=cfg.box_threshold if box_threshold is None else box_threshold,
        text_threshold=cfg.text_threshold if text_threshold is None else text_threshold,
        nms_iou=cfg.detector_nms_iou,
        max_detections=cfg.max_detections,
        batch_size=cfg.detector_batch_size,
        device=cfg.device,
    )


# The shipped demo grounded-IQA VLM (a tiny LLaVA trained on GIQA-Synth; see its MODEL_CARD.md).
SHIPPED_VLM = Path(__file__).resolve().parent.parent / "assets" / "vlm"


def make_vlm(
    model: str | Path | None = None,
    *,
    device: str = "cpu",
    dtype: str | None = None,
    served_model: str | None = None,
    concurrency: int = 4,
) -> Any:
    """The :class:`giqa.ports.GroundedVLM` for ``model``: an OpenAI-compatible ``/v1`` URL (vLLM), a local
    LLaVA-1.5/1.6 checkpoint folder, or, with nothing given, the shipped demo VLM."""
    if model is None:
        if not (SHIPPED_VLM / "config.json").is_file():
            raise JudgeConfigError(
                f"no model given and no shipped demo VLM at {SHIPPED_VLM}: pass a checkpoint folder or URL"
            )
        model = SHIPPED_VLM
    if isinstance(model, str) and model.startswith(("http://", "https://")):
        from giqa.predict.remote import OpenAIVisionVLM

        return OpenAIVisionVLM.connect(model, model=served_model, concurrency=concurrency)
    from giqa.models.llava import detect_arch
    from giqa.predict.local import TransformersVLM

    detect_arch(model)  # a clear CheckpointError before torch is imported
    return TransformersVLM(model, device=device, dtype=dtype)


@contextlib.contextmanager
def make_chat_llm(
    settings: Settings,
    *,
    url: str | None = None,
    llm: LLMSettings | None = None,
    embedded: bool = False,
    handle_signals: bool = True,
) -> Iterator[Any]:
    """The :class:`giqa.ports.ChatLLM`: a client of ``url`` (else ``llm.url``, else the settings'), checked
    to answer before any work starts (:class:`giqa.llm.errors.LLMUnavailableError` when it does not), or,
    with no URL or ``embedded=True``, the embedded llama.cpp server started here and always stopped.
    ``handle_signals`` turns SIGTERM/SIGHUP into a clean exit so the embedded server never outlives its
    parent (the CLI's choice; a worker with its own signal handling passes False)."""
    from giqa.llm.client import OpenAIChatClient
    from giqa.llm.errors import LLMUnavailableError

    cfg = llm or settings.llm
    target = None if embedded else (url or cfg.url)
    if target:
        client = OpenAIChatClient.from_settings(cfg, url=target)
        health = client.health()
        if not health.ok:  # refuse up front rather than fail every sample after its retries
            client.close()
            raise LLMUnavailableError(f"the LLM server at {target} does not answer: {health.detail}")
        try:
            yield client
        finally:
            client.close()
        return
    with _embedded_llm(cfg, handle_signals) as (_server, client):
        yield client


@contextlib.contextmanager
def _embedded_llm(cfg: LLMSettings, handle_signals: bool = True) -> Iterator[tuple[Any, Any]]:
    from giqa.llm.server import EmbeddedLLMServer
    from giqa.llm.signals import exit_on_signals

    log.info("no LLM URL configured: starting the embedded SmolLM2-135M server")
    signals = exit_on_signals() if handle_signals else contextlib.nullcontext()
    with signals, EmbeddedLLMServer.from_settings(cfg) as server:
        client = server.client_from_settings(cfg)
        try:
            yield server, client
        finally:
            client.close()


@contextlib.contextmanager
def make_bench_judge(
    settings: Settings,
    *,
    url: str | None = None,
    embedded: bool = False,
    cache_dir: Path | None = None,
    concurrency: int | None = None,
    overrides: dict[str, Any] | None = None,
) -> Iterator[Any]:
    """The GIQA-Bench LLM judge (:class:`giqa.evaluation.judge.Judge`) over :func:`make_chat_llm`, with its
    score cache (``cache_dir``, else settings ``eval.judge_cache_dir``); ``overrides`` replace fields of the
    ``llm`` settings (model name, dialect) for the judge alone."""
    from giqa.evaluation.cache import JudgeCache
    from giqa.evaluation.judge import Judge
    from giqa.settings import judge_cache_dir

    llm = settings.llm.model_copy(update={k: v for k, v in (overrides or {}).items() if v is not None})
    cache = JudgeCache(cache_dir or judge_cache_dir(settings))
    workers = concurrency or settings.eval.judge_concurrency
    target = None if embedded else (url or llm.url)
    try:
        if target:
            with make_chat_llm(settings, url=target, llm=llm) as client:
                yield Judge(client, cache=cache, concurrency=workers, url=target)
            return
        with _embedded_llm(llm) as (server, client):
            gguf = server.model_path.name if server.model_path else "embedded"
            yield Judge(
                client, cache=cache, concurrency=workers, url=server.url, model_id=f"llama.cpp/{gguf}"
            )
    finally:
        cache.close()


def annotate_config(settings: Settings, form: str | None = None) -> Any:
    """The annotation pipeline's :class:`giqa.pipeline.run.AnnotateConfig` from settings: Stage-1 rules,
    VQA rules on the settings' grid (``grid_n`` × ``grid_m``), Stage-3 thresholds; ``form`` overrides
    ``pipeline.box_form``."""
    from giqa.pipeline.refine import RefineConfig
    from giqa.pipeline.run import AnnotateConfig
    from giqa.pipeline.tags import TagRules
    from giqa.pipeline.vqa import VQARules

    a, p = settings.annotate, settings.pipeline
    return AnnotateConfig(
        tag_rules=TagRules(repair_threshold=a.tag_repair_threshold, max_tags=a.max_tags),
        vqa_rules=VQARules(
            max_answer_words=a.vqa_max_answer_words,
            template_fill=a.vqa_template_fill,
            form=form or p.box_form,  # type: ignore[arg-type]
            n=settings.grid_n,
            m=settings.grid_m,
        ),
        refine=RefineConfig(p.keep_threshold, p.area_threshold, p.overlap_threshold),
        stage1_mode=a.stage1_mode,
        stage1_few_shot=a.stage1_few_shot,
        seed=a.seed,
        max_image_pixels=p.max_image_pixels,
    )
