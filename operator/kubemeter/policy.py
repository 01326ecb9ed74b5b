"""MetricsPolicy spec: parsing, defaults and semantic checks, independent of kopf and of the API server.

The CRD schema already rejects most bad input; this module re-applies the defaults and checks the rules
again because a policy can reach the operator from an older CRD version or a server that skipped validation,
and an operator that trusts its input crashes on it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from kubemeter.compute.quantity import parse_bytes, parse_cpu
from kubemeter.compute.rightsizing import STRATEGIES, HistoryConfig, RightsizingConfig
from kubemeter.compute.window import MAX_WINDOW_SAMPLES
from kubemeter.timefmt import parse_duration

ENDPOINTS = ("resource", "summary")
VIAS = ("direct", "proxy")
LEVELS = ("workload", "namespace", "node", "cluster")
RECOMMENDATION_METRICS = ("None", "Differences", "Full")
"""``spec.recommendations.metrics``, from the least right-sizing detail on /metrics to the most (see
``publish.prometheus``): None, only the namespace and cluster roll-ups; Differences, also each workload container's
requested minus recommended and shortfall below the lower bound (what the chart's dashboard and alerts read);
Full, also its recommendation, bounds, memory limit, history and requests."""
DEFAULT_RECOMMENDATION_METRICS = "Differences"

_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")

# Kubernetes' label syntax (apimachinery validation.IsQualifiedName / IsValidLabelValue): a name of up to 63
# characters, alphanumeric at both ends, with "-", "_" and "." inside; a key may carry a DNS-subdomain prefix.
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
LABEL_KEY_PATTERN = rf"^({_DNS_LABEL}(\.{_DNS_LABEL})*/)?{_LABEL_NAME}$"
LABEL_VALUE_PATTERN = rf"^({_LABEL_NAME})?$"
_LABEL_KEY = re.compile(LABEL_KEY_PATTERN)
_LABEL_VALUE = re.compile(LABEL_VALUE_PATTERN)
_NAME_RULE = '1-63 letters, digits, "-", "_" or ".", alphanumeric at both ends'

# An unset timeout and window follow the interval (the CRD cannot default one field from another), so that any
# interval the schema accepts runs with them as they are, and an error names only a value the user wrote.
TIMEOUT_SHARE_OF_INTERVAL = 0.8
"""metrics-server scrapes within 90% of its resolution; kubemeter also aggregates and publishes within the interval."""
MAX_DERIVED_TIMEOUT = 10.0
"""A kubelet answers /metrics/resource in well under a second: one silent for 10 s is failing, and a longer wait
would only delay the other nodes' figures (the timeout bounds the whole scrape phase)."""
WINDOW_INTERVALS = 10
"""The samples a derived window holds at least: the 5m default's at the 30s default interval."""
MIN_DERIVED_WINDOW = 300.0
MAX_INTERVAL = 86_400.0
"""The longest spec.interval: a day, the right-sizing defaults' half-life and memory peak interval (a sample a day
is already a thin history), and the derived window (10 intervals) ten days. Beyond it a policy is a mistake, and
the derived values would be figures no one reads (``interval: 2562047h``: a window of 25,620,470 hours)."""


def derived_timeout(interval: float) -> float:
    """``spec.source.timeout`` when unset: 80% of the interval, at most 10 s (10 s from a 12.5 s interval on)."""
    return min(MAX_DERIVED_TIMEOUT, TIMEOUT_SHARE_OF_INTERVAL * interval)


def derived_window(interval: float) -> float:
    """``spec.aggregation.window`` when unset: 10 intervals, at least 5 minutes (30 samples at the 10 s minimum
    interval: always within the 1440-sample bound)."""
    return max(MIN_DERIVED_WINDOW, WINDOW_INTERVALS * interval)


def _label_problems(key_field: str, keys: list[object], value_field: str, values: list[object]) -> list[str]:
    problems = [
        f'{key_field}: {key!r} is not a valid label key (an optional DNS-subdomain prefix and "/", then {_NAME_RULE})'
        for key in keys
        if not isinstance(key, str) or not _LABEL_KEY.fullmatch(key) or len(key.partition("/")[0]) > 253
    ]
    problems += [
        f"{value_field}: {value!r} is not a valid label value (empty, or {_NAME_RULE})"
        for value in values
        if not isinstance(value, str) or not _LABEL_VALUE.fullmatch(value)
    ]
    return problems


class PolicyError(ValueError):
    """A policy the operator cannot run; the message lists every problem found."""


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A metav1.LabelSelector; the empty selector matches everything."""

    match_labels: tuple[tuple[str, str], ...] = ()
    expressions: tuple[tuple[str, str, frozenset[str]], ...] = ()

    @classmethod
    def parse(cls, raw: object, field: str, problems: list[str]) -> LabelSelector:
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            problems.append(f"{field}: must be a label selector object")
            return cls()
        labels = raw.get("matchLabels") or {}
        if not isinstance(labels, Mapping):
            problems.append(f"{field}.matchLabels: must map label keys to values")
            labels = {}
        where = f"{field}.matchLabels"
        label_problems = _label_problems(where, list(labels), where, list(labels.values()))
        if label_problems:
            problems += label_problems
            labels = {}
        expressions = []
        for i, expr in enumerate(raw.get("matchExpressions") or ()):
            where = f"{field}.matchExpressions[{i}]"
            if not isinstance(expr, Mapping) or not isinstance(expr.get("key"), str):
                problems.append(f"{where}: needs a key")
                continue
            op, values = expr.get("operator"), expr.get("values") or []
            label_problems = _label_problems(
                f"{where}.key", [expr["key"]], f"{where}.values", values if isinstance(values, list) else [values]
            )
            if label_problems:
                problems += label_problems
            elif op not in _OPERATORS:
                problems.append(f"{where}.operator: {op!r} is not one of {', '.join(_OPERATORS)}")
            elif op in ("In", "NotIn") and not values:
                problems.append(f"{where}.values: must be non-empty for operator {op}")
            elif op in ("Exists", "DoesNotExist") and values:
                problems.append(f"{where}.values: must be empty for operator {op}")
            else:
                expressions.append((expr["key"], op, frozenset(values)))
        return cls(tuple(sorted(labels.items())), tuple(expressions))

    @property
    def empty(self) -> bool:
        return not self.match_labels and not self.expressions

    def matches(self, labels: Mapping[str, str]) -> bool:
        for key, value in self.match_labels:
            if labels.get(key) != value:
                return False
        for key, op, values in self.expressions:
            present = key in labels
            if op == "In" and (not present or labels[key] not in values):
                return False
            if op == "NotIn" and present and labels[key] in values:
                return False
            if op == "Exists" and not present:
                return False
            if op == "DoesNotExist" and present:
                return False
        return True


@dataclass(frozen=True, slots=True)
class PolicySpec:
    interval: float = 30.0
    namespaces: frozenset[str] = frozenset()
    namespace_selector: LabelSelector = LabelSelector()
    exclude_namespaces: frozenset[str] = frozenset()
    pod_selector: LabelSelector = LabelSelector()
    node_selector: LabelSelector = LabelSelector()
    endpoint: str = "resource"
    via: str = "direct"
    timeout: float = 10.0
    concurrency: int = 64
    insecure_skip_tls_verify: bool = False
    levels: frozenset[str] = frozenset(LEVELS)
    window: float = 300.0
    percentiles: tuple[float, ...] = (50.0, 95.0)
    workload_metrics: bool = True
    prometheus: bool = True
    top_workloads: int = 10
    min_status_change: float = 0.05
    max_status_age: float = 300.0
    recommendations: RightsizingConfig | None = RightsizingConfig()
    """``None`` when ``spec.recommendations.enabled`` is false."""
    checkpoint_interval: float = 600.0
    """How often each workload's right-sizing history is checkpointed."""
    recommendation_metrics: str = DEFAULT_RECOMMENDATION_METRICS
    """``spec.recommendations.metrics``: one of :data:`RECOMMENDATION_METRICS`."""

    def selects_namespace(self, name: str, labels: Mapping[str, str]) -> bool:
        if name in self.exclude_namespaces:
            return False
        if self.namespaces and name not in self.namespaces:
            return False
        return self.namespace_selector.matches(labels)


def _duration(raw: Mapping, key: str, default: float, field: str, problems: list[str]) -> float:
    value = raw.get(key)
    if value is None:
        return default
    try:
        return parse_duration(value)
    except ValueError as exc:
        problems.append(f"{field}: {exc}")
        return default


def _choice(raw: Mapping, key: str, choices: tuple[str, ...], field: str, problems: list[str],
            default: str | None = None) -> str:
    """One of ``choices`` (``default`` when unset, the first unless given)."""
    default = choices[0] if default is None else default
    value = raw.get(key, default)
    if value not in choices:
        problems.append(f"{field}: unsupported value {value!r}: supported values: {', '.join(choices)}")
        return default
    return value


def _int(raw: Mapping, key: str, default: int, low: int, high: int, field: str, problems: list[str]) -> int:
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        problems.append(f"{field}: must be an integer from {low} to {high}, got {value!r}")
        return default
    return value


def _section(spec: Mapping, key: str, problems: list[str]) -> Mapping:
    value = spec.get(key) or {}
    if not isinstance(value, Mapping):
        problems.append(f"spec.{key}: must be an object")
        return {}
    return value


def _names(raw: Mapping, key: str, field: str, problems: list[str]) -> frozenset[str]:
    value = raw.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"{field}: must be a list of names")
        return frozenset()
    return frozenset(value)


