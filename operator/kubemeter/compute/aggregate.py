"""Per-cycle aggregation: container usage -> workloads (with window statistics) -> namespaces, nodes, cluster.

Hot path: ``Aggregator.cycle`` touches every container of every selected pod each cycle (90,000 at the
scale target), so the running sums are slot attributes on objects that are kept and reset from cycle to
cycle rather than allocated anew (allocations that outlive a cycle make the garbage collector traverse
the whole heap again and again).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping, Sequence

from kubemeter.compute.snapshot import RAW_FIGURES, Snapshot, Totals, WorkloadResult, resource_figures
from kubemeter.compute.window import Window
from kubemeter.types import ContainerSpec, PodExtras, PodInfo, Usage, WorkloadRef


class _ResourceSum:
    """Running sums of one resource over containers; see snapshot.ResourceFigures for what the figures mean."""

    __slots__ = ("usage", "measured", "pending", "pods", "measured_requests", "measured_unrequested",
                 "requests", "requested", "limits", "unlimited")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.usage = 0.0
        self.measured = 0
        self.pending = 0
        self.pods = 0  # pods in ``usage``: counted where whole pods are summed (not in container-name series)
        self.measured_requests = 0.0
        self.measured_unrequested = 0
        self.requests = 0.0
        self.requested = 0
        self.limits = 0.0
        self.unlimited = 0

    def add(self, request: float | None, limit: float | None, used: float | None, reported: bool = False) -> None:
        """Count one container's request, limit and (when measured) usage. ``reported`` without ``used``: the
        kubelet reported the container but its pod is left out of the sum (a container of it has no value yet:
        a CPU rate needs a second sample)."""
        if used is None and reported:
            self.pending += 1
        if request is not None:
            self.requests += request
            self.requested += 1
        if limit is not None:
            self.limits += limit
        else:
            self.unlimited += 1
        if used is not None:
            self.usage += used
            self.measured += 1
            if request:
                self.measured_requests += request
            else:
                self.measured_unrequested += 1

    def add_usage(self, used: float | None, pending: int) -> None:
        """Count one pod's usage whose requests and limits are counted elsewhere (see Aggregator._spec_sums);
        ``pending``: its reported containers left out."""
        self.pending += pending
        if used is not None:
            self.usage += used
            self.measured += 1
            self.pods += 1

    def merge(self, other: _ResourceSum) -> None:
        self.usage += other.usage
        self.measured += other.measured
        self.pending += other.pending
        self.pods += other.pods
        self.measured_requests += other.measured_requests
        self.measured_unrequested += other.measured_unrequested
        self.requests += other.requests
        self.requested += other.requested
        self.limits += other.limits
        self.unlimited += other.unlimited

    @property
    def current(self) -> float | None:
        """The sum over the pods measured whole, or None when none was. Partial while ``pending``: ``pods`` says
        how many it covers."""
        return self.usage if self.measured else None

    @property
    def complete(self) -> float | None:
        """The sum when it covers every reported pod, else None: what a window records, so that a pod waiting
        for its first rate (a scale-up, a rollout, an operator restart) makes no dip in the statistics."""
        return self.usage if self.measured and not self.pending else None

    def raw_figures(self, window: array | None) -> tuple:
        """This cycle's raw figures (see snapshot.RAW_FIGURES)."""
        usage = self.current
        utilization = None
        if usage is not None and not self.measured_unrequested and self.measured_requests > 0:
            utilization = usage / self.measured_requests
        return (
            usage,
            self.requests if self.requested else None,
            None if self.unlimited else self.limits,
            utilization,
            window,
        )


