"""docker-compose.yml and docker-compose.cpu.yml, checked without a Docker engine.

The files validate against the Compose specification's JSON schema (the copy check-jsonschema ships);
the CPU variant is checked as Compose sees it, merged onto the base with the specification's merge rules
(mappings merge, sequences append, ``command``/``entrypoint``/``healthcheck.test`` replace, ``!reset``
removes, ``!override`` replaces) and with ``${VAR}`` interpolated from .env.example. Then the properties a
deployment leans on: every long-running service has a healthcheck and starts after what it needs, GPU
reservations exactly where a model runs on the GPU, pinned images, hardened giqa containers, settings
that exist and validate, and every variable documented in .env.example with no secret in it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import pytest
import yaml

from deploy_checks import ROOT, check_env_name, with_real_secrets
from giqa.settings import Settings

pytestmark = pytest.mark.unit

BASE = ROOT / "docker-compose.yml"
CPU = ROOT / "docker-compose.cpu.yml"
ENV_EXAMPLE = ROOT / ".env.example"
GIQA_IMAGES = ("annotator", "detector", "iqa_filter", "inference", "trainer", "evaluator")
GPU_SERVICES = {
    "vllm",
    "detector",
    "worker-detect",
    "iqa_filter",
    "worker-judge",
    "inference",
    "worker-train",
    "worker-eval",
}
REPLACED_SEQUENCES = {"command", "entrypoint", "test"}


# ------------------------------------------------------------------------------ loading and merging


class Reset:
    """``!reset``: the key is removed from the merged model."""


@dataclass
class Override:
    """``!override``: the value replaces the base's instead of merging with it."""

    value: Any


class ComposeLoader(yaml.SafeLoader):
    pass


ComposeLoader.add_constructor("!reset", lambda _loader, _node: Reset())
ComposeLoader.add_constructor(
    "!override",
    lambda loader, node: Override(
        loader.construct_mapping(node, deep=True)
        if isinstance(node, yaml.MappingNode)
        else loader.construct_sequence(node, deep=True)
        if isinstance(node, yaml.SequenceNode)
        else loader.construct_scalar(node)
    ),
)


def load(path) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=ComposeLoader)  # noqa: S506 - SafeLoader + two tags


def plain(value: Any) -> Any:
    """``value`` with the merge tags resolved as if there were no base (what Compose does for one file)."""
    if isinstance(value, Override):
        return plain(value.value)
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items() if not isinstance(v, Reset)}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def merge(base: Any, over: Any, key: str = "") -> Any:
    if isinstance(over, Override):
        return plain(over.value)
    if isinstance(base, Mapping) and isinstance(over, Mapping):
        out = dict(base)
        for k, v in over.items():
            if isinstance(v, Reset):
                out.pop(k, None)
            else:
                out[k] = merge(out[k], v, k) if k in out else plain(v)
        return out
    if isinstance(base, list) and isinstance(over, list) and key not in REPLACED_SEQUENCES:
        return base + plain(over)
    return plain(over)


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


VAR = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\})")


def referenced_variables(text: str) -> set[str]:
    return {m.group(1) for m in VAR.finditer(text) if m.group(1)}


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}`` and ``$$``."""
    if isinstance(value, Mapping):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if name is None:
            return "$"
        current = env.get(name)
        if op in (":-", ":?") and not current or op in ("-", "?") and current is None:
            if op.endswith("?"):
                raise KeyError(f"{name} is required: {arg}")
            return arg or ""
        return current or ""

    return VAR.sub(one, value)


# Values the required secrets get in these tests (the example leaves them empty on purpose).
TEST_SECRETS = {
    "POSTGRES_PASSWORD": "test-password",
    "MINIO_ROOT_PASSWORD": "test-minio-password",
    "FLOWER_BASIC_AUTH": "operator:test",
}


@pytest.fixture(scope="module")
def variants() -> dict[str, dict[str, Any]]:
    """Each way the stack is started, as Compose would see it: raw (tags resolved) and interpolated."""
    env = env_example() | TEST_SECRETS
    base, cpu = load(BASE), load(CPU)
    models = {"gpu": plain(base), "cpu": merge(base, cpu)}
    return {name: interpolate(model, env) for name, model in models.items()}


def active_services(model: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The services ``docker compose up`` starts (no profile activated)."""
    return {n: s for n, s in model["services"].items() if not s.get("profiles")}


