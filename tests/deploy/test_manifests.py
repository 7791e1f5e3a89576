"""The Kubernetes manifests (k8s/), rendered by kustomize and checked offline.

Every overlay renders with ``kubectl kustomize`` (skipped with a message where kubectl is missing) and
every object validates against the Kubernetes JSON schemas ``kubernetes-validate`` bundles (KEDA's
ScaledObject, a custom resource, is checked by shape). Then what a deployment leans on: non-root,
read-only pods without capabilities, both probes and resources on every long-running container, GPUs
exactly where a model runs on the GPU in gpu-cluster and nowhere in dev, NetworkPolicies whose selectors
match real pods and let only the annotator and its workers reach the detector and the judge, Services that
find their pods, no Secret committed, pinned images, and settings that exist and validate.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from typing import Any

import pytest
import yaml

from deploy_checks import ROOT, check_env_name, tool, with_real_secrets
from giqa.settings import Settings

pytestmark = pytest.mark.unit

K8S = ROOT / "k8s"
OVERLAYS = ("dev", "gpu-cluster", "gpu-cluster-keda")
KUBERNETES_VERSION = "1.32"  # the oldest release the manifests target (HPA v2, PDB v1, seccompProfile)
GPU_WORKLOADS = {
    "detector",
    "iqa-filter",
    "inference",
    "worker-detect",
    "worker-judge",
    "vllm",
    "worker-train",
    "worker-eval",
}
CUSTOM_KINDS = {("keda.sh/v1alpha1", "ScaledObject")}
QUEUES = {"llm", "cpu", "detect", "judge", "train", "eval"}
MODEL_CALLERS = {"annotator", "worker"}  # app.kubernetes.io/component of who may call detector/iqa-filter
POD_KINDS = {"Deployment", "Job", "StatefulSet", "DaemonSet"}
API_CALLERS = {"Deployment/trainer"}  # pods that call the Kubernetes API (the trainer's kubernetes launcher)
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


@functools.cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    kubectl = tool("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the kustomize renders cannot be checked here")
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"kubectl kustomize k8s/overlays/{overlay}:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


@pytest.fixture(params=OVERLAYS)
def overlay(request) -> str:
    return request.param


def of_kind(objects: Iterable[Mapping[str, Any]], *kinds: str) -> list[Mapping[str, Any]]:
    return [o for o in objects if o["kind"] in kinds]


def by_name(objects: Iterable[Mapping[str, Any]], kind: str) -> dict[str, Mapping[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def pod_templates(objects: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """``Kind/name`` -> the pod template of every workload."""
    return {
        f"{o['kind']}/{o['metadata']['name']}": o["spec"]["template"] for o in of_kind(objects, *POD_KINDS)
    }


def containers(template: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [*template["spec"].get("initContainers", []), *template["spec"]["containers"]]


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions) against a pod's labels."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


# ------------------------------------------------------------------------------ rendering and schemas


def validate(objects: Iterable[Mapping[str, Any]]) -> list[str]:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed (pip install -e '.[dev]')"
    )
    problems = []
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(str(p) for p in exc.absolute_path)
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message}")
    return problems


def test_every_overlay_renders_and_validates(overlay):
    objects = render(overlay)
    assert len(objects) > 20
    assert validate(objects) == []


@pytest.mark.parametrize("path", ["jobs/place-weights.yaml", "base/secret.example.yaml"])
def test_the_manifests_outside_the_overlays_validate(path):
    assert validate(yaml.safe_load_all((K8S / path).read_text())) == []


def test_the_schema_check_catches_a_wrong_type():
    deployment = dict(by_name(render("dev"), "Deployment")["annotator"])
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["replicas"] = "two"
    assert any("replicas" in p for p in validate([broken]))


def test_keda_scaled_objects_fit_their_workers():
    objects = render("gpu-cluster-keda")
    deployments = by_name(objects, "Deployment")
    scaled = of_kind(objects, "ScaledObject")
    assert {s["metadata"]["name"] for s in scaled} == {f"worker-{q}" for q in QUEUES}
    settings = next(iter(by_name(objects, "ConfigMap").values()))["data"]
    broker = re.match(r"redis://([^/]+)/(\d+)$", settings["GIQA_QUEUE__BROKER_URL"])
    assert broker, settings["GIQA_QUEUE__BROKER_URL"]
    assert settings["KEDA_REDIS_ADDRESS"] == broker.group(1), "KEDA watches another Redis than the broker"
    for so in scaled:
        spec = so["spec"]
        target = deployments[spec["scaleTargetRef"]["name"]]
        queue = target["spec"]["template"]["metadata"]["labels"]["giqa.io/queue"]
        (trigger,) = spec["triggers"]
        meta = trigger["metadata"]
        assert trigger["type"] == "redis" and meta["listName"] == queue
        assert meta["databaseIndex"] == broker.group(2)
        assert meta["addressFromEnv"] == "KEDA_REDIS_ADDRESS"
        assert int(meta["listLength"]) > 0 and 0 <= spec["minReplicaCount"] < spec["maxReplicaCount"]
        if queue in ("detect", "judge"):
            assert spec["minReplicaCount"] >= 1, (
                "a GPU worker scaled to zero reloads its model on every burst"
            )


# ------------------------------------------------------------------------------ pods


def test_every_pod_is_non_root_read_only_and_without_capabilities(overlay):
    for name, template in pod_templates(render(overlay)).items():
        spec = template["spec"]
        pod = spec.get("securityContext", {})
        assert pod.get("runAsNonRoot") is True and pod.get("runAsUser", 0) > 0, f"{name}: may run as root"
        assert pod.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        if name in API_CALLERS:  # the kubernetes launcher creates Jobs: its own account, namespaced rights
            assert spec.get("automountServiceAccountToken") is True and spec["serviceAccountName"] != "giqa"
        else:
            token = spec.get("automountServiceAccountToken")
            assert token is False, f"{name}: mounts an API token it never uses"
        for c in containers(template):
            sc = c.get("securityContext", {})
            assert sc.get("readOnlyRootFilesystem") is True, f"{name}/{c['name']}: writable root filesystem"
            assert sc.get("allowPrivilegeEscalation") is False, f"{name}/{c['name']}"
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], f"{name}/{c['name']}: capabilities kept"
            assert "runAsUser" not in sc or sc["runAsUser"] > 0, f"{name}/{c['name']}"


def test_the_trainer_may_only_manage_training_jobs_in_its_namespace(overlay):
    objects = render(overlay)
    assert not of_kind(objects, "ClusterRole", "ClusterRoleBinding")
    (role,) = of_kind(objects, "Role")
    (binding,) = of_kind(objects, "RoleBinding")
    account = pod_templates(objects)["Deployment/trainer"]["spec"]["serviceAccountName"]
    (subject,) = binding["subjects"]
    assert (subject["kind"], subject["name"]) == ("ServiceAccount", account)
    assert subject.get("namespace") == role["metadata"].get("namespace")  # kustomize sets both alike
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    granted = {(g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    assert granted == {("batch", "jobs"), ("", "services"), ("kubeflow.org", "pytorchjobs")}
    assert all("*" not in rule["verbs"] for rule in role["rules"])


def test_giqa_pods_write_only_to_scratch_volumes(overlay):
    for name, template in pod_templates(render(overlay)).items():
        volumes = {v["name"]: v for v in template["spec"].get("volumes", [])}
        for c in containers(template):
            if not c["image"].split("/")[-1].startswith(("annotator", "detector", "iqa_filter", "inference")):
                continue
            mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
            assert "/tmp" in mounts and "emptyDir" in volumes[mounts["/tmp"]["name"]], f"{name}: no /tmp"
            if "/models" in mounts and name != "Job/giqa-place-weights":
                assert mounts["/models"].get("readOnly") is True, f"{name}: models mounted writable"


def test_every_container_has_requests_and_limits(overlay):
    for name, template in pod_templates(render(overlay)).items():
        for c in containers(template):
            resources = c.get("resources", {})
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(kind, {})), f"{name}/{c['name']}: no {kind}"


def test_every_long_running_container_has_liveness_and_readiness(overlay):
    objects = render(overlay)
    services = of_kind(objects, "Service")
    for deployment in of_kind(objects, "Deployment"):
        name, template = deployment["metadata"]["name"], deployment["spec"]["template"]
        labels = template["metadata"]["labels"]
        exposed = any(selects({"matchLabels": s["spec"]["selector"]}, labels) for s in services)
        for c in template["spec"]["containers"]:
            assert "livenessProbe" in c and "readinessProbe" in c, f"{name}/{c['name']}: a probe is missing"
            image = c["image"].split("/")[-1]
            if exposed and image.startswith(("annotator", "detector", "iqa_filter", "inference")):
                assert c["livenessProbe"]["httpGet"]["path"] == "/health", name
                assert c["readinessProbe"]["httpGet"]["path"] == "/ready", name
                assert c["startupProbe"]["httpGet"]["path"] == "/health", (
                    f"{name}: a slow model load kills it"
                )


def test_services_run_their_command_and_workers_their_queue(overlay):
    for deployment in of_kind(render(overlay), "Deployment"):
        template = deployment["spec"]["template"]
        labels = template["metadata"]["labels"]
        (c,) = template["spec"]["containers"]
        command = c.get("args", [])
        if c["image"].split("/")[-1].startswith(("annotator", "detector", "iqa_filter", "inference")):
            assert "command" not in c, f"{deployment['metadata']['name']}: `command` would replace tini"
        if labels.get("app.kubernetes.io/component") == "worker":
            queue = labels["giqa.io/queue"]
            assert queue in QUEUES and command[:4] == ["giqa", "worker", "--queues", queue], command
            pool = command[command.index("--pool") + 1]
            solo = ("detect", "judge", "train", "eval")
            assert pool == ("solo" if queue in solo else pool), f"{queue}: a GPU worker forks"
            expected_image = {
                "detect": "detector",
                "judge": "iqa_filter",
                "train": "trainer",
                "eval": "evaluator",
            }.get(queue, "annotator")
            assert c["image"].split("/")[-1].startswith(expected_image + ":"), c["image"]
        elif command[:2] == ["giqa", "serve"]:
            assert command[2] == c["image"].split("/")[-1].split(":")[0], command


# ------------------------------------------------------------------------------ GPUs


def gpus(container: Mapping[str, Any]) -> int:
    return int(container.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0))


def test_gpu_cluster_puts_every_model_on_a_gpu_node():
    objects = render("gpu-cluster")
    settings = next(iter(by_name(objects, "ConfigMap").values()))["data"]
    assert settings["GIQA_PIPELINE__DEVICE"] == "cuda" and settings["GIQA_INFERENCE__DEVICE"] == "cuda"
    with_gpu = set()
    for deployment in of_kind(objects, "Deployment"):
        name, spec = deployment["metadata"]["name"], deployment["spec"]["template"]["spec"]
        if any(gpus(c) for c in spec["containers"]):
            with_gpu.add(name)
            assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}, name
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
                "tolerations"
            ]
            for c in spec["containers"]:
                image = c["image"].split("/")[-1]
                assert image.endswith("-cuda") or image.startswith("vllm-openai:"), (
                    f"{name}: CPU image {image}"
                )
    assert with_gpu == GPU_WORKLOADS


def test_dev_needs_no_gpu_and_no_weights():
    objects = render("dev")
    settings = next(iter(by_name(objects, "ConfigMap").values()))["data"]
    for key in (
        "GIQA_LLM__URL",
        "GIQA_PIPELINE__DETECTOR_MODEL",
        "GIQA_PIPELINE__JUDGE_MODEL",
        "GIQA_INFERENCE__MODEL",
    ):
        assert key not in settings, f"dev sets {key}: it runs on the embedded defaults"
    assert settings["GIQA_PIPELINE__JUDGE_BACKEND"] == "classical"
    for name, template in pod_templates(objects).items():
        assert not any(gpus(c) for c in containers(template)), f"{name} asks for a GPU in dev"
        assert "-cuda" not in str([c["image"] for c in containers(template)]), name
    replicas = {d["metadata"]["name"]: d["spec"]["replicas"] for d in of_kind(objects, "Deployment")}
    assert set(replicas.values()) == {1}, replicas
    assert by_name(objects, "HorizontalPodAutoscaler")["inference"]["spec"]["maxReplicas"] == 1


def test_the_models_volume_can_be_shared_across_gpu_nodes():
    pvc = by_name(render("gpu-cluster"), "PersistentVolumeClaim")["giqa-models"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]


# ------------------------------------------------------------------------------ network


def pods(objects: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, str]]:
    """Workload name -> its pods' labels."""
    return {name: t["metadata"]["labels"] for name, t in pod_templates(objects).items()}


