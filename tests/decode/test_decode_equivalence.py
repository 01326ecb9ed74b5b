"""The bench's "identical results" claim: on every real text capture, each value and timestamp the fast
decoder reports equals what prometheus_client's reference parser reads for the same series."""

from __future__ import annotations

import pytest

from kubemeter.scrape.resource import decode_resource

from .decode_fixtures import RESOURCE_COUNTS, differences_from_reference, read, reference_view


@pytest.mark.parametrize(("name", "pods", "containers"), RESOURCE_COUNTS)
def test_every_value_equals_prometheus_client(name: str, pods: int, containers: int) -> None:
    body = read(name)
    assert len(reference_view(body.decode())) == 1 + pods + containers  # the node, each pod, each container
    assert differences_from_reference(body, decode_resource(body, 0.0)) == []


def test_a_wrong_value_is_reported() -> None:
    body = b'container_cpu_usage_seconds_total{container="c",namespace="n",pod="p"} 1.5 1700000000123\n'
    metrics = decode_resource(body, 0.0)
    metrics.pods[0].containers[0].cpu_seconds = 1.25
    metrics.pods[0].containers[0].timestamp = 1700000000.0
    assert differences_from_reference(body, metrics) == [
        "('container', 'n', 'p', 'c') cpu_seconds: 1.25 != 1.5",
        "('container', 'n', 'p', 'c') timestamp: 1700000000.0 != 1700000000.123",
    ]
