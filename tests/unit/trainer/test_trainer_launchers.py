"""The trainer's launchers without a cluster: the Kubernetes objects a job becomes, validated against the
Kubernetes schemas offline (``kubernetes-validate``, as tests/deploy does), the launcher chosen by name and
driving a fake API; the runner's progress reading; the training child dying with its parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from giqa.infra.db import jobs_dal, make_engine, make_sessionmaker, session_scope
from giqa.infra.db.migrate import upgrade
from giqa.settings import KubernetesJobSettings, Settings
from services.trainer import pod
from services.trainer.kubernetes import LABEL, manifests, object_name
from services.trainer.launchers import KubernetesLauncher, LocalLauncher, make_launcher
from services.trainer.progress import Tail, progress_of
from services.trainer.runner import failure_of

pytestmark = pytest.mark.unit

JOB_ID = "0123456789abcdef0123456789abcdef"
KUBERNETES_VERSION = "1.32"


def validate(objects: list[dict[str, Any]]) -> list[str]:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed (pip install -e '.[dev]')"
    )
    problems = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{obj['kind']}: {'/'.join(map(str, exc.absolute_path))}: {exc.message}")
    return problems


def pod_specs(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for obj in objects:
        if obj["kind"] == "Job":
            out.append(obj["spec"]["template"]["spec"])
        if obj["kind"] == "PyTorchJob":
            out += [r["template"]["spec"] for r in obj["spec"]["pytorchReplicaSpecs"].values()]
    return out


@pytest.mark.parametrize("nodes", [1, 2])
def test_a_batch_job_validates_and_runs_torchrun_on_every_gpu(nodes: int) -> None:
    k = KubernetesJobSettings(
        nodes=nodes,
        gpus_per_node=4,
        node_selector={"nvidia.com/gpu.present": "true"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    )
    objects = manifests(JOB_ID, k)
    assert validate(objects) == []
    kinds = [o["kind"] for o in objects]
    assert kinds == (["Service", "Job"] if nodes > 1 else ["Job"])  # the rendezvous Service first
    job = objects[-1]
    assert job["metadata"]["name"] == object_name(JOB_ID) == "giqa-train-0123456789ab"
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == nodes
    assert job["spec"]["parallelism"] == nodes and job["spec"]["backoffLimit"] == 0
    [spec] = pod_specs(objects)
    [container] = spec["containers"]
    args = container["args"]
    assert args[:5] == ["python", "-m", "services.trainer.pod", "--job-id", JOB_ID]
    assert args[args.index("--nproc-per-node") + 1] == "4" and args[args.index("--nnodes") + 1] == str(nodes)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 4
    assert spec["securityContext"]["runAsNonRoot"] and container["securityContext"]["readOnlyRootFilesystem"]
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"} and spec["tolerations"]
    assert {v["name"] for v in spec["volumes"]} == {"data", "models", "tmp", "cache", "shm"}
    assert container["envFrom"] == [
        {"configMapRef": {"name": "giqa-settings"}},
        {"secretRef": {"name": "giqa-secrets"}},
    ]
    if nodes > 1:
        service = objects[0]
        assert service["spec"]["clusterIP"] == "None" and service["spec"]["selector"] == {LABEL: JOB_ID}
        assert spec["subdomain"] == service["metadata"]["name"]
        endpoint = args[args.index("--rdzv-endpoint") + 1]
        assert endpoint == f"{object_name(JOB_ID)}-0.{object_name(JOB_ID)}:29500"
        assert job["spec"]["template"]["metadata"]["labels"][LABEL] == JOB_ID


def test_a_pytorchjob_has_a_master_and_workers_with_valid_pods() -> None:
    k = KubernetesJobSettings(kind="pytorchjob", nodes=3, gpus_per_node=8)
    [obj] = manifests(JOB_ID, k)
    assert obj["apiVersion"] == "kubeflow.org/v1" and obj["kind"] == "PyTorchJob"
    replicas = obj["spec"]["pytorchReplicaSpecs"]
    assert replicas["Master"]["replicas"] == 1 and replicas["Worker"]["replicas"] == 2
    assert obj["spec"]["nprocPerNode"] == "8"
    for spec in pod_specs([obj]):  # each pod template validates as a core Pod
        [container] = spec["containers"]
        assert container["name"] == "pytorch"  # the training operator's container name
        assert "--rdzv-endpoint" not in container["args"]  # the operator sets MASTER_ADDR
        pod_obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": spec | {"restartPolicy": "Never"},
        }
        assert validate([pod_obj]) == []


def test_a_cpu_job_asks_for_no_gpu_and_a_bad_id_is_refused() -> None:
    [job] = manifests(JOB_ID, KubernetesJobSettings(gpus_per_node=0))
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert validate([job]) == []
    with pytest.raises(ValueError, match="lowercase hex"):
        object_name("../etc")


def test_torchrun_commands_of_the_pod_entry() -> None:
    import argparse

    args = argparse.Namespace(job_id=JOB_ID, nnodes=2, nproc_per_node=8, rdzv_endpoint="h-0.h:29500")
    command = pod.torchrun_command(args, 1, Path("/data/jobs/x/config.yaml"))
    assert command[:1] == ["torchrun"] and command[command.index("--node-rank") + 1] == "1"
    assert command[-4:] == ["giqa.cli", "train", "--config", "/data/jobs/x/config.yaml"]
    assert command[command.index("--rdzv-id") + 1] == JOB_ID


# ----------------------------------------------------------------------------------- the launchers


class FakeApi:
    def __init__(self, fail: bool = False) -> None:
        self.created: list[dict[str, Any]] = []
        self.deleted: list[dict[str, Any]] = []
        self.fail = fail
        self.outcome: tuple[str, str] = ("active", "")

    def status(self, manifest: dict[str, Any]) -> tuple[str, str]:
        assert manifest["kind"] in ("Job", "PyTorchJob")
        return self.outcome

    def create(self, manifest: dict[str, Any]) -> None:
        if self.fail:
            raise RuntimeError("forbidden: jobs.batch is forbidden")
        self.created.append(manifest)

    def delete(self, manifest: dict[str, Any]) -> None:
        self.deleted.append(manifest)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[Any]:
    url = f"sqlite:///{tmp_path / 'giqa.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    yield lambda: session_scope(factory)
    engine.dispose()


def new_job(sessions: Any, launcher: str) -> jobs_dal.JobView:
    with sessions() as s:
        job_id = jobs_dal.create_job(
            s, name="j", launcher=launcher, config={}, dataset_ref="key:d.json", base_model="tiny"
        )
        return jobs_dal.get_job(s, job_id=job_id)  # type: ignore[return-value]


def test_launchers_are_chosen_by_name(sessions: Any) -> None:
    sent: list[tuple[str, list[Any]]] = []
    settings = Settings()
    local = make_launcher("local", settings, send=lambda t, a: sent.append((t, a)), sessions=sessions)
    assert isinstance(local, LocalLauncher)
    job = new_job(sessions, "local")
    local.submit(job)
    assert sent == [("giqa.jobs.train", [job.id])]
    api = FakeApi()
    cluster = make_launcher(
        "kubernetes", settings, send=lambda t, a: None, sessions=sessions, kubernetes_api=lambda: api
    )
    assert isinstance(cluster, KubernetesLauncher)
    with pytest.raises(ValueError, match="unknown launcher"):
        make_launcher("slurm", settings, send=lambda t, a: None, sessions=sessions)


def test_the_kubernetes_launcher_creates_and_deletes_what_it_renders(sessions: Any) -> None:
    settings = Settings(jobs={"kubernetes": {"nodes": 2, "namespace": "train"}})
    api = FakeApi()
    launcher = KubernetesLauncher(settings, api, sessions)
    job = new_job(sessions, "kubernetes")
    launcher.submit(job)
    assert [m["kind"] for m in api.created] == ["Service", "Job"]
    assert all(m["metadata"]["namespace"] == "train" for m in api.created)
    with sessions() as s:
        assert jobs_dal.get_job(s, job_id=job.id).k8s_name == object_name(job.id)  # type: ignore[union-attr]
        jobs_dal.claim_job(s, job_id=job.id)  # node 0 of the job claimed it
        flagged = jobs_dal.request_cancel(s, job_id=job.id)
    launcher.cancel(flagged)
    assert [m["kind"] for m in api.deleted] == ["Job", "Service"]
    with sessions() as s:
        assert jobs_dal.get_job(s, job_id=job.id).state == "cancelled"  # type: ignore[union-attr]


def test_the_kubernetes_client_missing_is_said_plainly(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real = builtins.__import__

    def no_kubernetes(name: str, *args: Any, **kw: Any) -> Any:
        if name == "kubernetes" or name.startswith("kubernetes."):
            raise ImportError("No module named 'kubernetes'")
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_kubernetes)
    from services.trainer.kubernetes import ClientApi

    with pytest.raises(RuntimeError, match="needs the 'kubernetes' package"):
        ClientApi()


# --------------------------------------------------------------------------------------- the runner


def test_the_metrics_tail_reads_whole_lines_only(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    tail = Tail(path)
    assert tail.read() == []  # no file yet
    path.write_text('{"step": 1, "max_steps": 10, "elapsed_s": 2.0, "loss": 5.0}\n{"step": 2, "max')
    assert [r["step"] for r in tail.read()] == [1]
    with path.open("a") as handle:
        handle.write(
            '_steps": 10, "elapsed_s": 4.0, "loss": 4.0}\nnot json\n'
            '{"step": 3, "max_steps": 10, "elapsed_s": 6.0}\n'
        )
    assert [r["step"] for r in tail.read()] == [2, 3]
    assert progress_of(tail.rows, None) == {"step": 3, "total_steps": 10, "loss": 4.0, "eta_s": 14.0}
    assert progress_of([], 5) == {}
    assert progress_of([{"step": 0, "elapsed_s": 0.0}], 5) == {"step": 0, "total_steps": 5, "loss": None}


def test_a_failed_child_is_reported_by_its_own_error_line(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text("INFO starting\nerror: data: rows.json is not a LLaVA JSON list\n")
    assert failure_of(log, 2) == "data: rows.json is not a LLaVA JSON list"
    log.write_text("Traceback\n  boom\nMemoryError\n")
    assert failure_of(log, 137) == "giqa train exited with status 137: Traceback | boom | MemoryError"
    assert failure_of(tmp_path / "none.log", 1) == "giqa train exited with status 1"


PARENT = """
import sys, time
from pathlib import Path
from services.trainer.runner import start_local_child
child = start_local_child(Path(sys.argv[1]), Path(sys.argv[2]))
print(child.process.pid, flush=True)
time.sleep(120)
"""


def test_the_training_child_dies_with_its_worker(tmp_path: Path) -> None:
    """SIGKILL to the worker (no chance to clean up): the kernel's parent-death signal ends the child."""
    psutil = pytest.importorskip("psutil")
    config = tmp_path / "config.yaml"
    config.write_text("data: missing.json\noutput_dir: run\n")
    root = Path(__file__).resolve().parents[3]
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join([str(root / "shared"), str(root)]),
        "OMP_NUM_THREADS": "1",
    }
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(config), str(tmp_path)], stdout=subprocess.PIPE, env=env, cwd=root
    )
    try:
        assert parent.stdout is not None
        child = psutil.Process(int(parent.stdout.readline()))
        assert child.ppid() == parent.pid and "giqa.training.launch" in " ".join(child.cmdline())
        time.sleep(0.3)  # past the arming of the parent-death signal, still importing the trainer
        assert child.status() != psutil.STATUS_ZOMBIE
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if child.status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.05)
        else:
            child.kill()
            raise AssertionError("the training child outlived its SIGKILLed parent")
    finally:
        if parent.poll() is None:
            parent.kill()
    # it was killed, not ended by itself: a child that got to fail would have written its error line
    assert "error:" not in (tmp_path / "train.log").read_text()