def test_network_policy_selectors_match_real_pods(overlay):
    objects = render(overlay)
    labels = pods(objects)
    for policy in of_kind(objects, "NetworkPolicy"):
        name = policy["metadata"]["name"]
        selected = [w for w, lab in labels.items() if selects(policy["spec"]["podSelector"], lab)]
        assert selected, f"NetworkPolicy {name} selects no pod"
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    assert any(selects(peer["podSelector"], lab) for lab in labels.values()), (
                        f"NetworkPolicy {name}: a rule admits pods no workload has: {peer['podSelector']}"
                    )


def admitted(objects: Iterable[Mapping[str, Any]], target: Mapping[str, str]) -> set[str] | None:
    """The workloads (same namespace) whose pods may connect to pods labelled ``target``; None: anyone."""
    policies = [p for p in of_kind(objects, "NetworkPolicy") if selects(p["spec"]["podSelector"], target)]
    assert policies, f"no NetworkPolicy covers {target}: everything may reach it"
    sources: set[str] = set()
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            peers = rule.get("from")
            if not peers:
                return None
            for peer in peers:
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    sources |= {w for w, lab in pods(objects).items() if selects(peer["podSelector"], lab)}
    return sources


def components_of(objects, workloads: set[str]) -> set[str]:
    labels = pods(objects)
    return {labels[w]["app.kubernetes.io/component"] for w in workloads}


