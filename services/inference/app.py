"""The inference service: grounded image-quality answers for apps, over the shared service scaffolding.

``POST /v1/assess`` (GIQA-DES: what is wrong and where, as text, boxes and masks), ``POST /v1/ask`` (GIQA-VQA
with optional referring regions, P(Yes) for yes/no questions), ``POST /v1/score`` (a 1-5 score the Q-Align
way), the OpenAI-compatible ``POST /v1/chat/completions`` and ``GET /v1/models``, and a playground page at
``/``. Images arrive as a multipart upload (field ``image``) or base64 in JSON (field ``image``); never a
URL the service would fetch.

The model loads in a background thread at start-up (``/health`` answers at once, ``/ready`` 503 until the
model is loaded and warmed up); every model call goes through the :class:`DynamicBatcher`.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from giqa.backends.images import ImageError, ImageTooLarge, decode_image
from giqa.client.contract import (
    AskRequest,
    AskResponse,
    AssessRequest,
    AssessResponse,
    ChatAnswer,
    ChatChoice,
    ChatLogprobs,
    ChatRequest,
    ChatResponse,
    ImagePart,
    ModelCard,
    ModelList,
    ScoreRequest,
    ScoreResponse,
    TextPart,
    Timings,
    TokenLogprob,
    TopLogprob,
    Usage,
)
from giqa.grounded_text import parse_text, strip_coordinates
from giqa.ports import Health
from giqa.questions import des_questions
from giqa.service import ServiceError, create_app, require_key
from giqa.settings import InferenceSettings, Settings
from giqa.wire import ErrorBody
from services.inference import answers
from services.inference.batching import DynamicBatcher, Outcome
from services.inference.engine import BackendError, Engine, build_engine, run_batch

log = logging.getLogger("giqa.inference")
STATIC = Path(__file__).resolve().parent / "static"
IMAGE_PREFIXES = ("images/", "uploads/")  # what image_key may name: never checkpoints, datasets, reports
M = TypeVar("M", bound=BaseModel)
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": what}
    for code, what in (
        (400, "the image cannot be read"),
        (401, "a missing or wrong API key"),
        (413, "the body or the image's pixel count is over the limit"),
        (502, "the model server behind the service failed (vllm backend)"),
        (415, "neither multipart/form-data nor application/json"),
        (503, "the model is loading, or the queue is full (see Retry-After)"),
        (504, "the request ran past the time limit"),
    )
}


class InferenceState:
    """What the app holds: the engine once loaded, the batcher, and why it is not ready if it is not."""

    def __init__(self, settings: Settings, engine_factory: Callable[[], Engine]) -> None:
        self.settings = settings
        self.cfg = settings.inference
        self.engine_factory = engine_factory
        self.engine: Engine | None = None
        self.batcher: DynamicBatcher | None = None
        self.ready = threading.Event()
        self.failure = ""
        self.started = int(time.time())
        self.des_question = des_questions("grid", settings.grid_n, settings.grid_m)[0]

    def health(self) -> Health:
        if self.failure:
            return Health(False, f"the model failed to load: {self.failure}")
        if not self.ready.is_set() or self.engine is None:
            return Health(False, "loading the model")
        return Health(True, f"{self.engine.model_name} loaded ({self.cfg.backend})")

    def load(self) -> None:
        """Build the engine and warm it up (runs in a thread so /health answers meanwhile)."""
        try:
            engine = self.engine_factory()
            if self.cfg.warmup:
                probe = Image.new("RGB", (64, 64), (128, 128, 128))
                engine.generate([(probe, self.des_question)], 4)
                engine.word_probs([(probe, answers.SCORE_QUESTION, answers.SCORE_PREFIX)], ("good",))
            self.engine = engine
            self.ready.set()
            log.info("inference model %s ready", engine.model_name)
        except Exception as exc:  # reported by /ready; the service stays up to say so
            log.exception("the inference model failed to load")
            self.failure = f"{type(exc).__name__}: {exc}"

    def require_engine(self) -> tuple[Engine, DynamicBatcher]:
        if self.engine is None or self.batcher is None or not self.ready.is_set():
            health = self.health()
            raise ServiceError(
                503,
                f"the model is not ready ({health.detail}); retry when /ready answers 200",
                headers={"Retry-After": "5"},
            )
        return self.engine, self.batcher


def _run(state: InferenceState, key: Any, payloads: Any) -> Any:
    assert state.engine is not None
    return run_batch(state.engine, key, payloads)


def resolved(settings: Settings) -> InferenceSettings:
    """The inference settings with a ``checkpoint:<name>`` model resolved to a folder here: a checkpoint a
    training job registered (:func:`giqa.infra.checkpoints.local_checkpoint`: the trainer's folder when it
    is on this machine, else fetched once from the object store); served under its name by default."""
    cfg = settings.inference
    if not (cfg.model or "").startswith("checkpoint:"):
        return cfg
    from giqa.infra.checkpoints import UnknownCheckpoint, local_checkpoint
    from giqa.infra.db import engine_from_settings, make_sessionmaker, session_scope
    from giqa.infra.storage import make_store

    name = (cfg.model or "")[len("checkpoint:") :]
    engine = engine_from_settings(settings)
    try:
        factory = make_sessionmaker(engine)
        folder = local_checkpoint(
            settings, name, sessions=lambda: session_scope(factory), store=make_store(settings)
        )
    except UnknownCheckpoint as exc:
        raise ValueError(f"GIQA_INFERENCE__MODEL: {exc}") from exc
    finally:
        engine.dispose()
    return cfg.model_copy(update={"model": str(folder), "served_model_name": cfg.served_model_name or name})


def load_backend(settings: Settings) -> Engine:
    """The configured model backend, loaded (``giqa serve``'s convention: called before the port opens, so
    a bad model path is a one-line error)."""
    return build_engine(resolved(settings))


def create_app_from_settings(
    settings: Settings,
    *,
    backend: Engine | None = None,
    engine_factory: Callable[[], Engine] | None = None,
) -> FastAPI:
    """The inference app for ``settings``. With ``backend`` (already loaded, :func:`load_backend`) the app
    only warms it up at start; otherwise the model loads when the app starts, in a thread, while /health
    answers and /ready says 503 (run it under uvicorn or a TestClient context). ``engine_factory``
    replaces :func:`build_engine`."""
    cfg = settings.inference
    if backend is not None:
        engine_factory = lambda: backend  # noqa: E731
    state = InferenceState(settings, engine_factory or (lambda: build_engine(resolved(settings))))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher = DynamicBatcher(
            lambda key, payloads: _run(state, key, payloads),
            max_batch_size=cfg.max_batch_size,
            batch_wait_ms=cfg.batch_wait_ms,
            queue_size=cfg.queue_size,
            registry=app.state.metrics.registry,
        )
        await batcher.start()
        state.batcher = batcher
        loader = threading.Thread(target=state.load, name="giqa-model-load", daemon=True)
        loader.start()
        try:
            yield
        finally:
            await batcher.stop()
            loader.join(timeout=60)
            close = getattr(state.engine, "close", None)
            if callable(close):
                close()

    app = create_app(
        name="inference",
        settings=settings.service,
        ready=state.health,
        lifespan=lifespan,
        description="Grounded image quality: descriptions with boxes and masks, questions, scores.",
    )
    app.state.inference = state
    api = [Depends(require_key("api", settings.service))]
    n, m = settings.grid_n, settings.grid_m

    async def read_request(request: Request, model: type[M]) -> tuple[M, Image.Image]:
        """The request's fields as ``model`` and its decoded image (multipart upload or base64 in JSON)."""
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "application/json":
            try:
                raw = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ServiceError(400, f"the body is not valid JSON: {exc}") from None
            fields = _validated(model, raw)
            image_b64 = getattr(fields, "image", None)
            data = _b64(image_b64) if image_b64 is not None else await stored(fields)
        elif kind in ("multipart/form-data", "application/x-www-form-urlencoded"):  # (the latter: image_key)
            form = await request.form(max_files=1, max_fields=16)
            raw_fields: dict[str, Any] = {}
            upload: Any = None
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    if name != "image":
                        raise ServiceError(400, f"unexpected file field {name!r}; send the image as 'image'")
                    upload = value
                elif name == "regions":
                    try:
                        raw_fields[name] = json.loads(value)
                    except json.JSONDecodeError as exc:
                        raise ServiceError(400, f"regions is not a JSON list: {exc}") from None
                else:
                    raw_fields[name] = value
            if upload is None and "image_key" not in raw_fields:
                raise RequestValidationError(
                    [{"loc": ("body", "image"), "msg": "Field required (a file upload)", "type": "missing"}]
                )
            if upload is not None:
                raw_fields["image"] = "upload"
            fields = _validated(model, raw_fields)
            data = await upload.read() if upload is not None else await stored(fields)
        else:
            raise ServiceError(
                415,
                f"content type {kind or '(none)'!r} is not accepted: send multipart/form-data with an "
                "'image' file or application/json with base64 'image'",
            )
        try:
            image = await run_in_threadpool(decode_image, data, cfg.max_image_pixels, where="the image")
        except ImageTooLarge as exc:
            raise ServiceError(
                413, f"{exc} (setting inference.max_image_pixels)", code="payload_too_large"
            ) from None
        except ImageError as exc:
            raise ServiceError(400, str(exc), code="invalid_image") from None
        return fields, image

    async def submit(batcher: DynamicBatcher, key: Any, payload: Any) -> Outcome:
        try:
            return await batcher.submit(key, payload)
        except BackendError as exc:
            raise ServiceError(502, str(exc), code="backend_error") from None

    async def stored(fields: Any) -> bytes:
        """The bytes of ``fields.image_key`` from the configured object store (images/ or uploads/ only)."""
        key = str(fields.image_key)
        if not key.startswith(IMAGE_PREFIXES):
            raise ServiceError(
                400, f"image_key must name an image under {' or '.join(IMAGE_PREFIXES)}, got {key!r}"
            )
        from giqa.infra.storage import InvalidKey, NotFound, StorageError, make_store

        def fetch() -> bytes:
            store = make_store(settings, ensure_bucket=False)
            size = store.stat(key).size
            if size > settings.service.max_body_bytes:
                raise ServiceError(
                    413,
                    f"the stored image is {size:,} bytes, over the limit of "
                    f"{settings.service.max_body_bytes:,} (setting service.max_body_bytes)",
                    code="payload_too_large",
                )
            return store.get_bytes(key)

        try:
            return await run_in_threadpool(fetch)
        except NotFound:
            raise ServiceError(404, f"no object {key!r} in the object store", code="not_found") from None
        except InvalidKey as exc:
            raise ServiceError(400, str(exc)) from None
        except StorageError as exc:
            raise ServiceError(
                503 if exc.retryable else 502, f"the object store failed: {exc}", code="backend_error"
            ) from None

    def timings(started: float, outcomes: list[Outcome]) -> Timings:
        return Timings(
            queue_ms=round(sum(o.queue_s for o in outcomes) * 1000, 2),
            model_ms=round(sum(o.model_s for o in outcomes) * 1000, 2),
            total_ms=round((time.perf_counter() - started) * 1000, 2),
            batch_size=outcomes[-1].batch_size,
        )

    def max_tokens(asked: int | None) -> int:
        return min(asked or cfg.max_new_tokens, cfg.max_new_tokens)

    @app.post(
        "/v1/assess",
        response_model=AssessResponse,
        dependencies=api,
        tags=["iqa"],
        responses=ERRORS,
        summary="describe the image's quality and ground each object that affects it",
    )
    async def assess(request: Request) -> AssessResponse:
        started = time.perf_counter()
        engine, batcher = state.require_engine()
        body, image = await read_request(request, AssessRequest)
        question = state.des_question
        out = await submit(batcher, ("generate", max_tokens(body.max_new_tokens)), (image, question))
        text: str = out.value
        parsed = parse_text(text, n, m)
        width, height = image.size
        objects = answers.grounded_objects(text, parsed, width, height, n, m)
        masks = answers.masks_for(objects, width, height, body.mask_format) if body.mask else None
        return AssessResponse(
            model=engine.model_name,
            question=question,
            description=text,
            text=strip_coordinates(text),
            objects=objects,
            masks=masks,
            problems=[f"{p.reason}: {p.text}" for p in parsed.problems],
            image_size=[width, height],
            grid=[n, m],
            timings=timings(started, [out]),
        )

    @app.post(
        "/v1/ask",
        response_model=AskResponse,
        dependencies=api,
        tags=["iqa"],
        responses=ERRORS,
        summary="answer a question about the image's quality, optionally about given regions",
    )
    async def ask(request: Request) -> AskResponse:
        started = time.perf_counter()
        engine, batcher = state.require_engine()
        body, image = await read_request(request, AskRequest)
        question = answers.referring_question(body.question, body.regions, n, m)
        out = await submit(batcher, ("generate", max_tokens(body.max_new_tokens)), (image, question))
        text: str = out.value
        outcomes = [out]
        yes, probability = None, None
        if answers.is_yes_no(body.question):
            prefix = answers.yes_no_prefix(text)
            probs = await submit(batcher, ("words", answers.YES_NO), (image, question, prefix))
            outcomes.append(probs)
            probability = round(answers.p_yes(probs.value), 6)
            yes = probability >= 0.5
        width, height = image.size
        return AskResponse(
            model=engine.model_name,
            question=question,
            answer=text,
            text=strip_coordinates(text),
            objects=answers.grounded_objects(text, parse_text(text, n, m), width, height, n, m),
            yes=yes,
            p_yes=probability,
            timings=timings(started, outcomes),
        )

    @app.post(
        "/v1/score",
        response_model=ScoreResponse,
        dependencies=api,
        tags=["iqa"],
        responses=ERRORS,
        summary="an overall quality score 1-5 (probability-weighted level words, Q-Align)",
    )
    async def score(request: Request) -> ScoreResponse:
        started = time.perf_counter()
        engine, batcher = state.require_engine()
        _body, image = await read_request(request, ScoreRequest)
        words = tuple(word for word, _ in answers.LEVELS)
        out = await submit(batcher, ("words", words), (image, answers.SCORE_QUESTION, answers.SCORE_PREFIX))
        value, levels = answers.qalign_score(out.value)
        return ScoreResponse(
            model=engine.model_name,
            score=round(value, 4),
            levels={k: round(v, 6) for k, v in levels.items()},
            timings=timings(started, [out]),
        )

    @app.get("/v1/models", response_model=ModelList, dependencies=api, tags=["openai"])
    def models() -> ModelList:
        engine, _ = state.require_engine()
        return ModelList(data=[ModelCard(id=engine.model_name, created=state.started)])

    @app.post(
        "/v1/chat/completions",
        response_model=ChatResponse,
        dependencies=api,
        tags=["openai"],
        responses=ERRORS,
        summary="OpenAI-compatible chat: one image (data URL) and a question",
    )
    async def chat(body: ChatRequest) -> ChatResponse:
        engine, batcher = state.require_engine()
        if body.stream:
            raise ServiceError(400, "streaming is not offered; send stream=false")
        if body.model != engine.model_name:
            raise ServiceError(
                404,
                f"model {body.model!r} is not served here; GET /v1/models lists {engine.model_name!r}",
                code="not_found",
            )
        question, prefix, data = _chat_input(body)
        try:
            image = await run_in_threadpool(decode_image, data, cfg.max_image_pixels, where="the image_url")
        except ImageTooLarge as exc:
            raise ServiceError(413, str(exc), code="payload_too_large") from None
        except ImageError as exc:
            raise ServiceError(400, str(exc), code="invalid_image") from None
        limit = max_tokens(body.max_completion_tokens or body.max_tokens)
        logprobs = None
        if body.logprobs:  # the next token's distribution (how vLLM clients read scores and P(Yes))
            if limit != 1:
                raise ServiceError(400, "logprobs are offered with max_tokens=1 only (the next token)")
            out = await submit(batcher, ("top", max(1, body.top_logprobs or 0)), (image, question, prefix))
            top: list[tuple[str, float]] = out.value
            text = top[0][0]
            logprobs = ChatLogprobs(
                content=[
                    TokenLogprob(
                        token=text,
                        logprob=top[0][1],
                        bytes=list(text.encode()),
                        top_logprobs=[
                            TopLogprob(token=t, logprob=lp, bytes=list(t.encode()))
                            for t, lp in top[: body.top_logprobs or 0]
                        ],
                    )
                ]
            )
            completion = 1
        else:
            out = await submit(batcher, ("generate", limit), (image, question))
            text = out.value
            completion = engine.count_tokens(text)
        prompt = engine.count_tokens(question + " " + prefix)
        return ChatResponse(
            id="chatcmpl-" + uuid.uuid4().hex,
            created=int(time.time()),
            model=engine.model_name,
            choices=[
                ChatChoice(
                    index=0,
                    message=ChatAnswer(content=text),
                    finish_reason="length" if completion >= limit else "stop",
                    logprobs=logprobs,
                )
            ],
            usage=Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion),
        )

    @app.get("/", include_in_schema=False)
    def playground() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _validated(model: type[M], raw: Any) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors = [dict(e, loc=("body", *e["loc"])) for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def _b64(value: str) -> bytes:
    """Base64 (or a data: URL holding base64) to bytes; a clear 400 otherwise."""
    text = value.strip()
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        if not header.endswith(";base64"):
            raise ServiceError(
                400, "a data URL image must be base64 (data:image/png;base64,...)", code="invalid_image"
            )
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ServiceError(400, f"the image is not valid base64: {exc}", code="invalid_image") from None


def _chat_input(body: ChatRequest) -> tuple[str, str, bytes]:
    """(question, answer prefix, image bytes) of a single-turn chat: one image as a data URL, the user's
    text parts, and with vLLM's ``continue_final_message`` the final assistant message to continue."""
    messages = list(body.messages)
    prefix = ""
    if body.continue_final_message:
        if body.add_generation_prompt is not False:  # vLLM's default is true
            raise ServiceError(
                400, "continue_final_message and add_generation_prompt cannot both be true (set it false)"
            )
        if messages[-1].role != "assistant" or not isinstance(messages[-1].content, str):
            raise ServiceError(400, "continue_final_message needs a final assistant message (plain text)")
        if not body.logprobs:
            raise ServiceError(400, "continue_final_message is offered with logprobs and max_tokens=1 only")
        prefix = str(messages.pop().content)
    if any(message.role == "assistant" for message in messages):
        raise ServiceError(400, "this model answers single-turn questions: send no assistant messages")
    texts: list[str] = []
    images: list[str] = []
    for message in messages:
        parts = (
            [TextPart(type="text", text=message.content)]
            if isinstance(message.content, str)
            else message.content
        )
        for part in parts:
            if isinstance(part, ImagePart):
                images.append(part.image_url.url)
            elif message.role == "user" and part.text.strip():
                texts.append(part.text.strip())
    if len(images) != 1:
        raise ServiceError(400, f"send exactly one image as an image_url content part (got {len(images)})")
    if not images[0].startswith("data:"):
        raise ServiceError(
            400,
            "image_url must be a data: URL (data:image/png;base64,...); the service fetches no URLs",
            code="invalid_image",
        )
    if not texts:
        raise ServiceError(400, "the user message has no text: ask a question about the image")
    return "\n".join(texts), prefix, _b64(images[0])


def app() -> FastAPI:
    """The app from the environment's settings: ``uvicorn services.inference.app:app --factory``."""
    from giqa.settings import get_settings

    return create_app_from_settings(get_settings())
