"""The CRDs: generated, in sync with the chart, documented, and rejecting bad policies with clear messages.

Validation runs through the simulated API server's schema engine (the same prune/default/validate/CEL steps as
apiextensions-apiserver), so these cases are what `kubectl apply` reports to a user.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubemeter.compute.histogram import CPU_BUCKETS, MEMORY_BUCKETS
from kubemeter.compute.rightsizing import ContainerHistory, HistoryConfig
from kubemeter.publish.checkpoints import MAX_CHECKPOINT_CONTAINERS, checkpoint_object
from kubemeter.types import WorkloadRef
from kubemeter_sim.apiserver.schema import CompiledSchema

from .packaging_support import CHART, CRDS, REPO, crd, crd_schema, run

POLICY_SCHEMA = CompiledSchema.compile(crd_schema("metricspolicies"))
WORKLOAD_METRICS_SCHEMA = CompiledSchema.compile(crd_schema("workloadmetrics"))


def policy(spec: dict[str, Any] | None = None, status: dict[str, Any] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "kubemeter.io/v1alpha1", "kind": "MetricsPolicy", "metadata": {"name": "p"}}
    if spec is not None:
        obj["spec"] = spec
    if status is not None:
        obj["status"] = status
    return obj


def errors(schema: CompiledSchema, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    prepared = schema.prepare(obj)
    return [(e.field, e.message) for e in schema.validate(prepared, schema.prepare(old) if old else None)]


def test_committed_crds_are_the_generators_output(tmp_path: Path) -> None:
    run(sys.executable, REPO / "hack" / "gen-crds.py", tmp_path)
    generated = {p.name: p.read_text(encoding="utf-8") for p in tmp_path.glob("*.yaml")}
    committed = {p.name: p.read_text(encoding="utf-8") for p in CRDS.glob("*.yaml")}
    assert generated.keys() == {"metricspolicies.kubemeter.io.yaml", "workloadmetrics.kubemeter.io.yaml",
                                "metricscheckpoints.kubemeter.io.yaml"}
    assert committed == generated, "crds/ drifted from hack/gen-crds.py: run hack/sync-crds.sh"


@pytest.mark.parametrize("copy", [CHART / "crds", REPO / "sim" / "kubemeter_sim" / "crds"], ids=["chart", "simulator"])
def test_copied_crds_are_identical_to_the_top_level_crds(copy: Path) -> None:
    copied = {p.name: p.read_bytes() for p in copy.glob("*.yaml")}
    top = {p.name: p.read_bytes() for p in CRDS.glob("*.yaml")}
    assert copied == top, f"{copy.relative_to(REPO)} drifted from crds/: run hack/sync-crds.sh"


def test_the_simulators_demo_policy_is_the_examples_one() -> None:
    copy = REPO / "sim" / "kubemeter_sim" / "examples" / "metricspolicy-demo.yaml"
    assert copy.read_bytes() == (REPO / "examples" / "metricspolicy-demo.yaml").read_bytes(), \
        "run hack/sync-crds.sh"


def fields(schema: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, child in schema.get("properties", {}).items():
        yield f"{path}.{name}", child
        yield from fields(child, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield f"{path}[{key}]", schema[key]
            yield from fields(schema[key], f"{path}[{key}]")


@pytest.mark.parametrize("plural", ["metricspolicies", "workloadmetrics"])
def test_every_field_has_a_description(plural: str) -> None:
    # Root metadata is ObjectMeta, described by Kubernetes itself (controller-gen leaves it bare too).
    undocumented = [
        path for path, schema in fields(crd_schema(plural), "") if path != ".metadata" and not schema.get("description")
    ]
    assert undocumented == []


def resolve(schema: dict[str, Any], json_path: str) -> dict[str, Any]:
    """The schema a printer column's JSONPath points at; list filters such as [?(@.type=="Ready")] step into items."""
    for step in re.findall(r"\.(\w+)(\[\?\(.*?\)\])?", json_path):
        name, list_filter = step
        schema = schema["properties"][name]
        if list_filter:
            schema = schema["items"]
    return schema


COLUMN_TYPES = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean", "date": "string"}