def test_only_the_annotator_and_its_workers_reach_the_models(overlay):
    objects = render(overlay)
    for component in ("detector", "iqa-filter") + (("vllm",) if "gpu" in overlay else ()):
        sources = admitted(objects, {"app.kubernetes.io/component": component})
        assert sources is not None and components_of(objects, sources) == MODEL_CALLERS, component


def test_only_inference_is_open_to_apps(overlay):
    objects = render(overlay)
    open_to_all = {
        labels["app.kubernetes.io/component"]
        for labels in pods(objects).values()
        if admitted(objects, labels) is None
    }
    assert open_to_all == {"inference"}


def test_the_default_is_deny(overlay):
    objects = render(overlay)
    deny = by_name(objects, "NetworkPolicy")["default-deny-ingress"]
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}


def test_every_service_finds_its_pods_and_their_port(overlay):
    objects = render(overlay)
    workloads = pod_templates(objects)
    for service in of_kind(objects, "Service"):
        matched = [
            t
            for t in workloads.values()
            if selects({"matchLabels": service["spec"]["selector"]}, t["metadata"]["labels"])
        ]
        assert matched, f"Service {service['metadata']['name']} selects no pod"
        port_names = {
            p.get("name") for t in matched for c in t["spec"]["containers"] for p in c.get("ports", [])
        }
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, (
                f"Service {service['metadata']['name']}: {port['targetPort']}"
            )