class _Sums:
    """CPU and memory sums plus pod counts (all, and those measured this cycle): a container name, a workload,
    a namespace, a node or one pod."""

    __slots__ = ("pods", "reporting", "cpu", "memory")

    def __init__(self) -> None:
        self.pods = 0
        self.reporting = 0
        self.cpu = _ResourceSum()
        self.memory = _ResourceSum()

    def reset(self) -> None:
        self.pods = 0
        self.reporting = 0
        self.cpu.reset()
        self.memory.reset()

    def merge(self, other: _Sums) -> None:
        self.pods += other.pods
        self.reporting += other.reporting
        self.cpu.merge(other.cpu)
        self.memory.merge(other.memory)

    def totals(self) -> Totals:
        return Totals(
            pods=self.pods,
            pods_reporting=self.reporting,
            cpu_cores=self.cpu.current,
            memory_bytes=self.memory.current,
            cpu_measured_pods=self.cpu.pods,
            memory_measured_pods=self.memory.pods,
            cpu_requests_cores=self.cpu.requests,
            cpu_limits_cores=self.cpu.limits,
            memory_requests_bytes=self.memory.requests,
            memory_limits_bytes=self.memory.limits,
        )


def _plus(total: float | None, value: float | None) -> float | None:
    if value is None:
        return total
    return value if total is None else total + value


class _Series:
    """A workload's or one of its container names' sums this cycle and CPU/memory windows across cycles."""

    __slots__ = ("sums", "cpu", "memory", "cycle", "last_seen")

    def __init__(self, window_seconds: float) -> None:
        self.sums = _Sums()
        self.cpu = Window(window_seconds)
        self.memory = Window(window_seconds)
        self.cycle = -1  # the number of the cycle ``sums`` belong to
        self.last_seen = -float("inf")

    def begin(self, cycle: int, now: float) -> None:
        self.sums.reset()
        self.cycle = cycle
        self.last_seen = now

    def record(self, now: float) -> tuple:
        """Add this cycle's usage to the windows; this cycle's CPU then memory raw figures."""
        cpu, memory = self.sums.cpu, self.sums.memory
        for sums, window in ((cpu, self.cpu), (memory, self.memory)):
            complete = sums.complete
            if complete is not None:
                window.add(now, complete)
        return cpu.raw_figures(self.cpu.values(now)) + memory.raw_figures(self.memory.values(now))

    def resize(self, window_seconds: float) -> None:
        self.cpu.seconds = self.memory.seconds = window_seconds


class _Workload:
    """Everything kept for one workload: its totals and container-name series, and this cycle's extras. (Also
    the pods of one namespace that are in no workload, for one cycle: their sums only, see Aggregator.cycle.)"""

    __slots__ = ("total", "containers", "rx", "tx", "ephemeral")

    def __init__(self, window_seconds: float) -> None:
        self.total = _Series(window_seconds)
        self.containers: dict[str, _Series] = {}
        self.rx: float | None = None
        self.tx: float | None = None
        self.ephemeral: float | None = None

    def begin(self, cycle: int, now: float) -> None:
        self.total.begin(cycle, now)
        self.rx = self.tx = self.ephemeral = None

    def add_extras(self, extras: PodExtras) -> None:
        self.rx = _plus(self.rx, extras.network_rx_bytes_per_second)
        self.tx = _plus(self.tx, extras.network_tx_bytes_per_second)
        self.ephemeral = _plus(self.ephemeral, extras.ephemeral_storage_bytes)

    def series(self) -> Iterable[_Series]:
        yield self.total
        yield from self.containers.values()

    def current_containers(self) -> Iterable[tuple[str, _Series]]:
        """The container names seen this cycle."""
        cycle = self.total.cycle
        return ((name, series) for name, series in self.containers.items() if series.cycle == cycle)

    def cycle_sums(self) -> _Sums:
        """This cycle's container names summed into the total (once per cycle)."""
        total = self.total.sums
        for _, series in self.current_containers():
            total.merge(series.sums)
        return total

    def result(self, ref: WorkloadRef, now: float, percentiles: tuple[float, ...]) -> WorkloadResult:
        """Sum this cycle's container names into the total, record every series, build the result."""
        total = self.cycle_sums()
        containers = {name: series.record(now) for name, series in self.current_containers()}
        raw = self.total.record(now)
        return WorkloadResult(
            workload=ref,
            pods=total.pods,
            pods_reporting=total.reporting,
            cpu_measured_pods=total.cpu.pods,
            memory_measured_pods=total.memory.pods,
            samples=max(len(self.total.cpu), len(self.total.memory)),
            cpu=resource_figures(raw[:RAW_FIGURES], percentiles),
            memory=resource_figures(raw[RAW_FIGURES:], percentiles),
            container_values=containers,
            network_rx_bytes_per_second=self.rx,
            network_tx_bytes_per_second=self.tx,
            ephemeral_storage_bytes=self.ephemeral,
            percentile_levels=percentiles,
        )