def giqa_services(model: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The active services that run one of the giqa images."""
    return {
        n: s
        for n, s in active_services(model).items()
        if any(f"/{image}:" in s["image"] for image in GIQA_IMAGES)
    }


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


# ------------------------------------------------------------------------------ schema


def compose_schema() -> dict[str, Any]:
    try:
        files = resources.files("check_jsonschema.builtin_schemas.vendor")
    except ModuleNotFoundError:
        pytest.skip("check-jsonschema is not installed (pip install -e '.[dev]'): no Compose schema offline")
    return json.loads((files / "compose-spec.json").read_text())


@pytest.mark.parametrize("variant", ["gpu", "cpu"])
def test_validates_against_the_compose_specification(variants, variant):
    import jsonschema

    schema = compose_schema()
    raw = load(BASE) if variant == "gpu" else merge(load(BASE), load(CPU))
    errors = sorted(
        jsonschema.Draft7Validator(schema).iter_errors(plain(raw)), key=lambda e: list(e.absolute_path)
    )
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_the_override_file_alone_is_a_valid_compose_fragment():
    import jsonschema

    jsonschema.validate(plain(load(CPU)), compose_schema())


def test_the_schema_check_catches_a_wrong_type():
    import jsonschema

    broken = plain(load(BASE))
    broken["services"]["redis"]["helthcheck"] = broken["services"]["redis"].pop("healthcheck")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, compose_schema())


# ------------------------------------------------------------------------------ the variables


def test_every_variable_is_documented_in_env_example():
    documented = env_example()
    lines = ENV_EXAMPLE.read_text().splitlines()
    for path in (BASE, CPU):
        missing = referenced_variables(path.read_text()) - set(documented)
        assert not missing, f"{path.name} uses variables .env.example does not document: {sorted(missing)}"
    for i, line in enumerate(lines):
        if line.strip() and not line.startswith("#"):
            assert i > 0 and lines[i - 1].startswith("#"), f".env.example: {line!r} has no comment above it"


def test_env_example_holds_no_secret():
    for name, value in env_example().items():
        if re.search(r"PASSWORD|SECRET|AUTH|API_KEY$", name):
            assert value == "", f".env.example sets {name}: secrets stay empty there"
        if name.endswith("_KEYS"):
            assert value == "[]", f".env.example sets {name}={value}: keys stay out of the example"


def test_required_secrets_fail_loudly_when_unset():
    env = env_example()
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(plain(load(BASE)), env)


def test_the_cpu_variant_needs_no_gpu_variable():
    """Starting without GPUs must not require model folders or GPU ids to exist."""
    env = {k: v for k, v in (env_example() | TEST_SECRETS).items() if "GPU" not in k and "MODEL" not in k}
    model = interpolate(merge(load(BASE), load(CPU)), env)
    assert model["services"]["detector"]["image"].endswith("/detector:0.1.0")


# ------------------------------------------------------------------------------ start order and health


@pytest.mark.parametrize("variant", ["gpu", "cpu"])
def test_every_long_running_service_has_a_healthcheck(variants, variant):
    services = active_services(variants[variant])
    one_shots = {n for n, s in services.items() if s.get("restart") == "no"}
    for name, service in services.items():
        if name in one_shots:
            assert "healthcheck" not in service, f"{name} is a one-shot: it has nothing to keep checking"
        else:
            test = service.get("healthcheck", {}).get("test")
            assert test and test != ["NONE"], f"{name} has no healthcheck"


@pytest.mark.parametrize("variant", ["gpu", "cpu"])
def test_depends_on_waits_for_health_or_completion(variants, variant):
    services = active_services(variants[variant])
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions, not a bare list"
        for target, spec in depends.items():
            assert target in services, f"{name} depends on {target}, which does not start in {variant}"
            wanted = (
                "service_completed_successfully"
                if services[target].get("restart") == "no"
                else "service_healthy"
            )
            assert spec.get("condition") == wanted, f"{name} -> {target}: condition {spec.get('condition')}"


def test_start_order_of_the_giqa_services(variants):
    services = variants["gpu"]["services"]
    assert set(services["migrate"]["depends_on"]) == {"postgres"}
    assert services["migrate"]["command"] == ["giqa", "db", "upgrade"]
    for name in (
        "annotator",
        "worker-llm",
        "worker-cpu",
        "detector",
        "worker-detect",
        "iqa_filter",
        "worker-judge",
        "trainer",
        "worker-train",
        "evaluator",
        "worker-eval",
    ):
        assert {"migrate", "createbucket", "redis"} <= set(services[name]["depends_on"]), name
    assert "vllm" in services["worker-llm"]["depends_on"]
    assert services["createbucket"]["depends_on"]["minio"]["condition"] == "service_healthy"


def test_services_are_checked_on_ready_and_workers_by_ping(variants):
    for name, service in giqa_services(variants["gpu"]).items():
        test = " ".join(service.get("healthcheck", {}).get("test", []))
        if name == "migrate":
            continue
        if name.startswith("worker-"):
            assert "inspect ping" in test and "celery@$HOSTNAME" in test, name
            assert service.get("stop_grace_period"), f"{name}: killed 10 s after SIGTERM, mid-task"
        else:
            assert test.endswith("/ready"), f"{name}: its healthcheck should ask /ready, got {test!r}"


# ------------------------------------------------------------------------------ GPUs


def gpu_devices(service: Mapping[str, Any]) -> list[dict[str, Any]]:
    return service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])


def test_gpu_reservations_exactly_where_a_model_runs_on_the_gpu(variants):
    services = active_services(variants["gpu"])
    with_gpu = {n for n, s in services.items() if gpu_devices(s)}
    assert with_gpu == GPU_SERVICES
    for name in with_gpu:
        (device,) = gpu_devices(services[name])
        assert device["driver"] == "nvidia" and "gpu" in device["capabilities"], name
    for name in with_gpu - {"vllm"}:
        env = environment(services[name])
        device_setting = env.get("GIQA_PIPELINE__DEVICE") or env.get("GIQA_INFERENCE__DEVICE")
        assert device_setting == "cuda", f"{name} reserves a GPU but runs on {device_setting}"
        assert services[name]["image"].endswith("-cuda"), f"{name} reserves a GPU but runs a CPU image"


def test_the_cpu_variant_has_no_gpu_no_vllm_and_the_embedded_defaults(variants):
    model = variants["cpu"]
    services = active_services(model)
    assert "vllm" not in services and model["services"]["vllm"]["profiles"] == ["vllm"]
    for name, service in services.items():
        assert not gpu_devices(service), f"{name} still reserves a GPU"
        assert "-cuda" not in service.get("image", ""), f"{name} still runs a CUDA image"
        env = environment(service)
        assert "GIQA_LLM__URL" not in env, f"{name} still points at vLLM"
        assert (
            env.get("GIQA_PIPELINE__DEVICE", "cpu") == "cpu"
            and env.get("GIQA_INFERENCE__DEVICE", "cpu") == "cpu"
        )
        for setting in (
            "GIQA_PIPELINE__DETECTOR_MODEL",
            "GIQA_PIPELINE__JUDGE_MODEL",
            "GIQA_INFERENCE__MODEL",
        ):
            assert setting not in env, f"{name} still names a model folder: {setting}"
    for name in ("iqa_filter", "worker-judge"):
        assert environment(services[name])["GIQA_PIPELINE__JUDGE_BACKEND"] == "classical"
    for name in ("detector", "iqa_filter", "inference"):
        assert services[name]["build"]["args"]["TORCH_INDEX_URL"].endswith("/whl/cpu"), name


def test_gpu_workers_run_a_solo_pool_with_their_services_image(variants):
    services = variants["gpu"]["services"]
    for worker, queue, service in (
        ("worker-detect", "detect", "detector"),
        ("worker-judge", "judge", "iqa_filter"),
        ("worker-train", "train", "trainer"),
        ("worker-eval", "eval", "evaluator"),
    ):
        command = services[worker]["command"]
        assert command[:4] == ["giqa", "worker", "--queues", queue] and command[-2:] == ["--pool", "solo"]
        assert services[worker]["image"] == services[service]["image"]
    for worker, queue in (("worker-llm", "llm"), ("worker-cpu", "cpu")):
        assert services[worker]["command"][:4] == ["giqa", "worker", "--queues", queue]
        assert services[worker]["image"] == services["annotator"]["image"]


# ------------------------------------------------------------------------------ images and hardening


@pytest.mark.parametrize("variant", ["gpu", "cpu"])
def test_every_image_is_pinned(variants, variant):
    for name, service in variants[variant]["services"].items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and not tag.startswith("latest"), f"{name}: {image} is not pinned"


def test_giqa_images_are_built_from_the_dockerfile_targets(variants):
    targets = set(re.findall(r"^FROM \S+ AS (\S+)$", (ROOT / "docker/Dockerfile").read_text(), re.M))
    for name, service in variants["gpu"]["services"].items():
        build = service.get("build")
        if build:
            assert build["dockerfile"] == "docker/Dockerfile" and build["target"] in targets, name
            assert service["image"].split("/")[-1].startswith(build["target"] + ":"), name


@pytest.mark.parametrize("variant", ["gpu", "cpu"])
def test_giqa_containers_are_hardened(variants, variant):
    services = giqa_services(variants[variant])
    # migrate, annotator, detector, iqa_filter, inference, trainer, evaluator, 6 workers
    assert len(services) == 13
    for name, service in services.items():
        assert service.get("read_only") is True, f"{name}: root filesystem not read-only"
        assert "/tmp" in service.get("tmpfs", []), f"{name}: no writable /tmp"
        assert service.get("cap_drop") == ["ALL"], f"{name}: capabilities not dropped"
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        for volume in service.get("volumes", []):
            if volume.endswith(":/models:ro") or ":/models" not in volume:
                continue
            pytest.fail(f"{name}: the models volume must be read-only ({volume})")


# ------------------------------------------------------------------------------ settings


@pytest.mark.parametrize("variant", ["gpu", "cpu"])
def test_every_giqa_variable_names_a_setting(variants, variant):
    absent = set()
    for name, service in giqa_services(variants[variant]).items():
        for var in environment(service):
            if not var.startswith("GIQA_"):
                continue
            check = check_env_name(var)
            assert check.status != "unknown", f"{name}: {check.reason}"
            if check.status == "absent-section":
                absent.add(var.split("__")[0])
    if absent:
        pytest.skip(f"settings sections not in this checkout yet (checked after the merge): {sorted(absent)}")


@pytest.mark.parametrize("variant", ["gpu", "cpu"])
def test_each_containers_settings_validate(variants, variant, monkeypatch):
    for name, service in giqa_services(variants[variant]).items():
        env = environment(service)
        for var in list(os.environ):
            if var.startswith("GIQA_"):
                monkeypatch.delenv(var)
        for var, value in env.items():
            monkeypatch.setenv(var, value)
        # as shipped, the API keys default to [] (open): production settings refuse that until they are set
        with pytest.raises(ValueError, match="refused outside development"):
            Settings()
        for var, value in with_real_secrets(env).items():
            monkeypatch.setenv(var, value)
        try:
            settings = Settings()
        except ValueError as exc:
            pytest.fail(f"{name}: its settings do not validate: {exc}")
        assert settings.environment == "production", name
        assert str(settings.data_dir) == "/data" and str(settings.cache_dir) == "/cache", name
