"""The operator's own reading of MetricsPolicy specs: defaults, selectors and every rejected value."""

import pytest

from kubemeter.policy import LabelSelector, PolicyError, parse_policy


def test_empty_spec_gets_the_documented_defaults():
    spec = parse_policy({})
    assert spec.interval == 30 and spec.timeout == 10 and spec.window == 300
    assert spec.endpoint == "resource" and spec.via == "direct" and spec.concurrency == 64
    assert spec.percentiles == (50.0, 95.0)
    assert spec.levels == {"workload", "namespace", "node", "cluster"}
    assert spec.min_status_change == 0.05 and spec.max_status_age == 300
    assert spec.workload_metrics and spec.prometheus and spec.top_workloads == 10


@pytest.mark.parametrize(("interval", "timeout", "window"), [
    ("10s", 8, 300), ("12s500ms", 10, 300), ("30s", 10, 300), ("1m", 10, 600), ("1h", 10, 36000),
])
def test_an_unset_timeout_and_window_follow_the_interval(interval, timeout, window):
    """80% of the interval, at most 10s; 10 intervals, at least 5m (README, MetricsPolicy reference)."""
    spec = parse_policy({"interval": interval})
    assert (spec.timeout, spec.window) == (timeout, window)


@pytest.mark.parametrize(("spec", "field"), [
    ({"interval": "10s", "source": {"timeout": "10s"}}, "spec.source.timeout"),
    ({"interval": "1h", "aggregation": {"window": "5m"}}, "spec.aggregation.window"),
    ({"interval": "5s"}, "spec.interval"),
])
def test_an_error_names_only_what_the_policy_set(spec, field):
    with pytest.raises(PolicyError) as caught:
        parse_policy(spec)
    assert [problem.partition(":")[0] for problem in str(caught.value).split("; ")] == [field]


def test_full_spec_is_read():
    spec = parse_policy(
        {
            "interval": "1m30s",
            "selector": {"namespaces": ["a", "b"], "excludeNamespaces": ["b"], "podSelector": {"matchLabels": {"x": "1"}}},
            "source": {"endpoint": "summary", "via": "proxy", "timeout": "500ms", "concurrency": 3},
            "aggregation": {"window": "10m", "percentiles": [99.9, 50], "levels": ["workload"]},
            "output": {"minStatusChange": "0.1", "maxStatusAge": "2m", "topWorkloads": 0},
        }
    )
    assert spec.interval == 90 and spec.timeout == 0.5 and spec.window == 600
    assert spec.percentiles == (50.0, 99.9)
    assert spec.selects_namespace("a", {}) and not spec.selects_namespace("b", {}) and not spec.selects_namespace("c", {})
    assert spec.endpoint == "summary" and spec.via == "proxy" and spec.concurrency == 3
    assert spec.min_status_change == 0.1 and spec.max_status_age == 120 and spec.top_workloads == 0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"interval": "30x"}, "spec.interval: invalid duration '30x'"),
        ({"interval": "5s"}, "spec.interval: must be at least 10s"),
        ({"interval": "2562047h"}, "spec.interval: must be at most 24h"),
        ({"interval": "30s", "source": {"timeout": "30s"}}, "spec.source.timeout: must be greater than 0 and shorter"),
        ({"interval": "1m", "aggregation": {"window": "30s"}}, "spec.aggregation.window: must be at least spec.interval"),
        ({"interval": "10s", "aggregation": {"window": "5h"}}, "spec.aggregation.window: may hold at most 1440 intervals"),
        ({"aggregation": {"percentiles": [0]}}, "each percentile must be a number in (0, 100]"),
        ({"aggregation": {"percentiles": [101]}}, "each percentile must be a number in (0, 100]"),
        ({"source": {"endpoint": "cadvisor"}}, "spec.source.endpoint: unsupported value 'cadvisor'"),
        ({"source": {"via": "ssh"}}, "spec.source.via: unsupported value 'ssh'"),
        ({"source": {"concurrency": 0}}, "spec.source.concurrency: must be an integer from 1 to 1000"),
        ({"output": {"minStatusChange": "lots"}}, "spec.output.minStatusChange: must be a decimal from 0 to 1"),
        ({"aggregation": {"levels": ["pod"]}}, "spec.aggregation.levels"),
        ({"selector": {"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}}, "must be non-empty"),
        ({"selector": "all"}, "spec.selector: must be an object"),
        ({"selector": {"podSelector": {"matchLabels": {"a b": "x"}}}},
         "spec.selector.podSelector.matchLabels: 'a b' is not a valid label key"),
        ({"selector": {"nodeSelector": {"matchLabels": {"zone": "-x"}}}},
         "spec.selector.nodeSelector.matchLabels: '-x' is not a valid label value"),
        ({"selector": {"podSelector": {"matchLabels": {"x" * 64: "y"}}}}, "is not a valid label key"),
        ({"selector": {"podSelector": {"matchLabels": {"app\n": "y"}}}}, "is not a valid label key"),
        ({"selector": {"namespaceSelector": {"matchExpressions": [{"key": "/x", "operator": "Exists"}]}}},
         "spec.selector.namespaceSelector.matchExpressions[0].key: '/x' is not a valid label key"),
        ({"selector": {"podSelector": {"matchExpressions": [{"key": "k", "operator": "In", "values": ["a b"]}]}}},
         "spec.selector.podSelector.matchExpressions[0].values: 'a b' is not a valid label value"),
        ({"recommendations": {"strategy": "krr"}}, "spec.recommendations.strategy: unsupported value 'krr'"),
        ({"recommendations": {"cpuPercentile": 101}}, "spec.recommendations.cpuPercentile: must be a number from 0"),
        ({"recommendations": {"memoryMargin": "-0.1"}}, "spec.recommendations.memoryMargin: must be a decimal"),
        ({"recommendations": {"cpu": {"min": "2", "max": "1"}}}, "spec.recommendations.cpu.min: must not be above"),
        ({"recommendations": {"memory": {"max": "lots"}}}, "spec.recommendations.memory.max: invalid memory quantity"),
        ({"recommendations": {"halfLife": "10s"}}, "spec.recommendations.halfLife: must be at least 1m"),
        ({"recommendations": {"checkpointInterval": "5s"}}, "spec.recommendations.checkpointInterval: must be at"),
        ({"recommendations": "on"}, "spec.recommendations: must be an object"),
        ({"recommendations": {"metrics": "full"}},
         "spec.recommendations.metrics: unsupported value 'full': supported values: None, Differences, Full"),
        ({"recommendations": {"metrics": None}}, "spec.recommendations.metrics: unsupported value None"),
    ],
)
def test_invalid_specs_are_rejected_with_the_field_named(spec, message):
    with pytest.raises(PolicyError) as caught:
        parse_policy(spec)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "labels",
    [{"app.kubernetes.io/name": "web"}, {"topology.kubernetes.io/zone": ""}, {"A_b.c-9": "X_y.z-0"},
     {"example.com/" + "n" * 63: "v" * 63}],
)
def test_valid_label_keys_and_values_are_accepted(labels):
    spec = parse_policy({"selector": {"podSelector": {"matchLabels": labels}}})
    assert spec.pod_selector.matches(labels)