def test_the_volumes_and_accounts_a_job_uses_are_in_the_base_manifests() -> None:
    """What the launcher's Job references (PVCs, ConfigMap, Secret, service account) is created by
    k8s/base, with the defaults of the settings."""
    import yaml

    base = Path(__file__).resolve().parents[3] / "k8s" / "base"
    objects = [
        o for f in base.glob("*.yaml") for o in yaml.safe_load_all(f.read_text()) if o and "metadata" in o
    ]
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    k = KubernetesJobSettings()
    [spec] = pod_specs(manifests(JOB_ID, k))
    claims = {
        v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if "persistentVolumeClaim" in v
    }
    assert {("PersistentVolumeClaim", c) for c in claims} <= names
    assert ("ServiceAccount", k.service_account) in names
    assert k.settings_configmap in (base / "kustomization.yaml").read_text()
    assert k.secret_name in (base / "secret.example.yaml").read_text()


def test_the_stack_plan_adds_the_job_services_and_workers_on_request() -> None:
    from giqa.infra.stack import plan

    settings = Settings(storage={"endpoint": "http://127.0.0.1:9000"}, llm={"url": "http://127.0.0.1:8/v1"})
    without = plan(settings)
    assert not {"trainer", "evaluator", "worker-train", "worker-eval"} & {p.name for p in without.processes}
    with_jobs = plan(settings, jobs=True, ports={"trainer": 8501, "evaluator": 8601})
    by_name = {p.name: p for p in with_jobs.processes}
    assert with_jobs.urls["trainer"] == "http://127.0.0.1:8501" and by_name["trainer"].health
    assert "services.evaluator.app:app" in by_name["evaluator"].argv
    for queue in ("train", "eval"):
        argv = by_name[f"worker-{queue}"].argv
        assert argv[argv.index("-Q") + 1] == queue and argv[argv.index("-P") + 1] == "solo"
    assert with_jobs.env["GIQA_JOBS__TRAINER_URL"] == "http://127.0.0.1:8501"