def test_the_hpa_and_pdb_target_inference(overlay):
    objects = render(overlay)
    hpa = by_name(objects, "HorizontalPodAutoscaler")["inference"]
    assert hpa["spec"]["scaleTargetRef"]["name"] in by_name(objects, "Deployment")
    for pdb in of_kind(objects, "PodDisruptionBudget"):
        assert any(selects(pdb["spec"]["selector"], lab) for lab in pods(objects).values())


# ------------------------------------------------------------------------------ secrets, images, settings


def secret_example() -> dict[str, str]:
    return yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text())["stringData"]


SECRET_NAME = re.compile(r"PASSWORD|SECRET|_KEYS?$|AUTH|TOKEN")


def test_no_secret_value_is_committed(overlay):
    objects = render(overlay)
    assert not of_kind(objects, "Secret"), "a Secret is rendered: secrets are created out of band"
    for cm in of_kind(objects, "ConfigMap"):
        for key in cm.get("data", {}):
            assert not SECRET_NAME.search(key), f"ConfigMap {cm['metadata']['name']} holds {key}"
    documented = set(secret_example())
    for name, template in pod_templates(objects).items():
        for c in containers(template):
            for env in c.get("env", []):
                if SECRET_NAME.search(env["name"]):
                    assert "value" not in env, f"{name}/{c['name']}: {env['name']} written in the manifest"
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == "giqa-secrets" and ref["key"] in documented, f"{name}: {ref}"
            for source in c.get("envFrom", []):
                if "secretRef" in source:
                    assert source["secretRef"]["name"] == "giqa-secrets", name


