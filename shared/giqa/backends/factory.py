"""Building the Stage-2/3 backends from settings: the one place that maps configuration to a backend."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from giqa.settings import PipelineSettings

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


def make_judge(cfg: PipelineSettings, *, backend: str | None = None, model: Path | None = None) -> Any:
    """The configured :class:`giqa.ports.QualityJudge` (``backend``/``model`` override the settings)."""
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
) -> Any:
    """The configured :class:`giqa.ports.Detector` (Grounding DINO from a local folder); the keyword
    arguments, when given, override the settings. With no model given or configured, the shipped demo
    detector (:func:`shipped_detector`)."""
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
