"""giqa.infra.metrics without a broker: the task signal handlers count outcomes by stage and time them once,
GPU memory is reported only where the process already uses CUDA, and a port that cannot be bound leaves the
worker running without metrics."""

from __future__ import annotations

import socket
import sys
import types

import pytest
from prometheus_client import generate_latest

from giqa.infra.metrics import GpuMemory, QueueDepth, WorkerMetrics, stage_of

pytestmark = pytest.mark.unit


def test_outcomes_are_counted_once_by_stage_and_queue() -> None:
    metrics = WorkerMetrics()
    task = types.SimpleNamespace(name="giqa.annotate.detect")
    for task_id, state in (("a", "SUCCESS"), ("b", "RETRY"), ("c", "FAILURE"), ("d", "SUCCESS")):
        metrics.on_prerun(task_id=task_id, task=task)
        metrics.on_postrun(task_id=task_id, task=task, state=state)
    metrics.on_postrun(task_id="never-started", task=task, state="SUCCESS")  # counted, not timed
    text = generate_latest(metrics.registry).decode()
    assert 'giqa_tasks_total{outcome="success",queue="detect",stage="detect"} 3.0' in text
    assert 'giqa_tasks_total{outcome="retry",queue="detect",stage="detect"} 1.0' in text
    assert 'giqa_tasks_total{outcome="failure",queue="detect",stage="detect"} 1.0' in text
    assert 'giqa_task_seconds_count{outcome="success",queue="detect",stage="detect"} 2.0' in text
    assert metrics._started == {}
    assert stage_of("giqa.jobs.train") == "train" and stage_of("") == ""


def test_gpu_memory_only_where_torch_already_uses_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert list(GpuMemory().collect()) == []  # never imports torch itself
    assert "torch" not in sys.modules
    cuda = types.SimpleNamespace(
        is_available=lambda: True,
        is_initialized=lambda: True,
        device_count=lambda: 2,
        memory_allocated=lambda d: 100 * (d + 1),
        memory_reserved=lambda d: 1000 * (d + 1),
    )
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    (family,) = GpuMemory().collect()
    got = {(s.labels["device"], s.labels["kind"]): s.value for s in family.samples}
    assert got == {
        ("0", "allocated"): 100,
        ("0", "reserved"): 1000,
        ("1", "allocated"): 200,
        ("1", "reserved"): 2000,
    }
    cuda.is_initialized = lambda: False  # torch imported, CUDA never touched: nothing (no context made)
    assert list(GpuMemory().collect()) == []


def test_a_busy_port_leaves_the_worker_without_metrics(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert WorkerMetrics().serve(port) is None
    assert "give each worker its own port" in caplog.text


def test_queue_depth_is_silent_without_a_redis_broker() -> None:
    assert list(QueueDepth(None, ["cpu"]).collect()) == []
    assert list(QueueDepth("memory://", ["cpu"]).collect()) == []
