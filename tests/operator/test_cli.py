"""The command-line contract: `kubemeter run | sim | demo | parse`."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import logging
import re
import shlex
import socket
import stat
import ssl
import signal
import subprocess
import sys
import time
from pathlib import Path

import kubernetes
import pytest
import yaml

from kubemeter_sim.demo import install_crds
from kubemeter.kube import load_configuration
from kubemeter.policy import derived_timeout, derived_window
from kubemeter.timefmt import format_span

FIXTURES = Path(__file__).parents[1] / "fixtures" / "kubelet"
CRDS = Path(__file__).parents[2] / "crds"


def kubemeter(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubemeter", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "fixture",
    ["metrics-resource-eks-stable-ersilia-2025-06.txt", "stats-summary-k8s-1.22.4-minikube-docker-containers-null.json"],
)
def test_parse_prints_the_documented_shape(fixture):
    result = kubemeter("parse", str(FIXTURES / fixture))
    assert result.returncode == 0, result.stderr
    parsed = json.loads(result.stdout)
    assert set(parsed) == {"node", "pods"}
    assert set(parsed["node"]) == {"name", "cpuSeconds", "cpuNanoCores", "memoryWorkingSetBytes", "timestamp"}
    pod_keys = {"namespace", "name", "uid", "cpuSeconds", "memoryWorkingSetBytes", "networkRxBytes", "networkTxBytes",
                "ephemeralStorageBytes", "timestamp", "containers"}
    assert parsed["pods"] and all(set(p) == pod_keys for p in parsed["pods"])
    containers = [c for p in parsed["pods"] for c in p["containers"]]
    container_keys = {"name", "cpuSeconds", "cpuNanoCores", "memoryWorkingSetBytes", "timestamp", "startTime"}
    assert containers and all(set(c) == container_keys for c in containers)


def test_parse_rejects_what_is_not_a_metrics_payload(tmp_path):
    pods = FIXTURES / "kubelet-pods-k8s-1.35.0-minikube-containerd2.json"
    result = kubemeter("parse", str(pods))
    assert result.returncode == 1 and "PodList" in result.stderr
    missing = kubemeter("parse", str(tmp_path / "nope.txt"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_version_is_the_installed_distributions():
    result = kubemeter("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"kubemeter {importlib.metadata.version('kubemeter')}\n"


def test_every_command_documents_itself():
    for command in ("run", "sim", "demo", "parse"):
        result = kubemeter(command, "--help")
        assert result.returncode == 0 and f"usage: kubemeter {command}" in result.stdout
    run_help = kubemeter("run", "--help").stdout
    for flag in ("--metrics-port", "--log-format", "--log-level", "--write-qps", "--leader-election",
                 "--metrics-auth", "--tls-cert-file", "--tls-private-key-file"):
        assert flag in run_help
    # Each flag with a default says it, from what the parser holds (an environment variable can change it).
    options = run_help.split("\noptions:\n", 1)[1]
    entries = {entry.split()[0].rstrip(","): entry for entry in re.split(r"\n  (?=-)", "\n" + options) if entry}
    for flag, shown in (("--metrics-host", "default 0.0.0.0"), ("--metrics-port", "default 8080"),
                        ("--log-level", "default info"), ("--write-qps", "default 20"),
                        ("--leader-election", "default False"), ("--lease-name", "default kubemeter")):
        assert shown in " ".join(entries[flag].split()), (flag, entries[flag])


def test_run_reads_its_settings_from_the_environment(monkeypatch):
    from kubemeter.cli import build_parser, run_settings

    monkeypatch.setenv("KUBEMETER_METRICS_PORT", "9999")
    monkeypatch.setenv("KUBEMETER_WRITE_QPS", "5")
    settings = run_settings(build_parser().parse_args(["run"]))
    assert settings.metrics_port == 9999 and settings.write_qps == 5.0
    flagged = run_settings(build_parser().parse_args(["run", "--metrics-port", "7000"]))
    assert flagged.metrics_port == 7000  # a flag wins over the environment


def test_two_replicas_never_share_an_identity_even_with_one_pod_or_host_name(monkeypatch):
    from kubemeter.cli import build_parser, run_settings

    monkeypatch.setenv("POD_NAME", "kubemeter-0")
    first, second = (run_settings(build_parser().parse_args(["run"])).identity for _ in range(2))
    assert first.startswith("kubemeter-0_") and second.startswith("kubemeter-0_") and first != second


async def run_until_exit(kubeconfig: Path, *args: str) -> tuple[int, str]:
    """`kubemeter run` as its own process, expected to exit by itself (within a minute): its code and output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kubemeter", "run", "--kubeconfig", str(kubeconfig), "--metrics-host", "127.0.0.1",
        *(args or ("--metrics-port", "0")), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode, output.decode()


