"""The chart's ClusterRole is exactly what the operator needs: the operator runs end to end as the chart's
ServiceAccount under the rendered rules, on a real control plane (the manifests applied, a TokenRequest token,
403s read from the audit log) and on the simulator (which enforces the same rules); proxy mode needs the opt-in,
and so do the token reviews of metricsAuth, whose /metrics answers only the chart's metrics readers."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import kubernetes
import pytest
from kubernetes.config import incluster_config

from kubemeter.app import RunSettings
from kubemeter.cli import build_parser, run_settings
from kubemeter_sim.demo import install_crds
from kubemeter.kube import load_configuration
from kubemeter_sim.cluster import Cluster
from kubemeter_sim.real.cluster import RealCluster
from kubemeter_sim.real.rest import collection
from kubemeter_sim.tls import CertificateAuthority, write_server_chain
from tests.operator.conftest import BACKENDS, CRDS_DIR, Operator, eventually, start_operator, stepped
from tests.reliability.support import events

from .packaging_support import OPERATOR_NAMESPACE, by_kind, chart_service_account_token, kubeconfig_with_token


def denied_requests(cluster: Cluster | RealCluster, username: str) -> list:
    """Every request of ``username`` that authorization refused: the real server's audit log, the simulator's
    record. On the real server the audit log must also show the user's requests at all (else a broken audit
    configuration would pass)."""
    if not isinstance(cluster, RealCluster):
        return [entry for entry in cluster.apiserver.denied if entry[0] == username]
    events = cluster.control_plane.audit_events(username)
    assert any(e["verb"] == "watch" for e in events), "the audit log records the operator's requests"
    return [(e["verb"], e["requestURI"]) for e in events if e.get("responseStatus", {}).get("code") == 403]


def mount_service_account(cluster: Cluster | RealCluster, token: str, directory: Path,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    """What a pod sees: the service-account token and CA files, and KUBERNETES_SERVICE_HOST/PORT (no KUBECONFIG)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "token").write_text(token)
    (directory / "ca.crt").write_bytes(cluster.ca_path.read_bytes())
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(directory / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(directory / "ca.crt"))
    url = urlsplit(cluster.url)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", url.hostname)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(url.port))
    monkeypatch.delenv("KUBECONFIG", raising=False)


