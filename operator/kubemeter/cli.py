"""``kubemeter run | sim | demo | parse``.

Every ``run`` flag can also be set by an environment variable (KUBEMETER_<FLAG>, e.g.
KUBEMETER_METRICS_PORT), so the container can be configured either way; flags win.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import sys
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from kubemeter.logcontext import ContextFilter, record_fields
from kubemeter.timefmt import rfc3339_millis

LOG_FORMATS = ("text", "json")
METRICS_AUTH = ("none", "delegated")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (RFC 3339, UTC, milliseconds), level, logger, message, the exception's
    traceback if any, then the record's fields (see kubemeter.logcontext)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": rfc3339_millis(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        for key, value in record_fields(record).items():
            entry.setdefault(key, value)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """``<time> <LEVEL> <logger>: [<field>=<value> ...] <message>``, the time as in the JSON format."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        fields = record_fields(record)
        context = f"[{' '.join(f'{key}={value}' for key, value in fields.items())}] " if fields else ""
        return f"{rfc3339_millis(record.created)} {record.levelname:<7} {record.name}: {context}{record.message}"


def setup_logging(fmt: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # kopf is chatty at INFO about every handler it runs; its warnings still come through.
    logging.getLogger("kopf").setLevel(max(logging.WARNING, root.level))
    # Except its one line when a signal arrives (or the stop flag is set): "Signal SIGTERM is received. ..."
    logging.getLogger("kopf._core.reactor.running").setLevel(root.level)


def _env(name: str, default: object, cast: Callable[[str], object] = str) -> object:
    value = os.environ.get(f"KUBEMETER_{name}")
    if value is None:
        return default
    try:
        return cast(value)
    except ValueError:
        raise SystemExit(f"kubemeter: invalid KUBEMETER_{name}={value!r}") from None


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"),
                        help="kubeconfig file (default: in-cluster config, then $KUBECONFIG, then ~/.kube/config)")
    parser.add_argument("--context", default=_env("CONTEXT", None), help="kubeconfig context")
    parser.add_argument("--metrics-port", type=int, default=_env("METRICS_PORT", 8080, int),
                        help="port of /metrics, /healthz and /readyz (default %(default)s)")
    parser.add_argument("--metrics-host", default=_env("METRICS_HOST", "0.0.0.0"),
                        help="address to listen on (default %(default)s: every interface, as in a pod; 127.0.0.1 "
                             "for loopback only)")
    parser.add_argument("--metrics-auth", choices=METRICS_AUTH, default=_env("METRICS_AUTH", "none"),
                        help="none: /metrics over HTTP to anyone who reaches the port; delegated: HTTPS, and only "
                             "bearer tokens the API server allows to get /metrics (TokenReview, SubjectAccessReview) "
                             "(default %(default)s)")
    parser.add_argument("--tls-cert-file", default=_env("TLS_CERT_FILE", None),
                        help="serving certificate of the metrics port, PEM (with --metrics-auth=delegated)")
    parser.add_argument("--tls-private-key-file", default=_env("TLS_PRIVATE_KEY_FILE", None),
                        help="private key of --tls-cert-file, PEM")
    parser.add_argument("--log-format", choices=LOG_FORMATS, default=_env("LOG_FORMAT", "text"),
                        help="text, or one JSON object a line (default %(default)s)")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                        default=str(_env("LOG_LEVEL", "info")).lower(),
                        help="the least severe records logged (default %(default)s)")
    parser.add_argument("--write-qps", type=float, default=_env("WRITE_QPS", 20.0, float),
                        help="API requests per second, all policies together (default %(default)g)")
    parser.add_argument("--write-burst", type=int, default=_env("WRITE_BURST", 50, int),
                        help="API request burst (default %(default)s)")
    parser.add_argument("--api-timeout", type=float, default=_env("API_TIMEOUT", 30.0, float),
                        help="seconds an API server request may take before it is retried (default %(default)g)")
    parser.add_argument("--kubelet-ca", default=_env("KUBELET_CA", None),
                        help="CA bundle for kubelet serving certificates (default: the cluster CA)")
    parser.add_argument("--max-body-bytes", type=int, default=_env("MAX_BODY_BYTES", 16 * 1024 * 1024, int),
                        help="largest kubelet response accepted (default 16 MiB)")
    parser.add_argument("--leader-election", action=argparse.BooleanOptionalAction,
                        default=_env("LEADER_ELECTION", False, lambda v: v.lower() in ("1", "true", "yes")),
                        help="only the holder of a Lease publishes (needed with more than one replica; default %(default)s)")
    parser.add_argument("--lease-namespace", default=os.environ.get("POD_NAMESPACE", "default"),
                        help="namespace of the leader Lease (default: $POD_NAMESPACE or default)")
    parser.add_argument("--lease-name", default=_env("LEASE_NAME", "kubemeter"), help="name of the leader Lease (default %(default)s)")