async def test_run_without_the_crds_exits_at_once_saying_what_to_install(sim_cluster, tmp_path):
    async def run() -> tuple[int, str]:
        return await run_until_exit(sim_cluster.kubeconfig)

    code, output = await run()
    assert code == 1, output
    assert "metricspolicies.kubemeter.io/v1alpha1, workloadmetrics.kubemeter.io/v1alpha1" in output
    assert "kubectl apply -f crds/" in output and "Traceback" not in output

    # Only one of the two installed: the message names the other.
    policy_crd = tmp_path / "crds"
    policy_crd.mkdir()
    (policy_crd / "policy.yaml").write_text((CRDS / "metricspolicies.kubemeter.io.yaml").read_text())
    client = kubernetes.client.ApiClient(load_configuration(str(sim_cluster.kubeconfig)))
    await asyncio.to_thread(install_crds, client, policy_crd)
    client.close()
    code, output = await run()
    assert code == 1 and "does not serve workloadmetrics.kubemeter.io/v1alpha1:" in output, output


@pytest.mark.parametrize("flags", [["--metrics-auth", "delegated"],
                                   ["--metrics-auth", "delegated", "--tls-cert-file", "metrics.crt"],
                                   ["--tls-cert-file", "metrics.crt", "--tls-private-key-file", "metrics.key"]])
def test_delegated_metrics_auth_and_its_certificate_go_together(flags):
    """Bearer tokens never cross plain HTTP, and a certificate given without it would be silently unused."""
    result = kubemeter("run", *flags)
    assert result.returncode == 1
    assert "--metrics-auth=delegated needs --tls-cert-file and --tls-private-key-file" in result.stderr


async def test_run_with_an_unreadable_metrics_certificate_exits_saying_so(sim_cluster, tmp_path):
    not_a_certificate = tmp_path / "metrics.pem"
    not_a_certificate.write_text("not a certificate\n")
    for chain in (tmp_path / "missing.pem", not_a_certificate):
        code, output = await run_until_exit(sim_cluster.kubeconfig, "--metrics-port", "0", "--metrics-auth",
                                            "delegated", "--tls-cert-file", str(chain),
                                            "--tls-private-key-file", str(chain))
        assert code == 1 and f"--tls-cert-file / --tls-private-key-file: cannot load {chain}" in output, output
        assert "Traceback" not in output


@pytest.mark.parametrize("content", [None, "clusters: [\n", "apiVersion: v1\nkind: Config\n"])
def test_run_without_a_usable_kubeconfig_says_so_without_a_traceback(tmp_path, content):
    path = tmp_path / "kubeconfig"
    if content is not None:
        path.write_text(content)
    result = kubemeter("run", "--kubeconfig", str(path))
    assert result.returncode == 1
    assert "no usable cluster configuration" in result.stderr and "--kubeconfig" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
    if content is None:  # not the client's "Invalid kube-config file. No configuration found."
        assert f"the kubeconfig file {path} does not exist" in result.stderr, result.stderr