def _decimal(raw: Mapping, key: str, default: float, high: float, field: str, problems: list[str]) -> float:
    """A decimal from 0 to ``high``, written as a string ("0.15": API conventions keep floats out of specs; a number
    from a server that skipped the schema is taken as it is)."""
    text = raw.get(key)
    if text is None:
        return default
    try:
        value = math.nan if isinstance(text, bool) else float(text)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and 0 <= value <= high):
        problems.append(f"{field}: must be a decimal from 0 to {high:g}, got {text!r}")
        return default
    return value


def _percentile(raw: Mapping, key: str, default: float, field: str, problems: list[str]) -> float:
    value = raw.get(key, default)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 100:
        problems.append(f"{field}: must be a number from 0 to 100, got {value!r}")
        return default
    return float(value)


def _bounds(raw: Mapping, resource: str, problems: list[str]) -> tuple[float | None, float | None]:
    """``spec.recommendations.<resource>.min/max``: quantities, as a LimitRange's."""
    section = raw.get(resource) or {}
    field = f"spec.recommendations.{resource}"
    if not isinstance(section, Mapping):
        problems.append(f"{field}: must be an object with min and max quantities")
        return None, None
    parse = parse_cpu if resource == "cpu" else parse_bytes
    found: list[float | None] = []
    for key in ("min", "max"):
        value = section.get(key)
        try:
            found.append(None if value is None else parse(value))
        except ValueError as exc:
            problems.append(f"{field}.{key}: {exc}")
            found.append(None)
    low, high = found
    if low is not None and low < 0 or high is not None and high < 0:
        problems.append(f"{field}: min and max must not be negative")
        return None, None
    if low is not None and high is not None and low > high:
        problems.append(f"{field}.min: must not be above {field}.max")
        return None, None
    return low, high


