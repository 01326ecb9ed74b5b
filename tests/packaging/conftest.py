"""Fixtures for the packaging checks: the external tools on PATH and chart rendering."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .packaging_support import CHART, REPO, TOOLS_DIR, Manifest, Render, load_manifests, run


@pytest.fixture(scope="session", autouse=True)
def tools() -> str:
    """helm, kubectl, promtool, prometheus and hadolint on PATH. `make test` installs them first; run the installer here as
    well (idempotent, well under a second when done) so plain pytest works too. Missing tools fail, never skip."""
    venv_bin = Path(sys.executable).parent
    os.environ["PATH"] = os.pathsep.join([str(TOOLS_DIR / "bin"), str(venv_bin), os.environ.get("PATH", "")])
    result = subprocess.run(
        ["bash", str(REPO / "hack" / "install-tools.sh"), str(TOOLS_DIR)], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.fail(f"hack/install-tools.sh could not provide the packaging tools:\n{result.stderr}", pytrace=False)
    return result.stdout


@pytest.fixture(scope="session")
def render(tmp_path_factory: pytest.TempPathFactory) -> Render:
    """`helm template` of the chart with the given values, CRDs included; cached per values and namespace."""
    cache: dict[str, list[Manifest]] = {}

    def _render(values: dict[str, Any] | None = None, namespace: str = "kubemeter") -> list[Manifest]:
        key = yaml.safe_dump([values, namespace])
        if key not in cache:
            values_file = tmp_path_factory.mktemp("values") / "values.yaml"
            values_file.write_text(yaml.safe_dump(values or {}))
            result = run("helm", "template", "km", CHART, "--namespace", namespace, "--include-crds", "-f", values_file)
            cache[key] = load_manifests(result.stdout)
        return cache[key]

    return _render
