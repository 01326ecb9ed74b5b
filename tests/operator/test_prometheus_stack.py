"""The chart's monitoring objects against a real Prometheus scraping the real operator.

The operator runs on the simulator with two Deployments named ``cart`` (in ``analytics`` and ``shop2``), a
StatefulSet ``cart`` in ``analytics`` beside the Deployment (with a sidecar that requests nothing), and two
policies that cover them all. The chart is rendered with ``helm template``; Prometheus (the server ``make
tools`` unpacks) scrapes the operator with the scrape config prometheus-operator generates for the rendered
ServiceMonitor: its honorLabels, interval, path and metricRelabelings, and the target labels it attaches
(namespace, service, pod, container, job, endpoint). Every dashboard query, with its variables substituted as
Grafana does, and every alert expression of the rendered PrometheusRule then go through Prometheus's query API.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from kubemeter_sim.catalogue import container, template
from kubemeter_sim.cluster import Cluster
from kubemeter_sim.kubelet import USAGE_SCALE_ANNOTATION
from tests.operator.conftest import Operator, running_operator, stepped
from tests.operator.prometheus_support import (
    RELEASE_NAMESPACE, Prometheus, alert_rules, prometheus, render_chart, scrape_config,
)
from tests.packaging.packaging_support import Manifest, one

pytestmark = pytest.mark.asyncio(loop_scope="module")

CARTS = {("analytics", "cart"): 2, ("shop2", "cart"): 1}  # the same name in two namespaces: (namespace, name) -> pods
# The same name and namespace as a Deployment, another kind; its sidecar's missing requests leave it no utilization.
# Its cart requests far more than the simulator's containers use (half a core, 256 MB at most): over-requested.
CART_SET = ("analytics", "apps", "StatefulSet", "cart")
# Uses 3 times its CPU request and 110% of its memory request: under-requested (KubemeterWorkloadUnderRequested).
TIGHT = ("shop2", "apps", "Deployment", "tight")
POLICIES = ("overlap", "workloads")  # both cover every pod; the dashboard's default policy is the first
WORKLOAD_GROUPING = ("namespace", "workload_api_group", "workload_kind", "workload")


@dataclass
class Stack:
    operator: Operator
    manifests: list[Manifest]
    prometheus: Prometheus
    exposition: str
    """The operator's /metrics as Prometheus scraped it (nothing cycles any more)."""

    def exported(self, name: str, policy: str) -> dict[tuple[str, ...], float]:
        """The operator's own value of a workload gauge, per workload (namespace, api group, kind, name)."""
        return {tuple(s.labels[label] for label in WORKLOAD_GROUPING): s.value
                for family in text_string_to_metric_families(self.exposition) for s in family.samples
                if s.name == name and s.labels["policy"] == policy}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    workdir = tmp_path_factory.mktemp("stack")
    manifests = render_chart(workdir)
    async with Cluster(nodes=2, pods_per_node=0, scenario="empty", seed=11, workdir=workdir / "sim",
                       housekeeping_interval=0.5) as cluster:
        for (namespace, name), replicas in CARTS.items():
            cluster.scenario.create_deployment(namespace, name, replicas, template(
                {"app": name}, [container(name, cpu="100m", memory="64Mi")]))
        cluster.scenario.create_statefulset(CART_SET[0], CART_SET[3], 1, template(
            {"app": "cart-set"}, [container("cart", cpu="2", memory="1Gi"), container("sidecar")]))
        tight = template({"app": "tight"}, [container("tight", cpu="100m", memory="64Mi")], profiles="steady")
        tight["metadata"]["annotations"][USAGE_SCALE_ANNOTATION] = "3"
        cluster.scenario.create_deployment(TIGHT[0], TIGHT[3], 1, tight)
        async for operator in running_operator(cluster):
            for policy in POLICIES:  # spec.recommendations.metrics unset: the default, Differences
                await operator.create_policy(policy, stepped(output={"minStatusChange": "0"}))
            for policy in POLICIES:
                # CPU is a rate: from the second cycle on; an hour apart as the loop sees them, the hour of
                # history a right-sizing verdict needs.
                await operator.cycle_until_measured(policy)
                await operator.cycle(policy, count=2, advance=3600.0)
            async with prometheus(workdir / "prometheus", scrape_config(manifests, operator.runtime.metrics_port)) \
                    as server:
                yield Stack(operator, manifests, server, await operator.scrape_metrics())


def dashboard(manifests: list[Manifest]) -> dict[str, Any]:
    (dashboard_json,) = one(manifests, "ConfigMap")["data"].values()
    return json.loads(dashboard_json)