def _rightsizing(raw: Mapping, problems: list[str]) -> RightsizingConfig | None:
    """``spec.recommendations``: the strategy's preset, with the fields a policy sets in its place."""
    field = "spec.recommendations"
    if not raw.get("enabled", True):
        return None
    strategy = _choice(raw, "strategy", tuple(STRATEGIES), f"{field}.strategy", problems)
    preset = STRATEGIES[strategy]
    before = len(problems)
    cpu_min, cpu_max = _bounds(raw, "cpu", problems)
    memory_min, memory_max = _bounds(raw, "memory", problems)
    recommendation = replace(
        preset,
        cpu_percentile=_percentile(raw, "cpuPercentile", preset.cpu_percentile, f"{field}.cpuPercentile", problems),
        memory_percentile=_percentile(raw, "memoryPercentile", preset.memory_percentile,
                                      f"{field}.memoryPercentile", problems),
        cpu_margin=_decimal(raw, "cpuMargin", preset.cpu_margin, 10.0, f"{field}.cpuMargin", problems),
        memory_margin=_decimal(raw, "memoryMargin", preset.memory_margin, 10.0, f"{field}.memoryMargin", problems),
        cpu_min=cpu_min, cpu_max=cpu_max, memory_min=memory_min, memory_max=memory_max,
    )
    half_life = _duration(raw, "halfLife", 86_400.0, f"{field}.halfLife", problems)
    peak_interval = _duration(raw, "memoryPeakInterval", 86_400.0, f"{field}.memoryPeakInterval", problems)
    min_history = _duration(raw, "minHistory", 3600.0, f"{field}.minHistory", problems)
    for name, value in (("halfLife", half_life), ("memoryPeakInterval", peak_interval)):
        if value < 60.0:
            problems.append(f"{field}.{name}: must be at least 1m")
    if len(problems) > before:
        return None
    return RightsizingConfig(HistoryConfig(half_life, peak_interval), recommendation, strategy, min_history)


