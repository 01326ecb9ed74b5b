"""Fixtures for the simulated API server tests: a TLS server with an admin token, kubectl and the official client."""
from __future__ import annotations

import asyncio
import dataclasses
import json as json_codec
import ssl
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from kubemeter_sim.apiserver.server import ApiServer
from kubemeter_sim.apiserver.tls import ServingCert, self_signed

ADMIN_TOKEN = "admin-token"


@pytest.fixture(scope="session")
def apiserver_cert() -> ServingCert:
    return self_signed()


@pytest.fixture
async def apiserver(apiserver_cert: ServingCert) -> AsyncIterator[ApiServer]:
    """A running HTTPS API server; ADMIN_TOKEN is cluster-admin."""
    server = ApiServer(ssl_context=apiserver_cert.server_context(), bookmark_interval=0.2)
    server.add_token(ADMIN_TOKEN)
    async with server:
        yield server


@pytest.fixture
def apiserver_ca_file(apiserver_cert: ServingCert, tmp_path: Path) -> Path:
    path = tmp_path / "ca.crt"
    path.write_bytes(apiserver_cert.cert_pem)
    return path


@dataclasses.dataclass
class Http:
    """Raw HTTP access for asserting on wire-level answers."""

    session: aiohttp.ClientSession
    base: str

    async def request(self, method: str, path: str, *, token: str | None = ADMIN_TOKEN, json: object = None,
                      data: bytes | str | None = None, headers: dict | None = None,
                      content_type: str | None = None) -> tuple[int, dict, object]:
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        if content_type:
            all_headers["Content-Type"] = content_type
        body = data
        if json is not None:
            body = json_codec.dumps(json)
            all_headers.setdefault("Content-Type", "application/json")
        async with self.session.request(method, self.base + path, data=body, headers=all_headers) as response:
            text = await response.text()
            try:
                payload: object = json_codec.loads(text)
            except ValueError:
                payload = text
            return response.status, dict(response.headers), payload


@pytest.fixture
async def apiserver_http(apiserver: ApiServer, apiserver_cert: ServingCert) -> AsyncIterator[Http]:
    context = ssl.create_default_context(cadata=apiserver_cert.cert_pem.decode())
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        yield Http(session, apiserver.url)


Kubectl = Callable[..., Awaitable[tuple[int, str, str]]]


@pytest.fixture
def kubectl(apiserver: ApiServer, apiserver_ca_file: Path, tmp_path: Path) -> Kubectl:
    """Run /usr/bin/kubectl against the server: await kubectl("get", "pods") -> (rc, stdout, stderr)."""
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: sim, cluster: {{server: '{apiserver.url}',\n"
        f"  certificate-authority: '{apiserver_ca_file}'}}}}]\n"
        f"users: [{{name: admin, user: {{token: {ADMIN_TOKEN}}}}}]\n"
        "contexts: [{name: sim, context: {cluster: sim, user: admin}}]\ncurrent-context: sim\n")

    async def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            "kubectl", f"--kubeconfig={config}", f"--cache-dir={tmp_path / 'cache'}", *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await process.communicate(stdin.encode() if stdin is not None else None)
        return process.returncode or 0, out.decode(), err.decode()
    return run


@pytest.fixture
def kube_api_client(apiserver: ApiServer, apiserver_ca_file: Path):
    """The official kubernetes client (synchronous: call it through asyncio.to_thread)."""
    import kubernetes
    configuration = kubernetes.client.Configuration()
    configuration.host = apiserver.url
    configuration.ssl_ca_cert = str(apiserver_ca_file)
    configuration.api_key = {"authorization": ADMIN_TOKEN}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    client = kubernetes.client.ApiClient(configuration)
    yield client
    client.close()


_WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com", "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
        "versions": [{
            "name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
            "additionalPrinterColumns": [
                {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}],
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer", "minimum": 1}}},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}]}}


@pytest.fixture
def widget_crd() -> dict:
    """A namespaced CRD (example.com/v1 Widget) with a status subresource, a schema and printer columns."""
    return json_codec.loads(json_codec.dumps(_WIDGET_CRD))