def test_kubernetes_outcomes_are_read_from_the_job_status() -> None:
    from services.trainer.kubernetes import outcome_of

    assert outcome_of(None) == ("missing", "")
    assert outcome_of({"active": 2}) == ("active", "")
    failed = {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                              "message": "Job has reached the specified backoff limit"}]}  # fmt: skip
    assert outcome_of(failed) == (
        "failed",
        "BackoffLimitExceeded: Job has reached the specified backoff limit",
    )
    assert outcome_of({"conditions": [{"type": "Complete", "status": "True"}]}) == ("succeeded", "")
    assert outcome_of({"conditions": [{"type": "Failed", "status": "False"}]}) == ("active", "")
    assert outcome_of({"conditions": [{"type": "Succeeded", "status": "True"}]}) == (
        "succeeded",
        "",
    )  # PyTorchJob


def test_a_kubernetes_job_that_fails_before_reporting_is_failed_with_the_clusters_reason(
    tmp_path: Path,
) -> None:
    from fastapi.testclient import TestClient

    from services.trainer.app import create_app_from_settings

    settings = Settings(
        data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", jobs={"launcher": "kubernetes"}
    )
    api = FakeApi()
    app = create_app_from_settings(settings, kubernetes_api=lambda: api)
    with TestClient(app) as client:
        from giqa.infra.storage import make_store

        make_store(settings).put_bytes("uploads/d/llava.json", b"[]")
        body = {
            "dataset_key": "uploads/d/llava.json",
            "images_prefix": "uploads/d",
            "config": {"max_steps": 2},
        }
        created = client.post("/v1/jobs", json=body)
        assert created.status_code == 201, created.text
        job = created.json()
        assert job["k8s_name"] == object_name(job["id"]) and [m["kind"] for m in api.created] == ["Job"]
        assert client.get(f"/v1/jobs/{job['id']}").json()["state"] == "pending"  # active: as it was
        api.outcome = ("failed", "ImagePullBackOff: cannot pull registry.example.com/giqa/trainer")
        failed = client.get(f"/v1/jobs/{job['id']}").json()
        assert failed["state"] == "failed" and "ImagePullBackOff" in failed["error"]
        api.fail = True  # the cluster refuses a new job: 502, the job recorded failed
        refused = client.post("/v1/jobs", json=body)
        assert refused.status_code == 502 and "forbidden" in refused.json()["error"]["message"]
        states = [j["state"] for j in client.get("/v1/jobs").json()]
        assert states == ["failed", "failed"]