def chart_settings(manifests: list[dict], monkeypatch: pytest.MonkeyPatch) -> RunSettings:
    """The settings the chart's Deployment gives the operator: its container args read by kubemeter's own command
    line, in the environment the pod gets (POD_NAMESPACE and POD_NAME from the downward API)."""
    (deployment,) = by_kind(manifests, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert {e["name"] for e in container["env"]} == {"POD_NAMESPACE", "POD_NAME"}
    monkeypatch.setenv("POD_NAMESPACE", OPERATOR_NAMESPACE)
    monkeypatch.setenv("POD_NAME", f"{deployment['metadata']['name']}-0")
    return run_settings(build_parser().parse_args(container["command"][1:] + container["args"]))


@pytest.fixture(params=BACKENDS)
async def restricted(request: pytest.FixtureRequest, tmp_path: Path, render, monkeypatch: pytest.MonkeyPatch):
    """A cluster (each backend), its CRDs (applied as admin), and a factory for operators running as the chart's
    ServiceAccount under the chart's rules, with a kubeconfig or (``in_cluster``) as in a pod."""
    async with BACKENDS[request.param](nodes=2, pods_per_node=5, seed=3, workdir=tmp_path / request.param,
                       housekeeping_interval=0.5) as cluster:
        admin = kubernetes.client.ApiClient(load_configuration(str(cluster.kubeconfig)))
        await asyncio.to_thread(install_crds, admin, CRDS_DIR)
        threads = []

        async def operator_for(values: dict, *, in_cluster: bool = False, **settings) -> Operator:
            """An operator with the settings, the ServiceAccount and the rules the chart gives it for ``values``."""
            manifests = render(values)
            operator_for.username, token = await chart_service_account_token(cluster, manifests)
            kubeconfig = None
            if in_cluster:
                mount_service_account(cluster, token, tmp_path / f"serviceaccount-{len(threads)}", monkeypatch)
            else:
                kubeconfig = kubeconfig_with_token(cluster, token, tmp_path / f"kubeconfig-{len(threads)}")
            thread = await start_operator(cluster, kubeconfig, in_cluster=in_cluster,
                                          base=chart_settings(manifests, monkeypatch), **settings)
            threads.append(thread)
            return Operator(cluster, thread, admin)

        operator_for.cluster = cluster
        yield operator_for
        for thread in threads:
            await thread.stop()
        admin.close()


def forbidden_writes(operator: Operator) -> float:
    counter = operator.runtime.metrics.status_writes
    return sum(s.value for m in counter.collect() for s in m.samples if s.labels.get("result") == "forbidden")


async def test_operator_works_in_a_pod_under_exactly_the_chart_cluster_role(restricted):
    """As the chart deploys it: in-cluster configuration from the service account's token, bound to the rules."""
    operator = await restricted({}, in_cluster=True)
    assert operator.runtime.config.refresh_api_key_hook is not None, "the rotating token file is read again"
    await operator.create_policy("p", stepped())
    report = await operator.cycle("p")
    assert report.failures == {}, report.failures
    objects = await operator.workload_metrics()
    assert objects and all(o["status"].get("pods") for o in objects)
    status = (await operator.policy("p"))["status"]
    assert status["nodes"]["scraped"] == 2

    # The rest of its job: Events about a failing kubelet, an InvalidPolicy Event, the WorkloadMetrics of a
    # deleted workload deleted, a restart adopting what it wrote.
    cluster = restricted.cluster
    node = next(iter(cluster.kubelets))
    await cluster.node_fault(node, "http500")
    await operator.cycle("p")
    await eventually(lambda: events(operator.client, "ScrapeFailed"))
    await operator.create_policy("bad", stepped(selector={"podSelector": {"matchLabels": {"a b": "c"}}}))
    await eventually(lambda: events(operator.client, "InvalidPolicy"))
    bare = next(o for o in objects if o["spec"]["workload"]["kind"] == "Pod")
    core = kubernetes.client.CoreV1Api(operator.client)
    await asyncio.to_thread(core.delete_namespaced_pod, bare["spec"]["workload"]["name"], bare["metadata"]["namespace"])

    async def cleaned_up() -> bool:
        await operator.cycle("p")
        return bare["metadata"]["name"] not in {o["metadata"]["name"] for o in await operator.workload_metrics()}

    await eventually(cleaned_up)
    await operator.thread.stop()
    again = await restricted({}, in_cluster=True)
    await again.cycle("p")

    assert forbidden_writes(operator) == forbidden_writes(again) == 0
    assert denied_requests(cluster, restricted.username) == [], "the chart's rules allowed every request it made"


@pytest.mark.parametrize("restricted", ["sim"], indirect=True)
async def test_proxy_mode_needs_the_nodes_proxy_opt_in(restricted):
    """Simulator only: a real kube-apiserver refuses to proxy to the fake nodes' loopback addresses."""
    direct_only = await restricted({})
    await direct_only.create_policy("via-proxy", stepped(source={"via": "proxy"}))
    report = await direct_only.cycle("via-proxy")
    assert {f.reason for f in report.failures.values()} == {"forbidden"}
    await direct_only.thread.stop()

    with_proxy = await restricted({"scrape": {"via": "proxy"}})
    report = await with_proxy.cycle("via-proxy")
    assert report.failures == {} and report.scraped == 2


async def test_leader_election_works_under_the_chart_lease_role(restricted, render):
    manifests = render({"replicaCount": 2})
    (deployment,) = by_kind(manifests, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--leader-election" in args
    (lease_name,) = [a.split("=", 1)[1] for a in args if a.startswith("--lease-name=")]
    operator = await restricted({"replicaCount": 2})
    settings = operator.runtime.settings
    assert (settings.leader_election, settings.lease_namespace, settings.lease_name) == (
        True, OPERATOR_NAMESPACE, lease_name), "the chart's args and the pod's namespace, read by the CLI"
    elector = operator.runtime.elector
    assert elector is not None
    await eventually(elector.leading.is_set, timeout=20)
    await operator.create_policy("p", stepped())
    report = await operator.cycle("p")
    assert report.scraped == 2


@pytest.mark.parametrize("restricted", ["real"], indirect=True)
async def test_metrics_need_a_token_the_api_server_allows_with_the_chart_metrics_auth(restricted, tmp_path):
    """metricsAuth: /metrics over HTTPS answers a ServiceAccount bound to the chart's metrics-reader ClusterRole
    (200 and the gauges), refuses another one (403) and requests without a valid token (401); plain HTTP gets no
    answer. The operator's TokenReviews and SubjectAccessReviews pass under the chart's ClusterRole, and a scraper's
    repeated requests are answered from its cache (counted in the audit log). Real control plane only: the simulator
    serves no TokenReview API (its kubelets authenticate scrapes in-process)."""
    cluster = restricted.cluster
    await cluster.scenario.ensure_namespace("monitoring")
    tokens = {}
    for name in ("prometheus", "intruder"):
        accounts = collection("v1", "serviceaccounts", "monitoring")
        await cluster.rest.create(accounts, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}})
        request = await cluster.rest.create(f"{accounts}/{name}/token", {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}})
        tokens[name] = request["status"]["token"]
    ca = CertificateAuthority.create("kubemeter-metrics-test-ca")
    chain = write_server_chain(ca, tmp_path / "metrics.pem", "kubemeter", ips=["127.0.0.1"])
    client_tls = ssl.create_default_context(cadata=ca.pem.decode())

    values = {"metricsAuth": {"enabled": True, "readers": [
        {"kind": "ServiceAccount", "name": "prometheus", "namespace": "monitoring"}]}}
    operator = await restricted(values, tls_cert_file=str(chain), tls_private_key_file=str(chain))
    assert operator.runtime.settings.metrics_auth == "delegated", "the chart's args turn it on"
    await operator.create_policy("p", stepped())
    await operator.cycle("p")
    port = operator.runtime.metrics_port

    def reviews() -> dict[str, int]:
        sent = [e["objectRef"]["resource"] for e in cluster.control_plane.audit_events(restricted.username)
                if e["verb"] == "create" and e.get("objectRef", {}).get("resource", "").endswith("reviews")]
        return {resource: sent.count(resource) for resource in ("tokenreviews", "subjectaccessreviews")}

    async with aiohttp.ClientSession() as session:

        async def scrape(token: str | None) -> tuple[int, str]:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with session.get(f"https://127.0.0.1:{port}/metrics", headers=headers, ssl=client_tls) as response:
                return response.status, await response.text()

        async def answers() -> list[int]:
            return [(await scrape(token))[0] for token in (tokens["prometheus"], tokens["intruder"], "not-a-token",
                                                           None)]

        # 200 and 403, not 503: the chart's ClusterRole let the operator create both reviews.
        assert await answers() == [200, 403, 401, 401]
        status, body = await scrape(tokens["prometheus"])
        assert status == 200 and "kubemeter_workload_memory_working_set_bytes{" in body
        await eventually(lambda: reviews() == {"tokenreviews": 3, "subjectaccessreviews": 2}, timeout=10)
        assert await answers() == [200, 403, 401, 401]
        await asyncio.sleep(1)  # the audit log would show a review sent just now
        assert reviews() == {"tokenreviews": 3, "subjectaccessreviews": 2}, "repeated scrapes use the cache"

        async with session.get(f"https://127.0.0.1:{port}/readyz", ssl=client_tls) as response:
            assert response.status == 200, "the probes need no token"
        with pytest.raises(aiohttp.ClientError):
            async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                await response.read()
