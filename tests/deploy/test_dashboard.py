"""monitoring/grafana/giqa.json: the dashboard parses, its panels do not overlap, and every giqa metric it
queries is one the code defines, queried the way its type is exported (a Counter as ``<name>_total``
under ``rate``, a Histogram through ``<name>_bucket`` under ``histogram_quantile``, a Gauge as is)."""

from __future__ import annotations

import json
import re

import pytest

from deploy_checks import ROOT

pytestmark = pytest.mark.unit

DASHBOARD = ROOT / "monitoring" / "grafana" / "giqa.json"
# StateGauge (giqa.service.app): a gauge by state read from the database at scrape time; GaugeMetricFamily:
# a custom collector's gauge (giqa.infra.metrics: queue depth, GPU memory)
DEFINITION = re.compile(r"\b(Counter|Histogram|Gauge|StateGauge|GaugeMetricFamily)\(\s*\"(giqa_\w+)\"", re.S)
USE = re.compile(r"\bgiqa_\w+")


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def defined_metrics() -> dict[str, str]:
    """Metric name -> prometheus_client type, from every Python file of the core and the services."""
    found: dict[str, str] = {}
    for folder in ("shared", "services"):
        for path in (ROOT / folder).rglob("*.py"):
            for kind, name in DEFINITION.findall(path.read_text(encoding="utf-8")):
                found[name] = kind
    return found


def exprs(dashboard: dict) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def test_panels_are_unique_and_do_not_overlap(dashboard):
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps another panel"
                cells.add((x, y))


def test_every_query_uses_the_datasource_variable_and_is_balanced(dashboard):
    names = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "job"} <= names
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            expr = target["expr"]
            assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr


def test_queried_metrics_exist_and_are_queried_by_their_type(dashboard):
    defined = defined_metrics()
    assert {"giqa_http_requests", "giqa_http_request_seconds", "giqa_http_errors"} <= set(defined)
    absent = set()
    for expr in exprs(dashboard):
        for used in USE.findall(expr):
            base = re.sub(r"_(total|bucket|sum|count)$", "", used)
            if base not in defined:
                absent.add(base)
                continue
            kind = defined[base]
            if kind == "Counter":
                assert used == f"{base}_total" and f"rate({used}" in expr, f"counter {base}: {expr}"
            elif kind == "Histogram":
                assert used == f"{base}_bucket" and "histogram_quantile(" in expr, f"histogram {base}: {expr}"
            else:
                assert used == base and "rate(" not in expr, f"gauge {base}: {expr}"
    assert not absent, f"the dashboard queries metrics no code defines: {sorted(absent)}"


def test_operators_see_queues_tasks_failures_and_gpu_memory(dashboard):
    """The issue's list: queue depth per queue, task latency and failures per stage, GPU memory."""
    joined = "\n".join(exprs(dashboard))
    for needed in (
        "giqa_queue_depth",
        "giqa_task_seconds_bucket",
        'giqa_tasks_total{outcome!="success"}',
        "giqa_gpu_memory_bytes",
        "giqa_run_failures",
    ):
        assert needed in joined, needed
    assert "by (le, stage)" in joined  # latency by stage
