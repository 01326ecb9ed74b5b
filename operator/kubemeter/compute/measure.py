"""The join of one node's decoded samples to the pods a policy selected, and their counters turned into rates.

``UsageMeter`` keeps one policy's counter baselines between cycles (CPU per container, network per pod);
the loop calls ``measure`` once per scraped node and ``prune`` once per cycle.
"""

from __future__ import annotations

from collections.abc import Collection

from kubemeter.compute.rates import CounterRates
from kubemeter.types import NodeMetrics, PodExtras, PodInfo, PodSample, Usage


class UsageMeter:
    def __init__(self) -> None:
        self.cpu_rates = CounterRates()
        self.network_rates = CounterRates()

    def measure(
        self,
        metrics: NodeMetrics,
        scrape_time: float,
        pods: dict[tuple[str, str], PodInfo],
        interval: float,
        usage: dict[str, dict[str, Usage]],
        extras: dict[str, PodExtras] | None = None,
    ) -> None:
        """Add the selected pods' per-container usage to ``usage`` (pod uid -> container -> Usage) and, when
        given ``extras`` (``/stats/summary``), their network rates and ephemeral storage. ``pods``: the node's
        selected pods by (namespace, name); ``scrape_time``: the time of samples that carry none."""
        observe = self.cpu_rates.observe
        for sample in metrics.pods:
            pod = pods.get((sample.namespace, sample.name))
            if pod is None or (sample.uid and sample.uid != pod.uid):
                continue  # not selected, or an older pod of the same name (StatefulSet) still reported
            containers: dict[str, Usage] = {}
            for c in sample.containers:
                at = c.timestamp or scrape_time
                cpu = None
                if c.cpu_seconds is not None:
                    cpu = observe((pod.uid, c.name), c.cpu_seconds, at, c.start_time, interval, scrape_time)
                containers[c.name] = Usage(cpu, c.memory_working_set_bytes, at)
            usage[pod.uid] = containers
            if extras is not None:
                extras[pod.uid] = self._pod_extras(pod.uid, sample, scrape_time, interval)

    def _pod_extras(self, uid: str, sample: PodSample, scrape_time: float, interval: float) -> PodExtras:
        at = sample.timestamp or scrape_time

        def rate(direction: str, value: float | None) -> float | None:
            if value is None:
                return None
            return self.network_rates.observe((uid, direction), value, at, None, interval, scrape_time)

        return PodExtras(
            network_rx_bytes_per_second=rate("rx", sample.network_rx_bytes),
            network_tx_bytes_per_second=rate("tx", sample.network_tx_bytes),
            ephemeral_storage_bytes=sample.ephemeral_storage_bytes,
        )

    def prune(self, horizon: float, live_pods: Collection[str]) -> None:
        """Forget the baselines of pods not in ``live_pods`` (uids) at once, and the others' not seen since
        ``horizon`` (a container or pod that went away)."""
        for rates in (self.cpu_rates, self.network_rates):
            rates.prune(horizon, lambda key: key[0] in live_pods)
