"""Loopback ports for the processes a test bed starts (etcd, kube-apiserver, metrics-server, ...), which bind a
port they are told on the command line, some time after it was chosen.

A port that ``bind(0)`` finds free lies in the kernel's ephemeral range, the range that outgoing connections take
their local ports from: with four test workers and thousands of kubelet and API connections, one of them took a
port between its choice and kube-controller-manager's bind ("address already in use", the CI failure of
2026-12-04). So ports are chosen below that range, where no connect() takes one, and each is handed out once in
:data:`HELD_SECONDS` across every process on the machine (a small registry file under a lock), so that two
workers starting clusters at the same moment cannot be given the same one.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import socket
import tempfile
import time
from pathlib import Path

HELD_SECONDS = 600.0
"""How long a port handed out is not handed out again: longer than any component takes to bind it."""
LOWEST = 10_000
"""The lowest port chosen: above the well-known and most registered services' ports."""
REGISTRY = Path(tempfile.gettempdir()) / "kubemeter-sim-ports.json"


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _kernel_chosen(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on at ``host``, outside the ephemeral range, not handed out by this function to
    any process in the last :data:`HELD_SECONDS`. Where the ephemeral range leaves too little below it (a
    machine configured so), the kernel's choice, as before."""
    low, _ = _ephemeral_range()
    if low - LOWEST < 1000:
        return _kernel_chosen(host)
    with open(os.open(REGISTRY, os.O_RDWR | os.O_CREAT, 0o666), "r+", encoding="utf-8") as registry:
        fcntl.flock(registry, fcntl.LOCK_EX)  # released when the file closes
        try:
            held = {int(port): at for port, at in json.loads(registry.read() or "{}").items()}
        except (ValueError, AttributeError):
            held = {}  # a registry cut short (a process killed while writing): ports still get bind-checked
        now = time.time()
        held = {port: at for port, at in held.items() if now - at < HELD_SECONDS}
        for _ in range(200):
            port = random.randrange(LOWEST, low)
            if port not in held and _bindable(host, port):
                break
        else:
            port = _kernel_chosen(host)
        held[port] = now
        registry.seek(0)
        registry.truncate()
        registry.write(json.dumps(held))
    return port
