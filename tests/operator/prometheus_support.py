"""A real Prometheus scraping the operator as prometheus-operator would for the chart's ServiceMonitor, and the
chart's monitoring objects rendered: for the tests that evaluate the dashboard's queries and the alerts' expressions."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from kubemeter_sim.ports import free_port

from tests.operator.conftest import eventually
from tests.packaging.packaging_support import CHART, TOOLS_DIR, Manifest, by_kind, load_manifests, one, run

RELEASE_NAMESPACE = "kubemeter"
# A short scrape interval, so that the test waits little for Prometheus.
CHART_VALUES = {"serviceMonitor": {"enabled": True, "interval": "1s", "scrapeTimeout": "1s"},
                "prometheusRule": {"enabled": True}, "grafanaDashboard": {"enabled": True}}


def tool(name: str) -> Path:
    path = TOOLS_DIR / "bin" / name
    assert path.exists(), f"{path} is missing: run `make tools` (hack/install-tools.sh)"
    return path


def render_chart(tmp_path: Path, namespace: str = RELEASE_NAMESPACE) -> list[Manifest]:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(CHART_VALUES))
    result = run(tool("helm"), "template", "km", CHART, "--namespace", namespace, "-f", values)
    return load_manifests(result.stdout)


def scrape_config(manifests: list[Manifest], port: int, *, honor_labels: bool | None = None) -> dict[str, Any]:
    """What prometheus-operator generates for the rendered ServiceMonitor's endpoint, with the pod at ``port`` on
    loopback as its one target (``honor_labels``: instead of the rendered honorLabels, for the control)."""
    monitor = one(manifests, "ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    # prometheus-operator would turn them into relabel_configs and metric_relabel_configs: none rendered, none here.
    assert not endpoint.keys() & {"relabelings", "metricRelabelings"}, "translate them into the scrape config"
    (service,) = [s for s in by_kind(manifests, "Service")
                  if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    (operator_container,) = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"]
    service_name = service["metadata"]["name"]
    # prometheus-operator's relabelings put the Kubernetes metadata into these target labels (pkg/prometheus/
    # promcfg.go); `job` is the Service's name unless the ServiceMonitor has a jobLabel.
    target_labels = {"namespace": service["metadata"]["namespace"], "service": service_name,
                     "pod": f"{service_name}-7d9f8b6c4-x2x5q",  # as the Deployment's ReplicaSet names it
                     "container": operator_container["name"], "endpoint": endpoint["port"], "job": service_name}
    return {
        "job_name": f"serviceMonitor/{monitor['metadata']['namespace']}/{monitor['metadata']['name']}/0",
        "scrape_interval": endpoint["interval"],
        "scrape_timeout": endpoint["scrapeTimeout"],
        "metrics_path": endpoint["path"],
        "honor_labels": endpoint["honorLabels"] if honor_labels is None else honor_labels,
        "static_configs": [{"targets": [f"127.0.0.1:{port}"], "labels": target_labels}],
    }


class Prometheus:
    """A Prometheus server on loopback, queried through its HTTP API."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url, self.session = url, session

    async def get(self, path: str, **params: str) -> Any:
        async with self.session.get(f"{self.url}{path}", params=params) as response:
            body = await response.json()
        assert body["status"] == "success", body
        return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's vector: each series' labels and value."""
        data = await self.get("/api/v1/query", query=expr)
        assert data["resultType"] == "vector", (expr, data)
        return [{"labels": r["metric"], "value": float(r["value"][1])} for r in data["result"]]

    async def label_values(self, selector: str, label: str) -> list[str]:
        """Grafana's ``label_values(selector, label)``."""
        return await self.get(f"/api/v1/label/{label}/values", **{"match[]": selector})


@contextlib.asynccontextmanager
async def prometheus(workdir: Path, scrape: dict[str, Any]) -> AsyncIterator[Prometheus]:
    """Prometheus scraping with ``scrape``, once it has scraped the target."""
    workdir.mkdir()
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump({"global": {"evaluation_interval": "1s"}, "scrape_configs": [scrape]}))
    port = free_port()
    log = (workdir / "prometheus.log").open("w")
    process = subprocess.Popen(
        [tool("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        async with aiohttp.ClientSession() as session:
            server = Prometheus(f"http://127.0.0.1:{port}", session)

            async def scraped() -> bool:
                if process.poll() is not None:
                    pytest.fail(f"prometheus exited {process.returncode}:\n{(workdir / 'prometheus.log').read_text()}")
                try:
                    return bool(await server.query("count(kubemeter_build_info)"))
                except aiohttp.ClientError:
                    return False  # not listening yet

            await eventually(scraped, timeout=60)
            yield server
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def alert_rules(manifests: list[Manifest]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for group in one(manifests, "PrometheusRule")["spec"]["groups"] for r in group["rules"]}
