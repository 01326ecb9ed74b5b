"""The ports a test bed hands to etcd, kube-apiserver and the peers: never one an outgoing connection may take
meanwhile, never one another process was just given."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
from kubemeter_sim import ports


@pytest.fixture
def registry(tmp_path, monkeypatch):
    path = tmp_path / "ports.json"
    monkeypatch.setattr(ports, "REGISTRY", path)
    return path


def test_a_port_is_below_the_ephemeral_range_free_and_held(registry) -> None:
    low, _ = ports._ephemeral_range()
    port = ports.free_port()
    assert ports.LOWEST <= port < low
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))  # nothing listens there
    assert str(port) in json.loads(registry.read_text())


def test_a_port_handed_out_is_not_handed_out_again_while_held(registry, monkeypatch) -> None:
    first = ports.free_port()
    # The next choice would be that port, then another: the held one is skipped.
    choices = iter([first, first + 1 if first + 1 < ports._ephemeral_range()[0] else first - 1])
    monkeypatch.setattr(ports.random, "randrange", lambda low, high: next(choices))
    assert ports.free_port() != first


def test_a_port_someone_listens_on_is_not_handed_out(registry, monkeypatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports.LOWEST + 7))
        taken.listen()
        choices = iter([ports.LOWEST + 7, ports.LOWEST + 8])
        monkeypatch.setattr(ports.random, "randrange", lambda low, high: next(choices))
        assert ports.free_port() == ports.LOWEST + 8


def test_processes_asking_at_once_get_distinct_ports(registry) -> None:
    script = ("import sys; from kubemeter_sim import ports; from pathlib import Path; "
              f"ports.REGISTRY = Path({str(registry)!r}); print(*(ports.free_port() for _ in range(50)))")
    workers = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
               for _ in range(4)]
    given = [int(port) for worker in workers for port in worker.communicate(timeout=60)[0].split()]
    assert len(given) == 200 and len(set(given)) == 200


def test_a_registry_cut_short_is_started_again(registry) -> None:
    registry.write_text('{"12345": 1')
    assert ports.free_port() >= ports.LOWEST
    assert len(json.loads(registry.read_text())) == 1