def test_the_secret_example_holds_placeholders_only():
    for key, value in secret_example().items():
        if SECRET_NAME.search(key) and not key.endswith(("_USER", "ACCESS_KEY")) or key == "GIQA_DB__URL":
            assert "CHANGE-ME" in value, f"secret.example.yaml: {key} looks like a real value"


def test_every_image_is_pinned(overlay):
    for name, template in pod_templates(render(overlay)).items():
        for c in containers(template):
            repository, _, tag = c["image"].rpartition(":")
            assert repository and "/" not in tag and tag != "latest", f"{name}: image {c['image']} not pinned"
            assert c.get("imagePullPolicy") != "Always" or tag, name


def settings_of(objects) -> dict[str, str]:
    (cm,) = of_kind(objects, "ConfigMap")
    return dict(cm["data"])


def test_every_giqa_setting_exists(overlay):
    absent = set()
    names = set(settings_of(render(overlay))) | set(secret_example())
    for var in sorted(n for n in names if n.startswith("GIQA_")):
        check = check_env_name(var)
        assert check.status != "unknown", check.reason
        if check.status == "absent-section":
            absent.add(var.split("__")[0])
    if absent:
        pytest.skip(f"settings sections not in this checkout yet (checked after the merge): {sorted(absent)}")


def test_the_settings_validate(overlay, monkeypatch):
    for var in list(os.environ):
        if var.startswith("GIQA_"):
            monkeypatch.delenv(var)
    env = settings_of(render(overlay)) | secret_example()
    for var, value in env.items():
        if var.startswith("GIQA_"):
            monkeypatch.setenv(var, value)
    if overlay != "dev":  # the example Secret's CHANGE-ME placeholders are refused outside development
        with pytest.raises(ValueError, match="refused outside development"):
            Settings()
        for var, value in with_real_secrets(env).items():
            if var.startswith("GIQA_"):
                monkeypatch.setenv(var, value)
    settings = Settings()
    assert settings.environment == ("development" if overlay == "dev" else "production")
    assert settings.service.host == "0.0.0.0"


def test_config_maps_and_volumes_referenced_exist(overlay):
    objects = render(overlay)
    config = {name: cm.get("data", {}) for name, cm in by_name(objects, "ConfigMap").items()}
    claims = set(by_name(objects, "PersistentVolumeClaim"))
    for name, template in pod_templates(objects).items():
        for volume in template["spec"].get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, f"{name}: {volume}"
        for c in containers(template):
            for source in c.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config, f"{name}: {source}"
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("configMapKeyRef")
                if ref:
                    assert ref["key"] in config.get(ref["name"], {}), f"{name}: {env['name']} -> {ref}"