async def grafana_variables(board: dict[str, Any], server: Prometheus) -> dict[str, tuple[str, list[str]]]:
    """Each template variable's value as Grafana sets it on opening the dashboard, and the values it offers."""
    values: dict[str, tuple[str, list[str]]] = {}
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        selector, label = re.fullmatch(r"label_values\((.*), (\w+)\)", variable["query"]["query"]).groups()
        options = sorted(await server.label_values(substitute(selector, values), label))
        assert variable["sort"] == 1, "alphabetical, as sorted here"
        if variable["includeAll"]:
            assert variable["current"]["value"] == ["$__all"]
            values[variable["name"]] = (variable["allValue"], options)
        else:  # no current value saved: Grafana selects the first
            assert variable["current"] == {} and options, variable
            values[variable["name"]] = (options[0], options)
    return values


def substitute(expr: str, variables: dict[str, tuple[str, list[str]]]) -> str:
    for name, (value, _) in variables.items():
        expr = expr.replace(f"${name}", value)
    assert "$" not in expr, f"a variable is left in {expr}"
    return expr


def workload(labels: dict[str, str]) -> tuple[str, ...]:
    return tuple(labels[label] for label in WORKLOAD_GROUPING)


CART_WORKLOADS = {(namespace, "apps", "Deployment", name) for namespace, name in CARTS}


async def test_dashboard_queries_show_each_workload_in_its_own_namespace_as_the_operator_exports_it(
    stack: Stack,
) -> None:
    board = dashboard(stack.manifests)
    variables = await grafana_variables(board, stack.prometheus)
    assert variables["policy"] == (POLICIES[0], sorted(POLICIES))  # one policy, the first
    offered_namespaces = variables["namespace"][1]
    assert {namespace for namespace, _ in CARTS} <= set(offered_namespaces)
    assert RELEASE_NAMESPACE not in offered_namespaces
    targets = [target for panel in board["panels"] for target in panel["targets"]
               if not panel["title"].startswith("Right-sizing: ")]  # see the test below
    assert targets
    for target in targets:
        # Each query is a sum by workload of one gauge, or the ratio of two: computed here from /metrics.
        names = re.findall(r"\((kubemeter_workload_\w+)\{", target["expr"])
        assert re.findall(r"(?:sum|max) by \(([^)]*)\)", target["expr"]) == [", ".join(WORKLOAD_GROUPING)] * len(names)
        numerator, *denominator = [stack.exported(name, POLICIES[0]) for name in names]
        expected = {key: value / denominator[0][key] if denominator else value for key, value in numerator.items()}
        result = await stack.prometheus.query(substitute(target["expr"], variables))
        shown = {workload(series["labels"]): series["value"] for series in result}
        assert CART_WORKLOADS <= shown.keys(), (target["expr"], shown)  # analytics/cart and shop2/cart apart
        if "request_utilization" not in target["expr"]:
            assert CART_SET in shown, target["expr"]  # the Deployment and the StatefulSet cart apart
        assert shown.keys() == expected.keys()
        for key, value in shown.items():
            assert math.isclose(value, expected[key], rel_tol=1e-12), (target["expr"], key)


async def test_the_dashboard_shows_the_figures_of_the_operators_workload_metrics(stack: Stack) -> None:
    board = dashboard(stack.manifests)
    variables = await grafana_variables(board, stack.prometheus)
    (usage,) = [t["expr"] for panel in board["panels"] for t in panel["targets"]
                if t["expr"].startswith("sum by") and "(kubemeter_workload_cpu_usage_cores{" in t["expr"]
                and "/" not in t["expr"]]
    shown = {workload(s["labels"]): s["value"] for s in await stack.prometheus.query(substitute(usage, variables))}
    objects = await stack.operator.workload_metrics()
    by_policy = {policy: {key: o["status"]["cpu"]["usageCores"] for o in objects
                          if o["spec"]["policy"] == policy and (key := workload_metrics_key(o)) in CART_WORKLOADS}
                 for policy in POLICIES}
    assert by_policy[POLICIES[0]].keys() == by_policy[POLICIES[1]].keys() == CART_WORKLOADS
    for key in CART_WORKLOADS:
        # The first policy's figure (the status rounds to micro-cores), not the sum of both policies' figures.
        assert math.isclose(shown[key], by_policy[POLICIES[0]][key], rel_tol=0, abs_tol=5e-7), key
        assert not math.isclose(shown[key], by_policy[POLICIES[0]][key] + by_policy[POLICIES[1]][key], rel_tol=0.1)


