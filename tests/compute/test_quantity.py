import json
import math
from pathlib import Path

import pytest

from kubemeter.compute.quantity import format_bytes, format_cpu, format_percent, parse_bytes, parse_cpu

FIXTURES = Path(__file__).parents[1] / "fixtures" / "apiserver"


@pytest.mark.parametrize(
    ("text", "cores"),
    [
        ("100m", 0.1), ("250m", 0.25), ("5m", 0.005), ("1", 1.0), ("1.5", 1.5), ("0.5", 0.5), (".5", 0.5),
        ("1.", 1.0), ("+2", 2.0), ("2k", 2000.0), ("1e3", 1000.0), ("1E3", 1000.0), ("1e-3", 0.001),
        ("2.5e+2", 250.0), ("500u", 0.0005), ("250n", 2.5e-7), ("14", 14.0), (2, 2.0), (0.25, 0.25),
    ],
)
def test_cpu_quantities(text, cores):
    assert parse_cpu(text) == pytest.approx(cores, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("128Mi", 134217728.0), ("170Mi", 170 * 2**20), ("1G", 1e9), ("1.5Gi", 1.5 * 2**30), ("1e9", 1e9),
        ("129M", 129e6), ("100Ki", 102400.0), ("12345", 12345.0), ("8024304Ki", 8024304 * 1024.0),
        ("5M", 5e6), ("1Ti", 2.0**40), ("2Ei", 2.0**61), ("1E", 1e18), ("1P", 1e15), ("0", 0.0),
    ],
)
def test_memory_quantities(text, size):
    assert parse_bytes(text) == pytest.approx(size, rel=1e-12)


@pytest.mark.parametrize(
    "bad", ["", " 1", "1 ", "1 Mi", "1mi", "1KiB", "1.5.5", "e3", "Mi", "1Ki5", "abc", "1e", "--1", None, True, [],
            float("nan"), float("inf")],
)
def test_invalid_quantities_raise_value_error_naming_the_input(bad):
    with pytest.raises(ValueError, match="invalid"):
        parse_cpu(bad)
    with pytest.raises(ValueError, match="invalid"):
        parse_bytes(bad)


def test_every_quantity_in_the_real_pod_and_node_lists_parses():
    pods = json.loads((FIXTURES / "pods-k8s-1.35.0-minikube.kubectl-get.json").read_text())["items"]
    nodes = json.loads((FIXTURES / "nodes-k8s-1.35.0-minikube.kubectl-get.json").read_text())["items"]
    parsed = 0
    for pod in pods:
        for container in pod["spec"]["containers"] + pod["spec"].get("initContainers", []):
            for kind in ("requests", "limits"):
                for resource, text in container.get("resources", {}).get(kind, {}).items():
                    value = parse_cpu(text) if resource == "cpu" else parse_bytes(text)
                    assert value > 0
                    parsed += 1
    for node in nodes:
        assert parse_cpu(node["status"]["capacity"]["cpu"]) == 14
        assert parse_bytes(node["status"]["capacity"]["memory"]) == 8024304 * 1024
    assert parsed > 20


@pytest.mark.parametrize(
    ("cores", "text"),
    [(0.25, "250m"), (2, "2"), (1.5, "1500m"), (0.000884, "1m"), (0.0004, "0m"), (0.9999, "1"), (0.1234, "123m"),
     (0, "0m"), (2.5e-7, "0m"), (-1e-12, "0m"), (-0.5, "-500m")],
)
def test_format_cpu(cores, text):
    assert format_cpu(cores) == text


@pytest.mark.parametrize(("ratio", "text"), [(0.3714, "37%"), (1.456, "146%"), (0, "0%"), (0.004, "0%")])
def test_format_percent(ratio, text):
    assert format_percent(ratio) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [(134217728, "128Mi"), (1.5 * 2**30, "1536Mi"), (100 * 1024, "100Ki"), (512, "512"), (0, "0"),
     (2**20 * 10.6, "11Mi")],
)
def test_format_bytes(size, text):
    assert format_bytes(size) == text


@pytest.mark.parametrize("value", [0.25, 3.0, 0.0004, 0.0777, 12.3456])
def test_formatted_cpu_parses_back_to_within_half_a_millicore(value):
    assert parse_cpu(format_cpu(value)) == pytest.approx(value, abs=0.0005)


@pytest.mark.parametrize("bad", [math.nan, math.inf, None, "1"])
def test_format_rejects_non_numbers(bad):
    with pytest.raises(ValueError):
        format_cpu(bad)
    with pytest.raises(ValueError):
        format_bytes(bad)
    with pytest.raises(ValueError):
        format_percent(bad)