class Aggregator:
    """Turns each cycle's pods and usage into a :class:`Snapshot`, keeping per-workload window history.

    History is keyed by :class:`WorkloadRef` (never by pod or Job), so CronJob churn does not grow it. A
    workload or container name that stops appearing keeps its history for one window length (a Recreate
    rollout or a missed cycle does not wipe it) and is forgotten after that, when its samples have aged out.
    """

    def __init__(self, window_seconds: float, percentiles: Sequence[float]) -> None:
        self._window_seconds = window_seconds
        self._percentiles = tuple(percentiles)
        self._workloads: dict[WorkloadRef, _Workload] = {}
        # Pod uid -> (its container specs, their requests/limits as one pod): node totals per pod, not per
        # container; reused while the pod's specs stay the same object.
        self._specs: dict[str, tuple[tuple[ContainerSpec, ...], _Sums]] = {}
        self._cycles = 0

    def reconfigure(self, window_seconds: float, percentiles: Sequence[float]) -> None:
        """Apply a new window length and percentiles; the samples still inside the new window are kept."""
        self._window_seconds = window_seconds
        self._percentiles = tuple(percentiles)
        for workload in self._workloads.values():
            for series in workload.series():
                series.resize(window_seconds)

    def state_size(self) -> int:
        """How many things the aggregator remembers between cycles: series (workload totals and container
        names) with window history, plus pods whose requests and limits are cached."""
        return sum(1 + len(workload.containers) for workload in self._workloads.values()) + len(self._specs)

    def cycle(
        self,
        now: float,
        pods: Iterable[PodInfo],
        usage: Mapping[str, Mapping[str, Usage]],
        pod_usage: Mapping[str, PodExtras] | None = None,
    ) -> Snapshot:
        """Aggregate one cycle.

        ``pods``: the selected, scheduled, non-terminated pods (those without a resolved workload count in
        their namespace, node and the cluster, in no workload; pods without a node count in their namespace
        and the cluster, not in ``nodes``);
        ``usage``: pod uid -> container name -> Usage for the pods that reported this cycle (only containers
        listed in the pod's spec count); ``pod_usage``: pod uid -> summary-only extras.
        """
        self._cycles += 1
        active, without_workload, nodes = self._sum_pods(now, pods, usage, pod_usage or {})
        workloads: dict[WorkloadRef, WorkloadResult] = {}
        namespaces: dict[str, _Sums] = {}
        for ref, workload in active.items():
            workloads[ref] = workload.result(ref, now, self._percentiles)
            namespace = namespaces.get(ref.namespace)
            if namespace is None:
                namespace = namespaces[ref.namespace] = _Sums()
            namespace.merge(workload.total.sums)
        for name, pods_of_no_workload in without_workload.items():
            namespaces.setdefault(name, _Sums()).merge(pods_of_no_workload.cycle_sums())
        self._forget(now)
        cluster = _Sums()
        for sums in namespaces.values():
            cluster.merge(sums)
        return Snapshot(
            time=now,
            workloads=workloads,
            namespaces={name: sums.totals() for name, sums in namespaces.items()},
            nodes={name: sums.totals() for name, sums in nodes.items()},
            cluster=cluster.totals(),
        )

    def _sum_pods(
        self,
        now: float,
        pods: Iterable[PodInfo],
        usage: Mapping[str, Mapping[str, Usage]],
        pod_usage: Mapping[str, PodExtras],
    ) -> tuple[dict[WorkloadRef, _Workload], dict[str, _Workload], dict[str, _Sums]]:
        """This cycle's workloads; per namespace, its pods in no workload (summed as one workload would be,
        but kept for this cycle only: nothing to show of them across cycles); per node, its pods."""
        active: dict[WorkloadRef, _Workload] = {}
        without_workload: dict[str, _Workload] = {}
        nodes: dict[str, _Sums] = {}
        specs: dict[str, tuple[tuple[ContainerSpec, ...], _Sums]] = {}
        no_usage: Mapping[str, Usage] = {}
        cycle = self._cycles
        for pod in pods:
            ref = pod.workload
            if ref is None:
                workload = without_workload.get(pod.namespace)
                if workload is None:
                    workload = without_workload[pod.namespace] = _Workload(self._window_seconds)
                    workload.begin(cycle, now)
            else:
                workload = active.get(ref)
                if workload is None:
                    workload = active[ref] = self._begin(ref, cycle, now)
            total = workload.total.sums
            total.pods += 1
            reported = usage.get(pod.uid)
            if reported:
                total.reporting += 1
            measured_containers = reported if reported is not None else no_usage
            # A pod counts whole or not at all, as metrics-server serves a pod only with all its containers'
            # values: so a sum's pod count says what it covers, and a pod's own figures never come in halves.
            cpu_whole = memory_whole = bool(reported)
            if reported:
                for spec in pod.containers:
                    measured = reported.get(spec.name)
                    if measured is not None:
                        cpu_whole = cpu_whole and measured.cpu_cores is not None
                        memory_whole = memory_whole and measured.memory_bytes is not None
            container_series = workload.containers
            pod_cpu = pod_memory = None
            reported_containers = 0
            for spec in pod.containers:
                series = container_series.get(spec.name)
                if series is None:
                    series = container_series[spec.name] = _Series(self._window_seconds)
                if series.cycle != cycle:
                    series.begin(cycle, now)
                sums = series.sums
                measured = measured_containers.get(spec.name)
                if measured is None:
                    sums.cpu.add(spec.cpu_request, spec.cpu_limit, None)
                    sums.memory.add(spec.memory_request, spec.memory_limit, None)
                else:
                    reported_containers += 1
                    cpu = measured.cpu_cores if cpu_whole else None
                    memory = measured.memory_bytes if memory_whole else None
                    sums.cpu.add(spec.cpu_request, spec.cpu_limit, cpu, reported=True)
                    sums.memory.add(spec.memory_request, spec.memory_limit, memory, reported=True)
                    pod_cpu = _plus(pod_cpu, cpu)
                    pod_memory = _plus(pod_memory, memory)
            total.cpu.pods += pod_cpu is not None
            total.memory.pods += pod_memory is not None
            if pod.node is not None:
                node = nodes.get(pod.node)
                if node is None:
                    node = nodes[pod.node] = _Sums()
                node.merge(self._spec_sums(pod, specs))
                if reported:
                    node.reporting += 1
                node.cpu.add_usage(pod_cpu, 0 if cpu_whole else reported_containers)
                node.memory.add_usage(pod_memory, 0 if memory_whole else reported_containers)
            extras = pod_usage.get(pod.uid)
            if extras is not None:
                workload.add_extras(extras)
        self._specs = specs
        return active, without_workload, nodes

    def _begin(self, ref: WorkloadRef, cycle: int, now: float) -> _Workload:
        workload = self._workloads.get(ref)
        if workload is None:
            workload = self._workloads[ref] = _Workload(self._window_seconds)
        workload.begin(cycle, now)
        return workload

    def _spec_sums(self, pod: PodInfo, specs: dict[str, tuple[tuple[ContainerSpec, ...], _Sums]]) -> _Sums:
        """One pod with its requests and limits (no usage), reused across cycles while its specs stay the same."""
        cached = self._specs.get(pod.uid)
        if cached is None or cached[0] is not pod.containers:
            sums = _Sums()
            sums.pods = 1
            for spec in pod.containers:
                sums.cpu.add(spec.cpu_request, spec.cpu_limit, None)
                sums.memory.add(spec.memory_request, spec.memory_limit, None)
            cached = (pod.containers, sums)
        specs[pod.uid] = cached
        return cached[1]

    def _forget(self, now: float) -> None:
        """Drop the history of workloads and container names unseen for longer than the window."""
        horizon = now - self._window_seconds
        for ref in [ref for ref, workload in self._workloads.items() if workload.total.last_seen < horizon]:
            del self._workloads[ref]
        for workload in self._workloads.values():
            for name in [name for name, series in workload.containers.items() if series.last_seen < horizon]:
                del workload.containers[name]
