"""Security: kubelet TLS verified unless a policy opts out (and then says so), credentials never leak into
logs, Events or status, and each namespace only ever holds its own workloads' WorkloadMetrics.

Simulator only: the operator authenticates with the simulator's bearer token, whose absence from every
output is the point, and one policy scrapes through the API server's node proxy, which a real kube-apiserver
refuses for the fake nodes' loopback addresses. (RBAC on the real server: tests/packaging/test_rbac_e2e.py.)
"""

from __future__ import annotations

import json
import logging

from kubemeter_sim.scenario import container, template
from tests.operator.conftest import stepped
from tests.operator.test_e2e_metering import top_owner
from tests.reliability.support import RequestCounter, events, node_events

ROGUE = "sim-worker-1"  # serves a certificate from another CA


async def test_kubelet_certificates_are_verified_unless_a_policy_opts_out(operator):
    await operator.cluster.node_fault(ROGUE, "tls")
    await operator.create_policy("strict", stepped())
    await operator.create_policy("lax", stepped(source={"insecureSkipTLSVerify": True}))
    await operator.cycle("strict")
    await operator.cycle("lax")

    strict = (await operator.policy("strict"))["status"]
    assert [(f["name"], f["reason"]) for f in strict["failedNodes"]] == [(ROGUE, "tls")]
    assert "warnings" not in strict
    lax = (await operator.policy("lax"))["status"]
    assert lax["nodes"] == {"selected": 3, "scraped": 3, "failed": 0}
    assert any("insecureSkipTLSVerify" in w for w in lax["warnings"]), "opting out is visible in status"


async def test_credentials_never_appear_in_logs_events_status_or_metrics(operator, caplog):
    caplog.set_level(logging.DEBUG)
    cluster = operator.cluster
    await cluster.node_fault("sim-worker-1", "unauthorized")
    await cluster.node_fault("sim-worker-2", "forbidden")
    await cluster.node_fault("sim-control-plane", "http500")
    # Direct (bearer token to kubelets) and through the API server's proxy: both carry the token.
    await operator.create_policy("direct", stepped())
    await operator.create_policy("proxy", stepped(source={"via": "proxy"}))
    await operator.cycle("direct")
    await operator.cycle("proxy")

    status = (await operator.policy("direct"))["status"]
    assert {f["reason"] for f in status["failedNodes"]} == {"unauthorized", "forbidden", "server_error"}
    await node_events(operator.client, "ScrapeFailed", {node: 2 for node in cluster.kubelets})  # both policies
    published = json.dumps([await operator.policy(p) for p in ("direct", "proxy")])
    published += json.dumps(await operator.workload_metrics()) + json.dumps(await events(operator.client))
    published += await operator.scrape_metrics()
    assert "HTTP 401" in caplog.text and "HTTP 403" in published, "the failures were logged and published"
    assert cluster.token not in caplog.text
    assert cluster.token not in published


async def test_workload_metrics_stay_in_their_workloads_namespace(operator):
    cluster = operator.cluster
    # The same Deployment name in two namespaces: two workloads, each published in its own namespace.
    cluster.scenario.create_deployment("shop", "twin", 1, template({"app": "twin"}, [container("twin", cpu="10m")]))
    cluster.scenario.create_deployment("web", "twin", 3, template({"app": "twin"}, [container("twin", cpu="10m")]))
    elsewhere = RequestCounter(cluster, "POST", r"/namespaces/(?!shop/)[^/]+/workloadmetrics")
    await operator.create_policy("shop-only", stepped(selector={"namespaces": ["shop"]}))
    await operator.cycle("shop-only")
    assert elsewhere.count == 0, "a policy limited to shop writes nothing in other namespaces"
    elsewhere.stop()
    await operator.create_policy("all", stepped())
    await operator.cycle("all")

    pods = cluster.store.list("v1", "pods")
    running = {top_owner(cluster.store, p) for p in pods if p["status"].get("phase") not in ("Succeeded", "Failed")}
    objects = await operator.workload_metrics()
    for obj in objects:
        namespace, spec = obj["metadata"]["namespace"], obj["spec"]
        workload = (namespace, spec["workload"]["kind"], spec["workload"]["name"])
        assert workload in running, f"{obj['metadata']['name']} in {namespace} is about a workload of {namespace}"
        owner = obj["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"]) == ("MetricsPolicy", spec["policy"])
    shop_only = {o["metadata"]["namespace"] for o in objects if o["spec"]["policy"] == "shop-only"}
    assert shop_only == {"shop"}
    twins = {o["metadata"]["namespace"]: o["status"]["pods"] for o in objects
             if o["spec"]["policy"] == "all" and o["spec"]["workload"]["name"] == "twin"}
    assert twins == {"shop": 1, "web": 3}