def workload_metrics_key(workload_metrics: dict[str, Any]) -> tuple[str, ...]:
    ref = workload_metrics["spec"]["workload"]
    return workload_metrics["metadata"]["namespace"], ref["apiVersion"].rpartition("/")[0], ref["kind"], ref["name"]


@pytest.mark.parametrize("resource", ["cpu", "memory"])
async def test_the_utilization_panels_show_the_request_utilization_of_the_workload_metrics(
    stack: Stack, resource: str
) -> None:
    """CPU/REQ and MEM/REQ of `kubectl get wm`: the panel shows the status's figure, and nothing for a workload
    with a container that requests nothing (usage over requests would show a figure the status has not)."""
    board = dashboard(stack.manifests)
    variables = await grafana_variables(board, stack.prometheus)
    (expr,) = [t["expr"] for panel in board["panels"] for t in panel["targets"]
               if f"kubemeter_workload_{resource}_request_utilization_ratio{{" in t["expr"]]
    shown = {workload(s["labels"]): s["value"] for s in await stack.prometheus.query(substitute(expr, variables))}
    statuses = {workload_metrics_key(o): o["status"][resource] for o in await stack.operator.workload_metrics()
                if o["spec"]["policy"] == POLICIES[0]}
    assert CART_WORKLOADS | {CART_SET} <= statuses.keys()
    assert "requestUtilization" not in statuses[CART_SET]
    expected = {key: status["requestUtilization"] for key, status in statuses.items() if "requestUtilization" in status}
    assert CART_WORKLOADS <= expected.keys()
    assert shown.keys() == expected.keys()
    for key, utilization in expected.items():
        assert utilization > 0, key
        # The status rounds to 4 decimals.
        assert math.isclose(shown[key], utilization, rel_tol=0, abs_tol=5e-5), key


RIGHTSIZING = (("cpu", "cores", "CPU"), ("memory", "bytes", "memory"))


async def test_the_rightsizing_panels_show_the_operators_requested_minus_recommended(stack: Stack) -> None:
    """By namespace, the namespace roll-up the operator exports (the panel sums the per-container series, which
    $kind and $workload filter: all selected, as on opening); the tables, the most over-requested workload
    containers."""
    board = dashboard(stack.manifests)
    variables = await grafana_variables(board, stack.prometheus)
    panels = {panel["title"]: panel for panel in board["panels"] if panel["title"].startswith("Right-sizing: ")}
    exported = [s for family in text_string_to_metric_families(stack.exposition) for s in family.samples
                if s.labels.get("policy") == POLICIES[0]]
    # At the default spec.recommendations.metrics: no target, bound or request series; the panels need none.
    assert not [s for s in exported if s.name.startswith("kubemeter_workload_container_")
                and not s.name.endswith(("_requested_minus_recommended_cores", "_requested_minus_recommended_bytes",
                                         "_request_shortfall_cores", "_request_shortfall_bytes"))]
    by_namespace = panels["Right-sizing: requested minus recommended"]["targets"]
    for target, (resource, unit, word) in zip(by_namespace, RIGHTSIZING, strict=True):
        rollup = {s.labels["namespace"]: s.value for s in exported
                  if s.name == f"kubemeter_namespace_{resource}_requested_minus_recommended_{unit}"}
        assert {namespace for namespace, _ in CARTS} <= rollup.keys()
        shown = {s["labels"]["namespace"]: s["value"]
                 for s in await stack.prometheus.query(substitute(target["expr"], variables))}
        assert shown.keys() == rollup.keys(), resource
        for namespace, value in rollup.items():
            assert math.isclose(shown[namespace], value, rel_tol=1e-9), (resource, namespace)

        (table,) = panels[f"Right-sizing: most over-requested workload containers, {word}"]["targets"]
        per_container = {(*workload(s.labels), s.labels["container"]): s.value for s in exported
                         if s.name == f"kubemeter_workload_container_{resource}_requested_minus_recommended_{unit}"}
        most = sorted(((key, value) for key, value in per_container.items() if value > 0), key=lambda kv: -kv[1])
        shown = {(*workload(s["labels"]), s["labels"]["container"]): s["value"]
                 for s in await stack.prometheus.query(substitute(table["expr"], variables))}
        assert shown.keys() == {key for key, _ in most[:10]}, resource
        assert (*CART_SET, "cart") in shown, resource
        for key, value in most[:10]:
            assert math.isclose(shown[key], value, rel_tol=1e-12), (resource, key)


