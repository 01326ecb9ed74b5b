"""hack/install-tools.sh: one version line per tool, idempotent, and loud when misused."""

from __future__ import annotations

import re

from .packaging_support import REPO, TOOLS_DIR, run

SCRIPT = REPO / "hack" / "install-tools.sh"


def test_prints_one_version_line_per_tool(tools: str) -> None:
    lines = tools.splitlines()
    assert [line.split()[0] for line in lines] == ["helm", "kubectl", "promtool", "prometheus", "hadolint"]
    for line in lines:
        assert re.search(r"\s(v?\d+\.\d+\.\d+)\S*\s+/\S+$", line), line


def test_second_run_keeps_the_installed_tools(tools: str) -> None:
    installed = {path.name: path.stat().st_mtime_ns for path in (TOOLS_DIR / "bin").iterdir()}
    assert {"helm", "promtool", "prometheus"} <= installed.keys()
    assert run("bash", SCRIPT, TOOLS_DIR).stdout == tools
    assert {path.name: path.stat().st_mtime_ns for path in (TOOLS_DIR / "bin").iterdir()} == installed


def test_installed_promtool_checks_metrics(tools: str) -> None:
    exposition = "# HELP kubemeter_up Whether it works.\n# TYPE kubemeter_up gauge\nkubemeter_up 1\n"
    result = run(TOOLS_DIR / "bin" / "promtool", "check", "metrics", input=exposition)
    assert result.stdout == result.stderr == ""


def test_installed_prometheus_server_runs(tools: str) -> None:
    # The server itself, for the tests that scrape the operator with a real Prometheus.
    result = run(TOOLS_DIR / "bin" / "prometheus", "--version")
    assert result.stdout.startswith("prometheus, version ")


def test_usage_error_is_explained() -> None:
    result = run("bash", SCRIPT, check=False)
    assert result.returncode != 0
    assert "usage:" in result.stderr and "DIR" in result.stderr
