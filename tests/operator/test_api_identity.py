"""Every request kubemeter sends names kubemeter and its version (its own client's, kopf's, its scrapes'), and
every write names kubemeter its field manager: an audit log, `kubectl get --show-managed-fields` and API priority
and fairness rules can tell kubemeter's traffic from anyone else's."""

from __future__ import annotations

import importlib.metadata

import aiohttp
import kubernetes
import pytest

from kubemeter import __version__
from tests.operator.conftest import ADMIN_USER_AGENT, eventually, stepped
from tests.reliability.support import events

WRITES = ("POST", "PUT", "PATCH")


async def test_every_request_names_kubemeter_and_every_write_its_field_manager(operator):
    """On the simulator, which records each request's User-Agent and the field manager it names. kopf's writes
    (Events about failing handlers) name none: the API server takes the User-Agent's prefix, kubemeter."""
    await operator.create_policy("identity", stepped(source={"via": "proxy"}))  # scrapes through the API server
    await operator.cycle("identity")
    await operator.create_policy("invalid", stepped(selector={"podSelector": {"matchLabels": {"a b": "c"}}}))
    await eventually(lambda: events(operator.client, "InvalidPolicy"))  # an Event the operator posts about it

    seen = operator.cluster.apiserver.clients
    agents = {agent for agent, _, _ in seen} - {ADMIN_USER_AGENT}
    client_library = f"kubernetes-python/{kubernetes.__version__}"
    libraries = {client_library, f"kopf/{importlib.metadata.version('kopf')}", f"aiohttp/{aiohttp.__version__}"}
    assert {agent.rsplit(" ", 1)[-1] for agent in agents} == libraries, seen
    assert all(agent.startswith(f"kubemeter/{__version__} (linux/") for agent in agents), agents
    client = next(agent for agent in agents if agent.endswith(client_library))
    loop_client = next(agent for agent in agents if agent.endswith(f"aiohttp/{aiohttp.__version__}"))
    writes = {(agent, method, manager) for agent, method, manager in seen if agent in agents and method in WRITES}
    # WorkloadMetrics created and the policy's status written with the kubernetes client; the WorkloadMetrics
    # statuses (the frequent writes) from the event loop (KubeApi's AsyncStatusPatch).
    assert writes == {(client, "POST", "kubemeter"), (client, "PATCH", "kubemeter"),
                      (loop_client, "PATCH", "kubemeter")}, writes


@pytest.mark.parametrize("any_cluster", ["real"], indirect=True)
async def test_the_objects_kubemeter_writes_name_it_in_their_managed_fields(any_operator):
    """On the real API server: the WorkloadMetrics (created and status) and the policy's status are kubemeter's."""
    await any_operator.create_policy("identity", stepped())
    await any_operator.cycle("identity")

    items = await any_operator.workload_metrics()
    assert items
    for item in items:
        entries = {(e["manager"], e["operation"], e.get("subresource", "")) for e in item["metadata"]["managedFields"]}
        assert entries == {("kubemeter", "Update", ""), ("kubemeter", "Update", "status")}, item["metadata"]
    policy = await any_operator.policy("identity")
    managers = {e["manager"]: e.get("subresource", "") for e in policy["metadata"]["managedFields"]}
    assert managers == {"e2e-admin": "", "kubemeter": "status"}, policy["metadata"]["managedFields"]