@pytest.mark.parametrize("plural", ["metricspolicies", "workloadmetrics"])
def test_printer_columns_point_at_fields_of_their_type(plural: str) -> None:
    version = crd(plural)["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    for column in version["additionalPrinterColumns"]:
        if column["jsonPath"] == ".metadata.creationTimestamp":
            continue
        target = resolve(schema, column["jsonPath"])
        assert target["type"] == COLUMN_TYPES[column["type"]], column
        if column["type"] == "date":
            assert target.get("format") == "date-time", column


def test_policy_column_names_are_the_documented_ones() -> None:
    names = [c["name"] for c in crd("metricspolicies")["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert names == ["Interval", "Nodes", "Failed", "Workloads", "CPU", "Memory", "Ready", "Degraded", "Reason",
                     "Scraped", "Age"]
    columns = crd("workloadmetrics")["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [c["name"] for c in columns if not c.get("priority")] == [
        "Kind", "Workload", "Pods", "CPU", "CPU/Req", "Memory", "Mem/Req", "Sizing", "Stale", "Age"]
    assert [c["name"] for c in columns if c.get("priority")] == ["CPU Pods", "Sampled", "Policy"]  # -o wide


def test_an_empty_spec_gets_every_default() -> None:
    spec = POLICY_SCHEMA.prepare(policy({}))["spec"]
    assert spec["interval"] == "30s"
    # No timeout or window: the operator derives them from the interval (README, MetricsPolicy reference).
    assert spec["source"] == {
        "endpoint": "resource", "via": "direct", "concurrency": 64, "insecureSkipTLSVerify": False,
    }
    assert spec["aggregation"] == {"levels": ["workload", "namespace", "node", "cluster"], "percentiles": [50, 95]}
    assert spec["output"] == {
        "workloadMetrics": True, "prometheus": True, "topWorkloads": 10, "minStatusChange": "0.05",
        "maxStatusAge": "5m",
    }
    # No percentiles or margins: they follow the strategy (README, "Right-sizing").
    assert spec["recommendations"] == {
        "enabled": True, "strategy": "vpa", "halfLife": "24h", "memoryPeakInterval": "24h", "minHistory": "1h",
        "checkpointInterval": "10m", "metrics": "Differences",
    }
    assert errors(POLICY_SCHEMA, policy({})) == []


def defaults(schema: dict[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, child in schema.get("properties", {}).items():
        if "default" in child and child["type"] != "object":
            yield (*path, name), child["default"]
        yield from defaults(child, (*path, name))


def test_default_example_spells_out_every_default() -> None:
    example = yaml.safe_load((REPO / "examples" / "metricspolicy-default.yaml").read_text(encoding="utf-8"))
    spec_schema = crd_schema("metricspolicies")["properties"]["spec"]
    for path, default in defaults(spec_schema):
        value = example["spec"]
        for key in path:
            value = value[key]
        assert value == default, f"spec.{'.'.join(path)}"
    assert errors(POLICY_SCHEMA, example) == []


EXAMPLES = sorted((REPO / "examples").glob("metricspolicy-*.yaml"))


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_are_valid_and_have_no_unknown_fields(example: Path) -> None:
    obj = yaml.safe_load(example.read_text(encoding="utf-8"))
    assert errors(POLICY_SCHEMA, obj) == []
    assert [path for path in POLICY_SCHEMA.unknown_fields(obj) if path.startswith(".spec")] == []


def test_summary_example_is_what_its_comments_say() -> None:
    obj = yaml.safe_load((REPO / "examples" / "metricspolicy-summary.yaml").read_text(encoding="utf-8"))
    spec = POLICY_SCHEMA.prepare(obj)["spec"]
    assert (spec["interval"], spec["source"]["endpoint"]) == ("15s", "summary")
    assert spec["selector"]["namespaceSelector"]["matchLabels"] == {"environment": "production"}


INVALID_POLICIES = [
    ({"interval": "30x"}, "spec.interval", "should match"),
    ({"interval": "5s", "source": {"timeout": "2s"}}, "spec.interval", "interval must be at least 10s"),
    ({"interval": "2562047h"}, "spec.interval", "interval must be at most 24h"),
    ({"interval": "24h1s"}, "spec.interval", "interval must be at most 24h"),
    ({"interval": "15s", "source": {"timeout": "15s"}}, "spec.source.timeout", "timeout must be shorter than interval"),
    ({"interval": "10s", "source": {"timeout": "10s"}}, "spec.source.timeout", "timeout must be shorter than interval"),
    ({"interval": "1h", "aggregation": {"window": "5m"}}, "spec.aggregation.window",
     "window must be at least as long as interval"),
    ({"interval": "1m", "source": {"timeout": "90s"}}, "spec.source.timeout", "timeout must be shorter than interval"),
    ({"source": {"timeout": "0s"}}, "spec.source.timeout", "timeout must be longer than 0s"),
    ({"source": {"timeout": "ten"}}, "spec.source.timeout", "should match"),
    ({"source": {"endpoint": "cadvisor"}}, "spec.source.endpoint", 'supported values: "resource", "summary"'),
    ({"source": {"via": "ssh"}}, "spec.source.via", 'supported values: "direct", "proxy"'),
    ({"source": {"concurrency": 0}}, "spec.source.concurrency", "greater than or equal to 1"),
    ({"source": {"concurrency": 1001}}, "spec.source.concurrency", "less than or equal to 1000"),
    ({"aggregation": {"window": "20s"}}, "spec.aggregation.window", "window must be at least as long as interval"),
    ({"aggregation": {"percentiles": [0]}}, "spec.aggregation.percentiles[0]", "should be greater than 0"),
    ({"aggregation": {"percentiles": [101]}}, "spec.aggregation.percentiles[0]", "less than or equal to 100"),
    ({"aggregation": {"percentiles": list(range(1, 12))}}, "spec.aggregation.percentiles", "at most 10 items"),
    ({"aggregation": {"percentiles": [50, 50]}}, "spec.aggregation.percentiles[1]", "Duplicate value"),
    ({"aggregation": {"levels": ["pod"]}}, "spec.aggregation.levels[0]", 'supported values: "workload"'),
    ({"aggregation": {"levels": []}}, "spec.aggregation.levels", "at least 1 items"),
    ({"output": {"topWorkloads": 101}}, "spec.output.topWorkloads", "less than or equal to 100"),
    ({"output": {"minStatusChange": "1.5"}}, "spec.output.minStatusChange", "minStatusChange must be between 0 and 1"),
    ({"output": {"minStatusChange": "-0.1"}}, "spec.output.minStatusChange", "should match"),
    ({"output": {"maxStatusAge": "forever"}}, "spec.output.maxStatusAge", "should match"),
    ({"output": {"topWorkloads": -1}}, "spec.output.topWorkloads", "greater than or equal to 0"),
    ({"output": {"workloadMetrics": "no"}}, "spec.output.workloadMetrics", "must be of type boolean"),
    ({"output": {"prometheus": 0}}, "spec.output.prometheus", "must be of type boolean"),
    ({"source": {"insecureSkipTLSVerify": "yes"}}, "spec.source.insecureSkipTLSVerify", "must be of type boolean"),
    ({"interval": "1" * 40 + "s"}, "spec.interval", "may not be more than 32 bytes"),
    ({"interval": "10s", "aggregation": {"window": "5h"}}, "spec.aggregation.window", "at most 1440 intervals"),
    ({"selector": {"namespaces": ["Not_A_Label"]}}, "spec.selector.namespaces[0]", "should match"),
    ({"selector": {"excludeNamespaces": ["a" * 64]}}, "spec.selector.excludeNamespaces[0]", "may not be more than 63 bytes"),
    ({"selector": {"namespaces": [f"ns-{i}" for i in range(501)]}}, "spec.selector.namespaces", "at most 500 items"),
    (
        {"selector": {"podSelector": {"matchLabels": {"app": "-web"}}}},
        "spec.selector.podSelector.matchLabels.app",
        "should match",
    ),
    (
        {"selector": {"nodeSelector": {"matchExpressions": [{"key": "a b", "operator": "Exists"}]}}},
        "spec.selector.nodeSelector.matchExpressions[0].key",
        "should match",
    ),
    (
        {"selector": {"podSelector": {"matchExpressions": [{"key": "k", "operator": "In", "values": ["a b"]}]}}},
        "spec.selector.podSelector.matchExpressions[0].values[0]",
        "should match",
    ),
    (
        {"selector": {"podSelector": {"matchLabels": {"app": 7}}}},
        "spec.selector.podSelector.matchLabels.app",
        "must be of type string",
    ),
    (
        {"selector": {"podSelector": {"matchExpressions": [{"key": "app", "operator": "In"}]}}},
        "spec.selector.podSelector.matchExpressions[0]",
        "values must be non-empty when operator is In or NotIn",
    ),
    (
        {"selector": {"nodeSelector": {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}}},
        "spec.selector.nodeSelector.matchExpressions[0]",
        "values must be empty when operator is Exists or DoesNotExist",
    ),
    (
        {"selector": {"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "Like", "values": ["x"]}]}}},
        "spec.selector.namespaceSelector.matchExpressions[0].operator",
        'supported values: "In", "NotIn", "Exists", "DoesNotExist"',
    ),
    ({"recommendations": {"strategy": "krr"}}, "spec.recommendations.strategy", 'supported values: "vpa", "simple"'),
    ({"recommendations": {"enabled": "yes"}}, "spec.recommendations.enabled", "must be of type boolean"),
    ({"recommendations": {"metrics": "full"}}, "spec.recommendations.metrics",
     'supported values: "None", "Differences", "Full"'),
    ({"recommendations": {"cpuPercentile": 101}}, "spec.recommendations.cpuPercentile", "less than or equal to 100"),
    ({"recommendations": {"memoryPercentile": -1}}, "spec.recommendations.memoryPercentile",
     "greater than or equal to 0"),
    ({"recommendations": {"cpuMargin": "10.5"}}, "spec.recommendations.cpuMargin", "cpuMargin must be between 0 and 10"),
    ({"recommendations": {"memoryMargin": "15%"}}, "spec.recommendations.memoryMargin", "should match"),
    ({"recommendations": {"memoryMargin": 0.15}}, "spec.recommendations.memoryMargin", "must be of type string"),
    ({"recommendations": {"halfLife": "30s"}}, "spec.recommendations.halfLife", "halfLife must be at least 1m"),
    ({"recommendations": {"memoryPeakInterval": "59s"}}, "spec.recommendations.memoryPeakInterval",
     "memoryPeakInterval must be at least 1m"),
    ({"recommendations": {"checkpointInterval": "10s"}}, "spec.recommendations.checkpointInterval",
     "checkpointInterval must be at least 1m"),
    ({"recommendations": {"minHistory": "an hour"}}, "spec.recommendations.minHistory", "should match"),
    ({"recommendations": {"cpu": {"min": "-100m"}}}, "spec.recommendations.cpu.min", "should match"),
    ({"recommendations": {"memory": {"max": "lots"}}}, "spec.recommendations.memory.max", "should match"),
    ({"recommendations": {"cpu": {"min": "2", "max": "500m"}}}, "spec.recommendations.cpu.min",
     "min must not be above max"),
    ({"recommendations": {"memory": {"min": "1Gi", "max": "1G"}}}, "spec.recommendations.memory.min",
     "min must not be above max"),
]


@pytest.mark.parametrize(("spec", "field", "message"), INVALID_POLICIES)
def test_invalid_policy_is_rejected_with_a_clear_message(spec: dict[str, Any], field: str, message: str) -> None:
    found = errors(POLICY_SCHEMA, policy(spec))
    assert any(f == field and message in m for f, m in found), found


@pytest.mark.parametrize("bad_duration", ["30x", "1 m", "-5s", "5"])
def test_a_malformed_duration_is_reported_once_not_again_by_cel(bad_duration: str) -> None:
    found = errors(POLICY_SCHEMA, policy({"interval": bad_duration}))
    assert [f for f, _ in found] == ["spec.interval"], found


VALID_POLICIES = [
    {"interval": "10s"},
    {"interval": "1h"},
    {"interval": "24h"},
    {"interval": "10s", "source": {"timeout": "9500ms"}, "aggregation": {"window": "10s"}},
    {"interval": "1h30m", "source": {"timeout": "1m"}, "aggregation": {"window": "2h", "percentiles": [99.9, 100]}},
    {"output": {"minStatusChange": "0"}},
    {"output": {"minStatusChange": "1"}},
    {"aggregation": {"levels": ["cluster"], "percentiles": []}},
    {
        "selector": {
            "namespaces": ["team-a", "team-b"],
            "excludeNamespaces": ["kube-system"],
            "podSelector": {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["batch"]}]},
            "nodeSelector": {"matchLabels": {"kubernetes.io/os": "linux"}},
        }
    },
    {"recommendations": {"enabled": False}},
    {"recommendations": {"metrics": "None"}},
    {"recommendations": {"strategy": "simple", "minHistory": "0s", "cpu": {"min": "10m", "max": "10m"}}},
    {"recommendations": {"minHistory": "0", "halfLife": "1h"}},  # a bare 0, as Go and metav1.Duration spell it
    {
        "recommendations": {
            "cpuPercentile": 99.5, "memoryPercentile": 100, "cpuMargin": "0", "memoryMargin": "0.25",
            "halfLife": "1m", "memoryPeakInterval": "1h", "checkpointInterval": "1m",
            "cpu": {"min": "50m", "max": "4"}, "memory": {"min": "64Mi", "max": "1e10"},
        }
    },
    {
        "selector": {
            "podSelector": {
                "matchLabels": {"app.kubernetes.io/name": "web", "tier": ""},
                "matchExpressions": [{"key": "example.com/team", "operator": "In", "values": ["a_b.c-1", ""]}],
            }
        }
    },
]


@pytest.mark.parametrize("spec", VALID_POLICIES)
def test_valid_policy_is_accepted(spec: dict[str, Any]) -> None:
    assert errors(POLICY_SCHEMA, policy(spec)) == []


FULL_RECOMMENDATIONS = {
    "enabled": True, "strategy": "simple", "cpuPercentile": 99.5, "memoryPercentile": 100, "cpuMargin": "0",
    "memoryMargin": "0.25", "halfLife": "12h", "memoryPeakInterval": "1h", "minHistory": "30m",
    "checkpointInterval": "5m", "metrics": "Full", "cpu": {"min": "50m", "max": "4"},
    "memory": {"min": "64Mi", "max": "8Gi"},
}
"""Every field of spec.recommendations set (tests/real checks the real API server keeps them too)."""


def test_every_recommendations_field_is_kept_not_pruned() -> None:
    obj = policy({"recommendations": copy.deepcopy(FULL_RECOMMENDATIONS)})
    assert errors(POLICY_SCHEMA, obj) == [] and POLICY_SCHEMA.unknown_fields(obj) == []
    assert POLICY_SCHEMA.prepare(obj)["spec"]["recommendations"] == FULL_RECOMMENDATIONS


@pytest.mark.parametrize(("spec", "field"), [
    ({"interval": "10s", "source": {"timeout": "12s"}}, "spec.source.timeout"),
    ({"interval": "1h", "aggregation": {"window": "30m"}}, "spec.aggregation.window"),
    ({"interval": "10s", "aggregation": {"window": "5h"}}, "spec.aggregation.window"),
])
def test_an_error_names_only_the_field_the_policy_set(spec: dict[str, Any], field: str) -> None:
    """The timeout and window the operator derives are never the subject of an error (the schema has none)."""
    assert [f for f, _ in errors(POLICY_SCHEMA, policy(spec))] == [field]


POLICY_STATUS = {
    "observedGeneration": 3,
    "conditions": [
        {"type": "Ready", "status": "True", "reason": "CycleComplete", "message": "20 of 20 nodes scraped",
         "lastTransitionTime": "2026-11-23T07:00:00Z", "observedGeneration": 3},
        {"type": "Degraded", "status": "False", "reason": "AllNodesScraped", "message": "",
         "lastTransitionTime": "2026-11-23T07:00:00Z"},
    ],
    "lastScrapeTime": "2026-11-23T07:00:30Z",
    "lastCycleSeconds": 0.42,
    "nodes": {"selected": 21, "scraped": 20, "failed": 1},
    "failedNodes": [{"name": "node-7", "reason": "Timeout", "message": "no answer in 10s",
                     "since": "2026-11-23T06:58:00Z"}],
    "pods": 600, "workloads": 120, "namespaces": 12,
    "cluster": {"cpuCores": 3.25, "memoryBytes": 12884901888, "cpuRequestsCores": 8.5,
                "memoryRequestsBytes": 17179869184, "cpu": "3250m", "memory": "12Gi"},
    "topWorkloads": [{"namespace": "shop", "kind": "Deployment", "name": "web", "cpuCores": 1.2,
                      "memoryBytes": 536870912}],
    "recommendations": {
        "cluster": {"workloads": 3, "reclaimableCpuCores": 1.25, "reclaimableMemoryBytes": -536870912,
                    "cpu": "1250m", "memory": "-512Mi"},
        "namespaceCount": 2,
        "namespaces": [
            {"namespace": "shop", "workloads": 2, "reclaimableCpuCores": 1.5, "reclaimableMemoryBytes": 0,
             "cpu": "1500m", "memory": "0"},
            {"namespace": "data", "workloads": 1, "reclaimableCpuCores": -0.25, "reclaimableMemoryBytes": -536870912,
             "cpu": "-250m", "memory": "-512Mi"},
        ],
    },
    "warnings": ["kubelet TLS verification is off (source.insecureSkipTLSVerify)"],
}


def test_a_full_policy_status_is_accepted_and_kept() -> None:
    obj = policy({}, copy.deepcopy(POLICY_STATUS))
    assert errors(POLICY_SCHEMA, obj) == []
    assert POLICY_SCHEMA.prepare(obj)["status"] == POLICY_STATUS  # nothing pruned


def test_policy_conditions_are_keyed_by_type() -> None:
    status = copy.deepcopy(POLICY_STATUS)
    status["conditions"].append(dict(status["conditions"][0]))
    assert ("status.conditions[2]", 'Duplicate value: {"type":"Ready"}') in errors(
        POLICY_SCHEMA, policy({}, status)
    )


def test_failed_nodes_are_bounded() -> None:
    status = {"failedNodes": [{"name": f"node-{i}"} for i in range(51)]}
    found = errors(POLICY_SCHEMA, policy({}, status))
    assert any(f == "status.failedNodes" and "at most 50 items" in m for f, m in found), found


FIGURES = {
    "cpu": {"usage": "250m", "usageCores": 0.25, "avgCores": 0.2, "maxCores": 0.4,
            "percentileCores": {"p50": 0.2, "p95": 0.35, "p99.9": 0.39}, "requestsCores": 0.5, "limitsCores": 1.0,
            "requestUtilization": 0.5, "requestPercent": "50%"},
    "memory": {"usage": "120Mi", "workingSetBytes": 125829120, "avgBytes": 120000000, "maxBytes": 130000000,
               "percentileBytes": {"p50": 119000000, "p95": 129000000}, "requestsBytes": 268435456,
               "limitsBytes": 536870912, "requestUtilization": 0.46875, "requestPercent": "47%"},
}


def workload_metrics(status: dict[str, Any] | None = None, kind: str = "Deployment") -> dict[str, Any]:
    return {
        "apiVersion": "kubemeter.io/v1alpha1",
        "kind": "WorkloadMetrics",
        "metadata": {"name": "deployment-web", "namespace": "shop"},
        "spec": {"policy": "default", "workload": {"apiVersion": "apps/v1", "kind": kind, "name": "web"}},
        **({"status": status} if status is not None else {}),
    }


WORKLOAD_STATUS = {
    "pods": 3, "podsReporting": 3, "reporting": "3/3", "window": "5m", "samples": 10, "lastUpdated": "2026-11-23T07:00:31Z",
    "lastSampleTime": "2026-11-23T07:00:29Z", "stale": False, **copy.deepcopy(FIGURES),
    "network": {"receiveBytesPerSecond": 1024.5, "transmitBytesPerSecond": 2048.0},
    "ephemeralStorage": {"usedBytes": 4096},
    "containers": [{"name": "app", **copy.deepcopy(FIGURES)}, {"name": "sidecar", "cpu": {"usageCores": 0.01}}],
    "recommendation": {
        "lastUpdateTime": "2026-11-23T07:00:00Z", "summary": "cpu:over mem:fit",
        "containers": [
            {"name": "app", "pods": 3, "confidenceDays": 2.5, "historySeconds": 216000,
             "cpu": {"verdict": "over", "request": "500m", "requestCores": 0.5, "target": "120m", "targetCores": 0.12,
                     "lowerBoundCores": 0.09, "upperBoundCores": 0.2, "differenceCores": -0.38,
                     "workloadDifferenceCores": -1.14},
             "memory": {"verdict": "fit", "request": "256Mi", "requestBytes": 268435456, "limitBytes": 536870912,
                        "target": "240Mi", "targetBytes": 251658240, "lowerBoundBytes": 209715200,
                        "upperBoundBytes": 314572800, "recommendedLimitBytes": 283115520,
                        "differenceBytes": -16777216, "workloadDifferenceBytes": -50331648}},
            {"name": "sidecar", "pods": 3, "confidenceDays": 0.01, "historySeconds": 864,
             "cpu": {"verdict": "unset", "target": "12m", "targetCores": 0.012, "lowerBoundCores": 0.001,
                     "upperBoundCores": 1.5},
             "memory": {"verdict": "learning"}},
        ],
    },
}


def test_a_full_workload_metrics_status_is_accepted_and_kept() -> None:
    obj = workload_metrics(copy.deepcopy(WORKLOAD_STATUS))
    assert errors(WORKLOAD_METRICS_SCHEMA, obj) == []
    assert WORKLOAD_METRICS_SCHEMA.prepare(obj)["status"] == WORKLOAD_STATUS


def test_byte_counts_must_be_integers() -> None:
    status = {"memory": {"workingSetBytes": 1.5}}
    found = errors(WORKLOAD_METRICS_SCHEMA, workload_metrics(status))
    assert any(f == "status.memory.workingSetBytes" and "integer" in m for f, m in found), found


def test_workload_metrics_containers_are_keyed_by_name() -> None:
    status = {"containers": [{"name": "app"}, {"name": "app"}]}
    found = errors(WORKLOAD_METRICS_SCHEMA, workload_metrics(status))
    assert any(f == "status.containers[1]" and "Duplicate value" in m for f, m in found), found


def test_recommendation_containers_are_keyed_by_name_and_verdicts_are_the_five() -> None:
    status = {"recommendation": {"containers": [{"name": "app", "cpu": {"verdict": "over"}},
                                                {"name": "app", "cpu": {"verdict": "big"}}]}}
    found = errors(WORKLOAD_METRICS_SCHEMA, workload_metrics(status))
    assert any(f == "status.recommendation.containers[1]" and "Duplicate value" in m for f, m in found), found
    assert any(f == "status.recommendation.containers[1].cpu.verdict" and 'supported values: "over", "under", '
               '"fit", "unset", "learning"' in m for f, m in found), found


def test_the_policys_right_sizing_namespaces_are_bounded() -> None:
    status = {"recommendations": {"namespaces": [{"namespace": f"ns-{i}"} for i in range(51)]}}
    found = errors(POLICY_SCHEMA, policy({}, status))
    assert any(f == "status.recommendations.namespaces" and "at most 50 items" in m for f, m in found), found


def test_workload_metrics_needs_its_workload() -> None:
    obj = workload_metrics()
    del obj["spec"]["workload"]["name"]
    assert ("spec.workload.name", "Required value") in errors(WORKLOAD_METRICS_SCHEMA, obj)


def test_the_measured_workload_cannot_be_changed() -> None:
    found = errors(WORKLOAD_METRICS_SCHEMA, workload_metrics(kind="StatefulSet"), old=workload_metrics())
    assert any(f == "spec.workload" and "workload is immutable" in m for f, m in found), found
    assert errors(WORKLOAD_METRICS_SCHEMA, workload_metrics({"pods": 1}), old=workload_metrics()) == []


CHECKPOINT_SCHEMA = CompiledSchema.compile(crd_schema("metricscheckpoints"))


def full_checkpoint(containers: int) -> dict[str, Any]:
    """The checkpoint the operator writes for a workload of ``containers`` containers whose histograms have a weight
    in every bucket (the largest it can be)."""
    # A long half-life keeps every sample, a short memory interval gives each its own peak.
    history = ContainerHistory(HistoryConfig(half_life=1e9, memory_peak_interval=60.0))
    t = 1_700_000_000.0
    for index in range(max(CPU_BUCKETS.count, MEMORY_BUCKETS.count)):
        t += 60.0
        history.add(t, CPU_BUCKETS.starts[min(index, CPU_BUCKETS.count - 1)],
                    MEMORY_BUCKETS.starts[min(index, MEMORY_BUCKETS.count - 1)], 30.0)
    assert len(history.to_dict()["cpu"]["weights"]) == CPU_BUCKETS.count
    ref = WorkloadRef("shop", "Deployment", "web", "apps/v1")
    return checkpoint_object("p", "uid", ref, "deployment-web",
                             {f"c{i}": history.to_dict() for i in range(containers)}, t)


def test_a_checkpoint_is_valid_kept_whole_by_pruning_and_far_below_the_object_size_limit() -> None:
    checkpoint = full_checkpoint(MAX_CHECKPOINT_CONTAINERS)
    assert errors(CHECKPOINT_SCHEMA, checkpoint) == []
    assert CHECKPOINT_SCHEMA.prepare(checkpoint)["spec"] == checkpoint["spec"], "nothing pruned"
    assert len(json.dumps(checkpoint)) < 300 * 1024, "the API server takes objects up to 1.5 MiB"
    too_many = full_checkpoint(MAX_CHECKPOINT_CONTAINERS + 1)
    assert ("spec.containers", "Too many: 51: must have at most 50 items") in errors(CHECKPOINT_SCHEMA, too_many)
