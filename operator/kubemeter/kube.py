"""Cluster connection settings, loaded once and shared by kopf, the status writer and the kubelet client.

The ``kubernetes`` package reads the KUBECONFIG variable once, at import, so the path is always passed
explicitly here: tests and ``kubemeter demo`` start clusters after import.
"""

from __future__ import annotations

import os
import platform
import ssl
import sys
from dataclasses import dataclass

import kubernetes

from kubemeter import __version__

FIELD_MANAGER = "kubemeter"
"""The field manager of every write kubemeter makes (its objects' managedFields name it)."""
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64"}


@dataclass(frozen=True, slots=True)
class Credentials:
    server: str
    token: str | None
    ca_path: str | None
    cert_path: str | None
    key_path: str | None
    insecure: bool


class TLSFileError(OSError):
    """A CA bundle (``what`` "CA bundle") or client certificate ("client certificate") that cannot be loaded."""

    def __init__(self, what: str, path: str | None, cause: OSError) -> None:
        super().__init__(f"cannot load {what} {path}: {cause}")
        self.what, self.path, self.cause = what, path, cause


class SSLContexts:
    """The SSL contexts of one HTTPS client, built once per CA, client certificate and verification setting (a
    context loads its files when built: building one per request would read them every time)."""

    def __init__(self) -> None:
        self._contexts: dict[tuple, ssl.SSLContext] = {}

    def get(self, ca_path: str | None, cert_path: str | None, key_path: str | None, verify: bool) -> ssl.SSLContext:
        """Raises :class:`TLSFileError` naming the file that cannot be loaded."""
        key = (ca_path, cert_path, key_path, verify)
        context = self._contexts.get(key)
        if context is None:
            try:
                context = ssl.create_default_context(cafile=ca_path)
            except OSError as exc:  # ssl.SSLError included: a file that holds no certificate
                raise TLSFileError("CA bundle", ca_path, exc) from None
            if not verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if cert_path:
                try:
                    context.load_cert_chain(cert_path, key_path)
                except OSError as exc:
                    raise TLSFileError("client certificate", cert_path, exc) from None
            self._contexts[key] = context
        return context


def load_configuration(kubeconfig: str | None = None, context: str | None = None) -> kubernetes.client.Configuration:
    """In-cluster config when running in a pod, else the given kubeconfig, $KUBECONFIG or ~/.kube/config."""
    config = kubernetes.client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if path is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        kubernetes.config.load_incluster_config(client_configuration=config)
    else:
        path = os.path.expanduser((path or "~/.kube/config").split(os.pathsep)[0])
        if not os.path.exists(path):  # the client would say "Invalid kube-config file. No configuration found."
            raise kubernetes.config.ConfigException(f"the kubeconfig file {path} does not exist")
        kubernetes.config.load_kube_config(config_file=path, context=context, client_configuration=config)
    return config


def user_agent(library: str) -> str:
    """kubectl's shape, ``kubemeter/0.1.0 (linux/amd64) kubernetes-python/37.0.2``, with the client library that
    sends it last. It starts ``kubemeter/``: the API server names a write's field manager after the User-Agent up
    to its first slash when the request names none (kopf's writes)."""
    machine = platform.machine().lower()
    return f"kubemeter/{__version__} ({sys.platform}/{_GOARCH.get(machine, machine)}) {library}"


def credentials(config: kubernetes.client.Configuration) -> Credentials:
    """The current credentials; refreshes a rotating token (in-cluster, exec plugins) first."""
    if config.refresh_api_key_hook is not None:
        config.refresh_api_key_hook(config)
    header = config.api_key.get("authorization") or config.api_key.get("BearerToken") or ""
    token = header.split(" ", 1)[1] if header.lower().startswith("bearer ") else (header or None)
    return Credentials(
        server=config.host.rstrip("/"),
        token=token,
        ca_path=config.ssl_ca_cert,
        cert_path=config.cert_file,
        key_path=config.key_file,
        insecure=not config.verify_ssl,
    )
