"""The command-line contract: `kubemeter run | sim | demo | parse`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parents[1] / "fixtures" / "kubelet"


def kubemeter(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubemeter", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "fixture",
    ["metrics-resource-eks-stable-ersilia-2025-06.txt", "stats-summary-k8s-1.22.4-minikube-docker-containers-null.json"],
)
def test_parse_prints_the_documented_shape(fixture):
    result = kubemeter("parse", str(FIXTURES / fixture))
    assert result.returncode == 0, result.stderr
    parsed = json.loads(result.stdout)
    assert set(parsed) == {"node", "pods"}
    assert set(parsed["node"]) == {"name", "cpuSeconds", "cpuNanoCores", "memoryWorkingSetBytes"}
    assert parsed["pods"] and all(set(p) == {"namespace", "name", "containers"} for p in parsed["pods"])
    containers = [c for p in parsed["pods"] for c in p["containers"]]
    assert containers and all(set(c) == {"name", "cpuSeconds", "cpuNanoCores", "memoryWorkingSetBytes"} for c in containers)


def test_parse_rejects_what_is_not_a_metrics_payload(tmp_path):
    pods = FIXTURES / "kubelet-pods-k8s-1.35.0-minikube-containerd2.json"
    result = kubemeter("parse", str(pods))
    assert result.returncode == 1 and "PodList" in result.stderr
    missing = kubemeter("parse", str(tmp_path / "nope.txt"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_every_command_documents_itself():
    for command in ("run", "sim", "demo", "parse"):
        result = kubemeter(command, "--help")
        assert result.returncode == 0 and f"usage: kubemeter {command}" in result.stdout
    run_help = kubemeter("run", "--help").stdout
    for flag in ("--metrics-port", "--log-format", "--log-level", "--write-qps", "--leader-election"):
        assert flag in run_help


def test_run_reads_its_settings_from_the_environment(monkeypatch):
    from kubemeter.cli import build_parser, run_settings

    monkeypatch.setenv("KUBEMETER_METRICS_PORT", "9999")
    monkeypatch.setenv("KUBEMETER_WRITE_QPS", "5")
    settings = run_settings(build_parser().parse_args(["run"]))
    assert settings.metrics_port == 9999 and settings.write_qps == 5.0
    flagged = run_settings(build_parser().parse_args(["run", "--metrics-port", "7000"]))
    assert flagged.metrics_port == 7000  # a flag wins over the environment
