"""The Kubernetes objects a training job becomes: ``torchrun`` over ``nodes`` × ``gpus_per_node``.

Two shapes (settings ``jobs.kubernetes.kind``):

- ``job``: a ``batch/v1`` Job in Indexed completion mode, one pod per node (``completions = parallelism =
  nodes``), the pod's completion index as torchrun's node rank, and (more than one node) a headless
  Service so pod 0 is reachable as ``<name>-0.<name>`` for the c10d rendezvous;
- ``pytorchjob``: Kubeflow's ``kubeflow.org/v1`` PyTorchJob (the training operator sets ``MASTER_ADDR``,
  ``RANK``, ``WORLD_SIZE``), one Master and ``nodes - 1`` Workers.

Every pod runs :mod:`services.trainer.pod`: node 0 claims the job, fetches its inputs onto the shared job
volume, runs torchrun, reports progress to Postgres and publishes the checkpoint, as the local launcher
does; the other nodes wait for the job's config and run torchrun. Settings and credentials come from the
same ConfigMap and Secret as every giqa pod; pods are non-root with a read-only root filesystem, GPUs as
``nvidia.com/gpu`` limits, ``/dev/shm`` as a memory ``emptyDir``.

:func:`manifests` is pure (tested by validating its output against the Kubernetes schemas);
:class:`ClientApi` submits and deletes through the ``kubernetes`` package, imported only when used.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from giqa.settings import KubernetesJobSettings

JOB_ROOT = "/data/jobs"
LABEL = "giqa.io/job-id"
RDZV_PORT = 29500


def object_name(job_id: str) -> str:
    """``giqa-train-<first 12 of the id>``: a DNS-1035 label short enough for pod names and Services."""
    if not re.fullmatch(r"[0-9a-f]{8,32}", job_id):
        raise ValueError(f"job id must be lowercase hex, got {job_id!r}")
    return f"giqa-train-{job_id[:12]}"


def _pod_spec(job_id: str, k: KubernetesJobSettings, *, name: str, pytorchjob: bool) -> dict[str, Any]:
    gpus = k.gpus_per_node
    command = ["python", "-m", "services.trainer.pod", "--job-id", job_id, "--nnodes", str(k.nodes)]
    command += ["--nproc-per-node", str(max(gpus, 1))]
    if not pytorchjob:
        command += ["--rdzv-endpoint", f"{name}-0.{name}:{RDZV_PORT}" if k.nodes > 1 else "127.0.0.1:29500"]
    limits: dict[str, Any] = {"memory": k.memory}
    if gpus:
        limits["nvidia.com/gpu"] = gpus
    container: dict[str, Any] = {
        "name": "pytorch" if pytorchjob else "trainer",  # the training operator looks for "pytorch"
        "image": k.image,
        "args": command,
        "envFrom": [{"configMapRef": {"name": k.settings_configmap}}, {"secretRef": {"name": k.secret_name}}],
        "env": [
            {"name": "GIQA_JOBS__WORK_DIR", "value": JOB_ROOT},
            {"name": "GIQA_JOBS__LAUNCHER", "value": "kubernetes"},
        ],
        "ports": [{"name": "rdzv", "containerPort": RDZV_PORT}],
        "resources": {"requests": {"cpu": k.cpu, "memory": k.memory}, "limits": limits},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "data", "mountPath": "/data"},
            {"name": "models", "mountPath": "/models", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},  # nosec B108: a mount path in the pod, not a temp file
            {"name": "cache", "mountPath": "/cache"},
            {"name": "shm", "mountPath": "/dev/shm"},  # nosec B108: a mount path in the pod
        ],
    }
    spec: dict[str, Any] = {
        "serviceAccountName": k.service_account,
        "automountServiceAccountToken": False,
        "restartPolicy": "Never" if not pytorchjob else "OnFailure",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {"name": "data", "persistentVolumeClaim": {"claimName": k.data_pvc}},
            {"name": "models", "persistentVolumeClaim": {"claimName": k.models_pvc, "readOnly": True}},
            {"name": "tmp", "emptyDir": {}},
            {"name": "cache", "emptyDir": {}},
            {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": k.shm_size}},
        ],
    }
    if not pytorchjob and k.nodes > 1:
        spec["subdomain"] = name  # pods resolve as <name>-<index>.<name> through the headless Service
    if k.node_selector:
        spec["nodeSelector"] = dict(k.node_selector)
    if k.tolerations:
        spec["tolerations"] = [dict(t) for t in k.tolerations]
    return spec


def manifests(job_id: str, k: KubernetesJobSettings) -> list[dict[str, Any]]:
    """The objects to create for the job, in creation order (see the module docstring)."""
    name = object_name(job_id)
    labels = {
        "app.kubernetes.io/name": "giqa-train",
        "app.kubernetes.io/part-of": "giqa",
        "app.kubernetes.io/component": "training",
        LABEL: job_id,
    }
    meta = {"name": name, "namespace": k.namespace, "labels": labels}
    if k.kind == "pytorchjob":
        replicas: dict[str, Any] = {
            "Master": {
                "replicas": 1,
                "restartPolicy": "OnFailure" if k.backoff_limit else "Never",
                "template": {
                    "metadata": {"labels": labels},
                    "spec": _pod_spec(job_id, k, name=name, pytorchjob=True),
                },
            }
        }
        if k.nodes > 1:
            replicas["Worker"] = {
                "replicas": k.nodes - 1,
                "restartPolicy": "OnFailure" if k.backoff_limit else "Never",
                "template": {
                    "metadata": {"labels": labels},
                    "spec": _pod_spec(job_id, k, name=name, pytorchjob=True),
                },
            }
        for replica in replicas.values():
            replica["template"]["spec"].pop("restartPolicy")
        return [
            {
                "apiVersion": "kubeflow.org/v1",
                "kind": "PyTorchJob",
                "metadata": meta,
                "spec": {
                    "runPolicy": {
                        "backoffLimit": k.backoff_limit,
                        "ttlSecondsAfterFinished": k.ttl_after_finished_s,
                        "cleanPodPolicy": "Running",
                    },
                    "nprocPerNode": str(max(k.gpus_per_node, 1)),
                    "pytorchReplicaSpecs": replicas,
                },
            }
        ]
    out: list[dict[str, Any]] = []
    if k.nodes > 1:
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": meta,
                "spec": {
                    "clusterIP": "None",
                    "publishNotReadyAddresses": True,  # rendezvous happens before any pod is ready
                    "selector": {LABEL: job_id},
                    "ports": [{"name": "rdzv", "port": RDZV_PORT, "targetPort": RDZV_PORT}],
                },
            }
        )
    out.append(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": meta,
            "spec": {
                "completionMode": "Indexed",
                "completions": k.nodes,
                "parallelism": k.nodes,
                "backoffLimit": k.backoff_limit,
                "ttlSecondsAfterFinished": k.ttl_after_finished_s,
                "template": {
                    "metadata": {"labels": labels},
                    "spec": _pod_spec(job_id, k, name=name, pytorchjob=False),
                },
            },
        }
    )
    return out


class KubernetesApi(Protocol):
    """What the launcher needs from a cluster: create objects, delete them, read a job's outcome."""

    def create(self, manifest: dict[str, Any]) -> None: ...

    def delete(self, manifest: dict[str, Any]) -> None: ...

    def status(self, manifest: dict[str, Any]) -> tuple[str, str]:
        """``(outcome, message)`` of a Job or PyTorchJob: ``active``, ``succeeded``, ``failed`` (with the
        cluster's reason) or ``missing`` (deleted, or never created)."""
        ...


