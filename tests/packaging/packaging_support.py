"""Helpers shared by the packaging tests: repository paths, running tools, reading manifests."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "kubemeter"
CRDS = REPO / "crds"
TOOLS_DIR = REPO / ".cache" / "tools"

Manifest = dict[str, Any]
Render = Callable[..., list[Manifest]]  # the conftest fixture: render(values=None, namespace=...)

# Every optional feature of the chart at once.
ALL_FEATURES: dict[str, Any] = {
    "replicaCount": 2,
    "scrape": {"via": "proxy"},
    "serviceMonitor": {"enabled": True},
    "prometheusRule": {"enabled": True},
    "grafanaDashboard": {"enabled": True},
    "defaultPolicy": {"enabled": True, "spec": {"interval": "15s", "source": {"endpoint": "summary"}}},
}


def run(*command: str | Path, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Runs a tool and, when it fails unexpectedly, fails the test with everything it printed."""
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, command))} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def load_manifests(text: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def by_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: list[Manifest], kind: str) -> Manifest:
    found = by_kind(manifests, kind)
    assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
    return found[0]


def crd(plural: str) -> Manifest:
    return yaml.safe_load((CRDS / f"{plural}.kubemeter.io.yaml").read_text(encoding="utf-8"))


def crd_schema(plural: str) -> dict[str, Any]:
    return crd(plural)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