async def test_no_alert_fires_on_the_healthy_operator_and_every_metric_they_read_is_scraped(stack: Stack) -> None:
    rules = alert_rules(stack.manifests)
    assert len(rules) == 6
    # `up` is Prometheus's own series of the target.
    scraped_names = {"up"} | {entry["metric"] for entry in await stack.prometheus.get(
        "/api/v1/targets/metadata", match_target='{job="km-kubemeter"}')}
    for alert, rule in rules.items():
        if alert != UNDER_REQUESTED:  # about the workloads, one of which is under-requested: see the test below
            assert await stack.prometheus.query(rule["expr"]) == [], f"{alert} fires on a healthy operator"
        # A misspelt metric would make an alert that never fires: every one it reads is exported.
        read = set(re.findall(r"\b([a-z_]+)\{", rule["expr"]))
        assert read and read <= scraped_names, f"{alert} reads {read - scraped_names}, which no target exports"
        # The selector's namespace is the target's: a series with a namespace label of its own (a workload's,
        # kept by honorLabels) would be hidden by it.
        for name in read:
            scraped = await stack.prometheus.query(f'{{__name__="{name}", job="km-kubemeter"}}')
            assert {s["labels"]["namespace"] for s in scraped} <= {RELEASE_NAMESPACE}, f"{alert} reads {name}"
    # The rendered selector picks the operator's series: KubemeterDown would fire without them.
    assert await stack.prometheus.query(f'up{{job="km-kubemeter", namespace="{RELEASE_NAMESPACE}"}} == 1')


UNDER_REQUESTED = "KubemeterWorkloadUnderRequested"


async def test_the_under_requested_alert_names_the_container_in_its_own_namespace_per_policy_and_resource(
    stack: Stack, tmp_path: Path
) -> None:
    """Its expression (the alert without its hour of ``for``) on the real scrape: the workload's namespace kept by
    honorLabels, not hidden by the selector, which picks the operator's target through kubemeter_build_info; the
    same rule of a same-named release in another namespace sees nothing."""
    rule = alert_rules(stack.manifests)[UNDER_REQUESTED]
    scraped_names = {entry["metric"] for entry in await stack.prometheus.get(
        "/api/v1/targets/metadata", match_target='{job="km-kubemeter"}')}
    read = set(re.findall(r"\bkubemeter_workload_container_\w+", rule["expr"]))
    assert len(read) == 2 and read <= scraped_names
    found = {(*workload(s["labels"]), s["labels"]["container"], s["labels"]["policy"], s["labels"]["resource"]):
             s["value"] for s in await stack.prometheus.query(rule["expr"])}
    # Every shortfall the operator exports (the carts' random usage may be under too), and tight's for certain.
    exported = {(*workload(s.labels), s.labels["container"], s.labels["policy"], resource): s.value
                for family in text_string_to_metric_families(stack.exposition) for s in family.samples
                for resource, unit in (("cpu", "cores"), ("memory", "bytes"))
                if s.name == f"kubemeter_workload_container_{resource}_request_shortfall_{unit}"}
    assert {(*TIGHT, "tight", policy, resource) for policy in POLICIES for resource in ("cpu", "memory")} <= \
        exported.keys()
    assert found == exported
    assert all(value > 0 for value in found.values())
    elsewhere = alert_rules(render_chart(tmp_path, namespace="staging"))[UNDER_REQUESTED]["expr"]
    assert await stack.prometheus.query(elsewhere) == []


async def test_a_same_named_release_in_another_namespace_is_down_while_this_one_is_up(
    stack: Stack, tmp_path: Path
) -> None:
    """Its job has the same name: only the namespace tells the two releases' targets apart."""
    elsewhere = alert_rules(render_chart(tmp_path, namespace="staging"))["KubemeterDown"]["expr"]
    assert await stack.prometheus.query(elsewhere) == [{"labels": {}, "value": 1.0}]


async def test_alert_series_carry_the_operators_namespace_and_every_policy(stack: Stack) -> None:
    pending = await stack.prometheus.query('kubemeter_status_writes_pending{job="km-kubemeter"}')
    assert {s["labels"]["policy"] for s in pending} == set(POLICIES)
    assert {s["labels"]["namespace"] for s in pending} == {RELEASE_NAMESPACE}


async def test_without_honor_labels_the_workloads_namespace_is_lost(stack: Stack, tmp_path: Path) -> None:
    """The control: the same scrape with honor_labels false shows the defect the chart's default avoids."""
    config = scrape_config(stack.manifests, stack.operator.runtime.metrics_port, honor_labels=False)
    async with prometheus(tmp_path / "prometheus", config) as control:
        series = await control.query("kubemeter_workload_cpu_usage_cores")
    assert series
    assert {s["labels"]["namespace"] for s in series} == {RELEASE_NAMESPACE}
    assert {namespace for namespace, _ in CARTS} <= {s["labels"]["exported_namespace"] for s in series}