def run_settings(args: argparse.Namespace):
    from kubemeter.app import RunSettings

    if args.write_qps <= 0 or args.write_burst < 1:
        raise SystemExit("kubemeter: --write-qps must be > 0 and --write-burst >= 1")
    tls_files = (args.tls_cert_file, args.tls_private_key_file)
    # Both files exactly when delegated: bearer tokens must not cross the network in the clear, and a certificate
    # nothing would use is a mistake worth saying.
    if any(tls_files) != all(tls_files) or (args.metrics_auth == "delegated") != all(tls_files):
        raise SystemExit("kubemeter: --metrics-auth=delegated needs --tls-cert-file and --tls-private-key-file, "
                         "which go with it only")
    if args.api_timeout <= 0:
        raise SystemExit("kubemeter: --api-timeout must be > 0")
    return RunSettings(
        kubeconfig=args.kubeconfig,
        context=args.context,
        metrics_host=args.metrics_host,
        metrics_port=args.metrics_port,
        metrics_auth=args.metrics_auth,
        tls_cert_file=args.tls_cert_file,
        tls_private_key_file=args.tls_private_key_file,
        write_qps=args.write_qps,
        write_burst=args.write_burst,
        api_timeout=args.api_timeout,
        kubelet_ca=args.kubelet_ca,
        max_body_bytes=args.max_body_bytes,
        leader_election=args.leader_election,
        lease_namespace=args.lease_namespace,
        lease_name=args.lease_name,
        identity=replica_identity(),
    )


def replica_identity() -> str:
    """This replica's name in the Lease and on its Events: the pod (or host) name plus a random part, as client-go
    does, so two replicas never share one (two processes on one host, hostNetwork pods, no POD_NAME set)."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def _run_operator_command(main: Coroutine[Any, Any, int | None]) -> int:
    """Run ``run`` or ``demo``; an operator that cannot start says why in one line and exits 1, no traceback."""
    import yaml
    from kubernetes.config import ConfigException

    from kubemeter.app import StartupError

    try:
        return asyncio.run(main) or 0
    except StartupError as exc:
        logging.getLogger("kubemeter").error("%s", exc)
    except (ConfigException, yaml.YAMLError) as exc:
        logging.getLogger("kubemeter").error(
            "no usable cluster configuration (%s): pass --kubeconfig, set KUBECONFIG, or run in a pod",
            " ".join(str(exc).split()),
        )
    return 1


def cmd_run(args: argparse.Namespace) -> int:
    from kubemeter.app import Runtime
    from kubemeter.handlers import run_operator

    setup_logging(args.log_format, args.log_level)
    settings = run_settings(args)

    async def main() -> None:
        # kopf stops on SIGINT and SIGTERM: it sets its own handlers over any set before it starts.
        await run_operator(Runtime(settings))
        logging.getLogger("kubemeter").info("stopped")

    return _run_operator_command(main())


def cmd_parse(args: argparse.Namespace) -> int:
    from kubemeter.scrape.decode import parse_file
    from kubemeter.scrape.samples import DecodeError

    try:
        result = parse_file(args.file)
    except OSError as exc:
        print(f"kubemeter parse: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    except DecodeError as exc:
        print(f"kubemeter parse: {args.file}: {exc}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    from kubemeter_sim import cli as sim_cli

    setup_logging("text", args.log_level)
    return asyncio.run(sim_cli.run(args))


def cmd_demo(args: argparse.Namespace) -> int:
    from kubemeter_sim import demo

    setup_logging("text", args.log_level)
    return _run_operator_command(demo.run(args))


def build_parser() -> argparse.ArgumentParser:
    from kubemeter import __version__

    parser = argparse.ArgumentParser(prog="kubemeter", description="Meter what Kubernetes workloads really use.")
    parser.add_argument("--version", action="version", version=f"kubemeter {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the operator (the container entrypoint)")
    _add_run_arguments(run)
    run.set_defaults(handler=cmd_run)

    sim = commands.add_parser("sim", help="run a simulated cluster (API server and kubelets) on loopback")
    demo = commands.add_parser("demo", help="simulated cluster + operator + a live table of WorkloadMetrics")
    for sub in (sim, demo):
        sub.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="warning")
    try:  # the simulator's extra dependencies are not in the operator's image
        from kubemeter_sim import demo as demo_module
        from kubemeter_sim import cli as sim_cli
    except ImportError as exc:
        missing = f"needs the simulator, the kubemeter-sim distribution (pip install ./sim from a checkout): {exc}"
        sim.set_defaults(handler=lambda args: sys.exit(f"kubemeter sim {missing}"))
        demo.set_defaults(handler=lambda args: sys.exit(f"kubemeter demo {missing}"))
    else:
        sim_cli.add_arguments(sim)
        sim.set_defaults(handler=cmd_sim)
        demo_module.add_arguments(demo)
        demo.set_defaults(handler=cmd_demo)

    parse = commands.add_parser("parse", help="print what the decoder reads from a saved kubelet response")
    parse.add_argument("file", help="a /metrics/resource or /stats/summary body (format detected from content)")
    parse.set_defaults(handler=cmd_parse)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `kubemeter parse FILE | head`: the reader has had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        return 141