def parse_policy(spec: Mapping | None) -> PolicySpec:
    """The typed spec with defaults applied; raises PolicyError listing every problem."""
    spec = spec or {}
    problems: list[str] = []
    selector = _section(spec, "selector", problems)
    source = _section(spec, "source", problems)
    aggregation = _section(spec, "aggregation", problems)
    output = _section(spec, "output", problems)

    interval = _duration(spec, "interval", 30.0, "spec.interval", problems)
    timeout = _duration(source, "timeout", derived_timeout(interval), "spec.source.timeout", problems)
    window = _duration(aggregation, "window", derived_window(interval), "spec.aggregation.window", problems)
    max_status_age = _duration(output, "maxStatusAge", 300.0, "spec.output.maxStatusAge", problems)
    if interval < 10.0:
        problems.append("spec.interval: must be at least 10s")
    elif interval > MAX_INTERVAL:
        problems.append("spec.interval: must be at most 24h")
    # The derived values always hold: only a value the policy sets can break these rules.
    if source.get("timeout") is not None and (timeout <= 0 or timeout >= interval):
        problems.append("spec.source.timeout: must be greater than 0 and shorter than spec.interval")
    if aggregation.get("window") is not None:
        if window < interval:
            problems.append("spec.aggregation.window: must be at least spec.interval")
        elif interval >= 10.0 and window / interval > MAX_WINDOW_SAMPLES:
            problems.append(f"spec.aggregation.window: may hold at most {MAX_WINDOW_SAMPLES} intervals")

    percentiles = aggregation.get("percentiles", [50, 95])
    if not isinstance(percentiles, list) or not all(
        isinstance(p, (int, float)) and not isinstance(p, bool) and 0 < p <= 100 for p in percentiles
    ):
        problems.append("spec.aggregation.percentiles: each percentile must be a number in (0, 100]")
        percentiles = [50, 95]
    levels = aggregation.get("levels", list(LEVELS))
    if not isinstance(levels, list) or any(level not in LEVELS for level in levels):
        problems.append(f"spec.aggregation.levels: each level must be one of {', '.join(LEVELS)}")
        levels = list(LEVELS)

    min_status_change = _decimal(output, "minStatusChange", 0.05, 1.0, "spec.output.minStatusChange", problems)
    recommendations = _section(spec, "recommendations", problems)
    rightsizing = _rightsizing(recommendations, problems)
    checkpoint_interval = _duration(recommendations, "checkpointInterval", 600.0,
                                    "spec.recommendations.checkpointInterval", problems)
    if checkpoint_interval < 60.0:
        problems.append("spec.recommendations.checkpointInterval: must be at least 1m")

    parsed = PolicySpec(
        interval=interval,
        namespaces=_names(selector, "namespaces", "spec.selector.namespaces", problems),
        namespace_selector=LabelSelector.parse(
            selector.get("namespaceSelector"), "spec.selector.namespaceSelector", problems
        ),
        exclude_namespaces=_names(selector, "excludeNamespaces", "spec.selector.excludeNamespaces", problems),
        pod_selector=LabelSelector.parse(selector.get("podSelector"), "spec.selector.podSelector", problems),
        node_selector=LabelSelector.parse(selector.get("nodeSelector"), "spec.selector.nodeSelector", problems),
        endpoint=_choice(source, "endpoint", ENDPOINTS, "spec.source.endpoint", problems),
        via=_choice(source, "via", VIAS, "spec.source.via", problems),
        timeout=timeout,
        concurrency=_int(source, "concurrency", 64, 1, 1000, "spec.source.concurrency", problems),
        insecure_skip_tls_verify=bool(source.get("insecureSkipTLSVerify", False)),
        levels=frozenset(levels),
        window=window,
        percentiles=tuple(sorted({float(p) for p in percentiles})),
        workload_metrics=bool(output.get("workloadMetrics", True)),
        prometheus=bool(output.get("prometheus", True)),
        top_workloads=_int(output, "topWorkloads", 10, 0, 100, "spec.output.topWorkloads", problems),
        min_status_change=min_status_change,
        max_status_age=max_status_age,
        recommendations=rightsizing,
        checkpoint_interval=checkpoint_interval,
        recommendation_metrics=_choice(recommendations, "metrics", RECOMMENDATION_METRICS,
                                       "spec.recommendations.metrics", problems, DEFAULT_RECOMMENDATION_METRICS),
    )
    if problems:
        raise PolicyError("; ".join(problems))
    return parsed