def test_the_trainer_sends_a_lost_local_job_again_and_its_next_attempt_runs(tmp_path: Path) -> None:
    """No broker (eager): the sweep puts the lost job back to pending and runs its next attempt here; the
    job's dataset is missing, so that attempt fails fast, with its own reason, as attempt 2."""
    from datetime import UTC, datetime, timedelta

    from fastapi.testclient import TestClient

    from giqa.settings import database_url
    from services.trainer.app import create_app_from_settings

    settings = Settings(
        data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", jobs={"lost_after_s": 60, "max_attempts": 2}
    )
    with TestClient(create_app_from_settings(settings)) as client:
        engine = make_engine(database_url(settings))
        factory = make_sessionmaker(engine)
        with session_scope(factory) as s:
            job_id = jobs_dal.create_job(
                s, name="j", launcher="local", config={}, dataset_ref="key:none.json", base_model="tiny"
            )
            jobs_dal.claim_job(s, job_id=job_id)  # a worker took it, then died
            s.get(jobs_dal.Job, job_id).heartbeat_at = datetime.now(UTC) - timedelta(minutes=5)  # type: ignore[union-attr]
        deadline = time.monotonic() + 60
        while (job := client.get(f"/v1/jobs/{job_id}").json())["state"] != "failed":
            assert time.monotonic() < deadline, job
            time.sleep(0.1)
        engine.dispose()
    assert job["attempts"] == 2 and job["error"].startswith("input: not in the object store"), job