def outcome_of(status: dict[str, Any] | None) -> tuple[str, str]:
    """A Job's or PyTorchJob's ``status`` read as :meth:`KubernetesApi.status` answers."""
    if status is None:
        return "missing", ""
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        kind = condition.get("type")
        if kind in ("Failed", "FailureTarget"):
            reason = condition.get("reason") or "Failed"
            return "failed", f"{reason}: {condition.get('message') or 'the job failed'}"
        if kind in ("Complete", "Succeeded", "SuccessCriteriaMet"):
            return "succeeded", ""
    return "active", ""


class ClientApi:
    """:class:`KubernetesApi` through the ``kubernetes`` package (in-cluster config, else kubeconfig)."""

    def __init__(self) -> None:
        try:
            import kubernetes  # noqa: F401
        except ImportError as exc:
            raise RuntimeError(
                "the kubernetes launcher needs the 'kubernetes' package (pip install 'giqa[cluster]')"
            ) from exc
        from kubernetes import client, config

        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        self.client = client

    def create(self, manifest: dict[str, Any]) -> None:
        ns = manifest["metadata"]["namespace"]
        kind = manifest["kind"]
        if kind == "Job":
            self.client.BatchV1Api().create_namespaced_job(ns, manifest)
        elif kind == "Service":
            self.client.CoreV1Api().create_namespaced_service(ns, manifest)
        else:
            group, version = manifest["apiVersion"].split("/")
            self.client.CustomObjectsApi().create_namespaced_custom_object(
                group, version, ns, "pytorchjobs", manifest
            )

    def status(self, manifest: dict[str, Any]) -> tuple[str, str]:
        from kubernetes.client.exceptions import ApiException

        ns, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        try:
            if manifest["kind"] == "Job":
                job = self.client.BatchV1Api().read_namespaced_job_status(name, ns)
                status = self.client.ApiClient().sanitize_for_serialization(job.status)
            else:
                group, version = manifest["apiVersion"].split("/")
                found = self.client.CustomObjectsApi().get_namespaced_custom_object_status(
                    group, version, ns, "pytorchjobs", name
                )
                status = found.get("status") or {}
        except ApiException as exc:
            if exc.status == 404:
                return outcome_of(None)
            raise
        return outcome_of(status)

    def delete(self, manifest: dict[str, Any]) -> None:
        ns, name, kind = manifest["metadata"]["namespace"], manifest["metadata"]["name"], manifest["kind"]
        body = self.client.V1DeleteOptions(propagation_policy="Foreground")
        if kind == "Job":
            self.client.BatchV1Api().delete_namespaced_job(name, ns, body=body)
        elif kind == "Service":
            self.client.CoreV1Api().delete_namespaced_service(name, ns)
        else:
            group, version = manifest["apiVersion"].split("/")
            self.client.CustomObjectsApi().delete_namespaced_custom_object(
                group, version, ns, "pytorchjobs", name, body=body
            )