def test_recommendations_take_the_strategy_preset_and_the_fields_a_policy_sets():
    default_spec = parse_policy({})
    default = default_spec.recommendations
    assert (default.strategy, default.recommendation.cpu_percentile, default.min_history) == ("vpa", 90.0, 3600.0)
    spec = parse_policy({"recommendations": {
        "strategy": "simple", "memoryPercentile": 99, "cpuMargin": "0.1", "halfLife": "12h", "minHistory": "30m",
        "cpu": {"min": "10m", "max": "4"}, "memory": {"min": "32Mi"}, "checkpointInterval": "5m"}})
    made = spec.recommendations.recommendation
    assert (made.cpu_percentile, made.memory_percentile, made.cpu_margin, made.memory_margin) == (95.0, 99.0, 0.1, 0.15)
    assert (made.cpu_min, made.cpu_max, made.memory_min, made.memory_max) == (0.01, 4.0, 32 * 2**20, None)
    assert (spec.recommendations.history.half_life, spec.recommendations.min_history) == (43200.0, 1800.0)
    assert spec.checkpoint_interval == 300.0
    assert parse_policy({"recommendations": {"enabled": False}}).recommendations is None
    assert default_spec.recommendation_metrics == "Differences"
    assert parse_policy({"recommendations": {"metrics": "Full"}}).recommendation_metrics == "Full"
    assert parse_policy({"recommendations": {"metrics": "None"}}).recommendation_metrics == "None"


def test_every_problem_is_reported_at_once():
    with pytest.raises(PolicyError) as caught:
        parse_policy({"interval": "bad", "source": {"endpoint": "x", "via": "y"}})
    text = str(caught.value)
    assert "spec.interval" in text and "spec.source.endpoint" in text and "spec.source.via" in text


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ({}, {"a": "1"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "2"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {"a": "1"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": ""}, False),
    ],
)
def test_label_selector_semantics(selector, labels, expected):
    problems: list[str] = []
    parsed = LabelSelector.parse(selector, "sel", problems)
    assert problems == []
    assert parsed.matches(labels) is expected


def test_a_bare_zero_min_history_judges_from_the_first_sample_as_0s_does():
    assert parse_policy({"recommendations": {"minHistory": "0"}}).recommendations.min_history == 0.0