async def test_run_with_an_unusable_kubelet_ca_or_a_taken_port_exits_saying_so(sim_cluster, tmp_path):
    """Both would otherwise fail quietly: every scrape with a TLS error, or kopf retrying its start-up forever."""
    client = kubernetes.client.ApiClient(load_configuration(str(sim_cluster.kubeconfig)))
    await asyncio.to_thread(install_crds, client, CRDS)
    client.close()
    not_a_bundle = tmp_path / "ca.crt"
    not_a_bundle.write_text("not a certificate\n")
    for bundle in (tmp_path / "missing.crt", not_a_bundle):
        code, output = await run_until_exit(sim_cluster.kubeconfig, "--metrics-port", "0", "--kubelet-ca", str(bundle))
        assert code == 1 and f"--kubelet-ca: cannot load CA bundle {bundle}" in output and "Traceback" not in output

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, output = await run_until_exit(sim_cluster.kubeconfig, "--metrics-port", str(port))
    assert code == 1 and f"cannot serve /metrics on 127.0.0.1:{port}" in output and "Traceback" not in output, output


def test_demo_meters_the_simulated_cluster_and_stops_by_itself(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "kubemeter", "demo", "--duration", "25", "--refresh", "5", "--metrics-port", "0",
         "--workdir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    last = result.stdout.rsplit("kubemeter demo, ", 1)[-1]  # the final refresh of the table
    assert "nodes 3/4 scraped, 1 failing" in last and "Ready=True" in last, last
    rows = {line.split()[2]: line.split() for line in last.splitlines() if line.startswith(("shop ", "data ", "default "))}
    assert rows["postgres"][1] == "StatefulSet" and rows["postgres"][4].endswith("m"), rows  # CPU in millicores
    # The forms of kubectl get wm: pods as reporting/pods, utilization in percent, a stale workload said so.
    assert re.fullmatch(r"[0-3]/3", rows["postgres"][3]) and re.fullmatch(r"\d+%", rows["postgres"][5]), rows
    assert rows["toolbox"][3] == "0/1" and rows["toolbox"][-1] == "true", rows  # it runs on the failing node only
    # SIZING: 25 s of history is short of the demo policy's minHistory (2m), so nothing is called over or under yet.
    assert " ".join(rows["postgres"][9:-1]) == "learning", rows
    assert "Traceback" not in result.stderr


def test_demo_with_its_metrics_port_taken_says_so(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "kubemeter", "demo", "--duration", "20", "--metrics-port", str(port),
             "--workdir", str(tmp_path / "demo")],
            capture_output=True, text=True, timeout=120,
        )
    assert result.returncode == 1 and f"cannot serve /metrics on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_against_an_api_server_that_does_not_answer_says_so(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    with socket.socket() as closed:  # a loopback port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{port}", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }))
    result = kubemeter("run", "--kubeconfig", str(kubeconfig), "--metrics-port", "0")
    assert result.returncode == 1, result.stderr[-2000:]
    assert f"cannot reach the API server at https://127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr


def test_demo_never_empties_a_directory_that_is_not_its_own(tmp_path):
    precious = tmp_path / "notes" / "precious.txt"
    precious.parent.mkdir()
    precious.write_text("keep")
    result = subprocess.run(
        [sys.executable, "-m", "kubemeter", "demo", "--duration", "3", "--metrics-port", "0", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2 and "is not empty and not a previous demo's state" in result.stderr, result.stderr
    assert precious.read_text() == "keep"


@pytest.mark.parametrize("control_plane", ["sim", "real"])
def test_sim_runs_again_with_the_same_kubeconfig_and_leaves_only_the_kubeconfig(tmp_path, control_plane):
    """Its state (certificates, etcd's data on a real control plane) lives and goes with the cluster: a second run
    never meets the first one's, and the kubeconfig's directory holds nothing else afterwards."""
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text("an older file, readable by anyone\n")
    kubeconfig.chmod(0o644)
    for _ in range(2):
        process = subprocess.Popen(
            [sys.executable, "-m", "kubemeter", "sim", "--control-plane", control_plane, "--nodes", "1",
             "--pods-per-node", "2", "--kubeconfig", str(kubeconfig)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            ready = process.stdout.readline()
            assert ready.startswith("cluster ready in"), ready + process.stdout.read()
            # The admin's client key is in it: the owner's only, as kubectl and kind write theirs.
            assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
        finally:
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=30) == 0
        said = process.stdout.read().splitlines()
        assert said and said[-1].startswith("kubemeter sim: stopped; its state ("), said  # Ctrl-C is answered
        assert "current-context" in kubeconfig.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["kc"]


def _kubelet_answers(ca: Path, kubeconfig: Path) -> bool:
    """Whether a TLS handshake with the cluster's first kubelet verifies against ``ca``."""
    nodes = json.loads(subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "get", "nodes", "-o", "json"],
                                      capture_output=True, text=True, check=True, timeout=60).stdout)["items"]
    status = nodes[0]["status"]
    address = next(a["address"] for a in status["addresses"] if a["type"] == "InternalIP")
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with socket.create_connection((address, status["daemonEndpoints"]["kubeletEndpoint"]["Port"]), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname=address):
            return True
    except ssl.SSLCertVerificationError:
        return False


def test_two_sims_in_one_folder_each_write_their_own_kubelet_ca_beside_their_kubeconfig(tmp_path):
    """Named after the kubeconfig (a.kubeconfig -> a.kubelet-ca.crt), so the second never overwrites the first's;
    each is there while its cluster runs, and gone with it."""
    processes = {}
    try:
        for name in ("a", "b"):
            processes[name] = subprocess.Popen(
                [sys.executable, "-m", "kubemeter", "sim", "--nodes", "1", "--pods-per-node", "1",
                 "--kubeconfig", str(tmp_path / f"{name}.kubeconfig")],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for name, process in processes.items():
            ready, announced = process.stdout.readline(), process.stdout.readline()
            assert ready.startswith("cluster ready in"), ready + announced + process.stdout.read()
            assert announced == f"kubelet CA: {tmp_path / f'{name}.kubelet-ca.crt'}\n", announced
        for name, other in (("a", "b"), ("b", "a")):
            kubeconfig = tmp_path / f"{name}.kubeconfig"
            assert _kubelet_answers(tmp_path / f"{name}.kubelet-ca.crt", kubeconfig), f"{name}'s CA signs its kubelets"
            assert not _kubelet_answers(tmp_path / f"{other}.kubelet-ca.crt", kubeconfig), "each cluster has its own CA"
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGINT)
        codes = [process.wait(timeout=30) for process in processes.values()]
    assert codes == [0, 0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.kubeconfig", "b.kubeconfig"]


def test_the_sims_hint_runs_the_operator_with_metrics_on_loopback_only(tmp_path):
    """The printed command is what a user pastes on a workstation: run's default binds every interface (for a
    pod), which would expose /metrics to the network."""
    from kubemeter.cli import build_parser, run_settings

    kubeconfig = tmp_path / "kc"
    process = subprocess.Popen([sys.executable, "-m", "kubemeter", "sim", "--nodes", "1", "--pods-per-node", "1",
                                "--kubeconfig", str(kubeconfig)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        lines = [process.stdout.readline() for _ in range(4)]
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    hint = next((line for line in lines if "kubemeter run" in line), None)
    assert hint is not None, lines
    command = shlex.split(hint.split(";", 1)[1].split("#", 1)[0])
    assert command[:2] == ["kubemeter", "run"], hint
    settings = run_settings(build_parser().parse_args(command[1:]))
    assert (settings.metrics_host, settings.kubeconfig) == ("127.0.0.1", str(kubeconfig.resolve())), hint


RFC3339_UTC_MILLIS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
SHUTDOWN_LINES = [
    ("kopf._core.reactor.running", "Signal SIGTERM is received. Operator is stopping."),
    ("kubemeter.app", "stopping: the policy loops (1) and their status writers, then the HTTP server"),
    ("kubemeter.policies", "policy stopped; 0 pending status writes dropped"),
    ("kubemeter.app", "stopping: HTTP server closed"),
    ("kubemeter", "stopped"),
]
"""What a stop logs, in order; the writes the last cycle left pending are sent first (if any are left)."""
FLUSHING = re.compile(r"stopping: sending the \d+ pending status writes and the right-sizing checkpoints that "
                      r"changed \(for up to 5s\)")


async def test_run_logs_json_lines_with_context_fields_and_says_how_it_stops_on_sigterm(sim_cluster):
    """Every line of a real run is one JSON object with a UTC timestamp and the context as fields; SIGTERM stops it
    saying what it stops, with exit code 0."""
    client = kubernetes.client.ApiClient(load_configuration(str(sim_cluster.kubeconfig)))
    await asyncio.to_thread(install_crds, client, CRDS)
    policy = {"apiVersion": "kubemeter.io/v1alpha1", "kind": "MetricsPolicy", "metadata": {"name": "logged"},
              "spec": {"interval": "10s"}}  # the first cycle runs at once
    await asyncio.to_thread(kubernetes.client.CustomObjectsApi(client).create_cluster_custom_object,
                            "kubemeter.io", "v1alpha1", "metricspolicies", policy)
    client.close()
    failing = sorted(sim_cluster.kubelets)[0]
    await sim_cluster.node_fault(failing, "http500")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kubemeter", "run", "--kubeconfig", str(sim_cluster.kubeconfig), "--metrics-host",
        "127.0.0.1", "--metrics-port", "0", "--log-format", "json", stderr=asyncio.subprocess.PIPE,
    )
    lines: list[str] = []
    try:
        async with asyncio.timeout(60):
            while not any('"node failing' in line or f"node {failing} failing" in line for line in lines):
                line = await process.stderr.readline()
                assert line, "the operator exited: " + "".join(lines)
                lines.append(line.decode())
            process.send_signal(signal.SIGTERM)
            _, rest = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    lines += rest.decode().splitlines(keepends=True)
    assert process.returncode == 0, "".join(lines)

    entries = [json.loads(line) for line in lines]  # every line, kopf's included
    for entry in entries:
        assert RFC3339_UTC_MILLIS.fullmatch(entry["time"]), entry
        assert entry["level"] in ("debug", "info", "warning", "error", "critical") and entry["logger"], entry
    failure = next(e for e in entries if e["message"].startswith(f"node {failing} failing"))
    assert (failure["level"], failure["policy"], failure["node"]) == ("warning", "logged", failing), failure
    assert isinstance(failure["cycle"], int) and failure["cycle"] >= 1, failure
    started = next(e for e in entries if e["logger"] == "kubemeter.policies" and e["message"].startswith("policy started"))
    assert started["policy"] == "logged", started
    # The derived timeout and window are what a user did not write, so the line says them, as durations.
    timeout, window = format_span(derived_timeout(10)), format_span(derived_window(10))
    assert started["message"] == f"policy started (every 10s, timeout {timeout}, window {window}, resource via direct)"
    assert (timeout, window) == ("8s", "5m"), "the README's derivation"
    signalled = next(i for i, e in enumerate(entries) if e["message"] == SHUTDOWN_LINES[0][1])
    shutdown = [(e["logger"], e["message"]) for e in entries[signalled:] if not FLUSHING.fullmatch(e["message"])]
    assert shutdown == SHUTDOWN_LINES, shutdown


@pytest.fixture
def restored_logging():
    """setup_logging replaces the root logger's handlers with one on this test's (captured) stderr: put back what
    pytest had, so that later tests' records do not go to a closed stream."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {name: logging.getLogger(name).level
                                           for name in ("kopf", "kopf._core.reactor.running")}
    yield
    root.handlers[:], level, levels = saved
    root.setLevel(level)
    for name, logger_level in levels.items():
        logging.getLogger(name).setLevel(logger_level)


def test_kopfs_per_object_records_come_out_as_fields_in_both_formats(capsys, restored_logging):
    """kopf logs about an object with its reference (and its settings object) as extras: the reference becomes
    fields, the rest stays out of the line."""
    import kopf
    from kopf._core.actions.loggers import LocalObjectLogger

    from kubemeter.cli import setup_logging
    from kubemeter.logcontext import log_context

    body = kopf.Body({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "shop", "uid": "u"}})
    for log_format in ("json", "text"):
        setup_logging(log_format, "info")
        with log_context(policy="p", cycle=3):
            LocalObjectLogger(body=body, settings=kopf.OperatorSettings()).warning("handler failed")
    json_line, text_line = capsys.readouterr().err.splitlines()
    entry = json.loads(json_line)
    assert RFC3339_UTC_MILLIS.fullmatch(entry.pop("time"))
    assert entry == {"level": "warning", "logger": "kopf.objects", "message": "handler failed", "policy": "p",
                     "cycle": 3, "kind": "Pod", "namespace": "shop", "name": "web-1"}
    time, rest = text_line.split(" ", 1)
    assert RFC3339_UTC_MILLIS.fullmatch(time)
    assert rest == "WARNING kopf.objects: [policy=p cycle=3 kind=Pod namespace=shop name=web-1] handler failed"


@pytest.mark.parametrize(("flags", "message"), [
    (["--metrics-server"], "--metrics-server needs --control-plane real"),
    (["--control-plane", "real", "--metrics-server", "--metric-resolution", "5s"], "needs at least 10s"),
    (["--control-plane", "real", "--metrics-server", "--metric-resolution", "soon"], "expected seconds"),
    (["--vpa-recommender"], "--vpa-recommender needs --control-plane real"),
    (["--vpa-recommender", "--metrics-server"], "--vpa-recommender needs --control-plane real"),
    (["--control-plane", "real", "--vpa-recommender", "--metric-resolution", "5s"], "needs at least 10s"),
])
def test_sim_refuses_a_metrics_server_it_cannot_run_saying_why(tmp_path, flags, message):
    result = kubemeter("sim", "--kubeconfig", str(tmp_path / "kc"), *flags)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stdout + result.stderr
    assert not (tmp_path / "kc").exists()


def _kubectl_json(kubeconfig: Path, *args: str) -> dict:
    return json.loads(subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args, "-o", "json"],
                                     capture_output=True, text=True, check=True, timeout=60).stdout)


def test_sim_with_the_vpa_recommender_runs_it_beside_metrics_server_and_a_vpa_gets_a_recommendation(tmp_path):
    """--vpa-recommender implies --metrics-server: both announced, the VPA CRDs served, and a VerticalPodAutoscaler
    (updateMode Off) of a scenario Deployment gets its status.recommendation from the recommender's loop."""
    kubeconfig = tmp_path / "kc"
    process = subprocess.Popen(
        [sys.executable, "-m", "kubemeter", "sim", "--control-plane", "real", "--vpa-recommender",
         "--metric-resolution", "10s", "--nodes", "1", "--pods-per-node", "16", "--kubeconfig", str(kubeconfig)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        while not lines or lines[-1] != "Ctrl-C to stop.\n":
            line = process.stdout.readline()
            assert line, "".join(lines)  # it exited
            lines.append(line)
        text = "".join(lines)
        assert re.search(r"^metrics-server https://127\.0\.0\.1:\d+ \(resolution 10s", text, re.M), text
        announced = re.search(r"^VPA recommender on 127\.0\.0\.1:(\d+) \(every 10s, log (\S+)\)", text, re.M)
        assert announced, text
        assert Path(announced[2]).name == "vpa-recommender.log"
        deployments = _kubectl_json(kubeconfig, "get", "deployments", "-A")["items"]
        target = next(d for d in deployments if d["status"].get("readyReplicas"))
        namespace, name = target["metadata"]["namespace"], target["metadata"]["name"]
        vpa = {"apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscaler",
               "metadata": {"name": name, "namespace": namespace},
               "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                        "updatePolicy": {"updateMode": "Off"}}}
        subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "apply", "-f", "-"], input=json.dumps(vpa),
                       capture_output=True, text=True, check=True, timeout=60)
        deadline = time.monotonic() + 300  # two metrics-server points, then a recommender loop: a minute or so
        while True:
            status = _kubectl_json(kubeconfig, "get", "vpa", "-n", namespace, name).get("status") or {}
            recommended = (status.get("recommendation") or {}).get("containerRecommendations")
            if recommended:
                break
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() < deadline, f"no recommendation for {namespace}/{name}: {status}"
            time.sleep(2)
        containers = {c["name"] for c in target["spec"]["template"]["spec"]["containers"]}
        assert {entry["containerName"] for entry in recommended} <= containers
        assert all(float(entry["target"]["cpu"].removesuffix("m")) >= 0 for entry in recommended)
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["kc"]
