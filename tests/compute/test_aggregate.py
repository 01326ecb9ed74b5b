import math
import random

import pytest
from kubemeter.compute.aggregate import Aggregator
from kubemeter.types import ContainerSpec, PodExtras, PodInfo, Usage, WorkloadRef

WEB = WorkloadRef("shop", "Deployment", "web", "apps/v1")
APP = ContainerSpec("app", cpu_request=0.1, cpu_limit=0.5, memory_request=100e6, memory_limit=200e6)
SIDECAR = ContainerSpec("sidecar", cpu_request=None, cpu_limit=None, memory_request=10e6, memory_limit=None)


def pod(uid, workload=WEB, node="node-1", containers=(APP, SIDECAR)) -> PodInfo:
    return PodInfo(uid, workload.namespace, uid, node, "Running", {}, None, containers, workload)


def used(cpu, memory, t=0.0) -> Usage:
    return Usage(cpu, memory, t)


def test_workload_figures_sum_reporting_containers_and_all_requests():
    aggregator = Aggregator(window_seconds=300, percentiles=(50, 95))
    snapshot = aggregator.cycle(1000.0, [pod("a"), pod("b"), pod("c")], {
        "a": {"app": used(0.05, 80e6), "sidecar": used(0.01, 5e6)},
        "b": {"app": used(0.15, 120e6)},   # sidecar not measured this cycle
    })
    web = snapshot.workloads[WEB]
    assert (web.pods, web.pods_reporting, web.samples) == (3, 2, 1)
    assert web.cpu.usage == pytest.approx(0.21)
    assert web.memory.usage == pytest.approx(205e6)
    assert web.cpu.requests == pytest.approx(0.3)          # requests of all selected pods
    assert web.memory.requests == pytest.approx(330e6)
    assert web.cpu.limits is None and web.memory.limits is None   # the sidecar is unbounded
    assert web.cpu.request_utilization is None              # a measured container has no CPU request
    assert web.memory.request_utilization == pytest.approx(205e6 / 210e6)  # over the measured containers only
    app = web.containers["app"]
    assert app.cpu.usage == pytest.approx(0.2)
    assert app.cpu.limits == pytest.approx(1.5)
    assert app.cpu.request_utilization == pytest.approx(0.2 / 0.2)
    assert web.containers["sidecar"].cpu.requests is None
    assert web.network_rx_bytes_per_second is None and web.ephemeral_storage_bytes is None


def test_pods_without_usage_are_counted_but_measure_nothing():
    aggregator = Aggregator(300, (50,))
    quiet = WorkloadRef("batch", "Job", "idle", "batch/v1")
    snapshot = aggregator.cycle(1000.0, [pod("a", quiet, node="node-2")], {})
    idle = snapshot.workloads[quiet]
    assert (idle.pods, idle.pods_reporting, idle.samples) == (1, 0, 0)
    assert idle.cpu.usage is None and idle.memory.usage is None
    assert idle.cpu.avg is None and idle.cpu.percentiles == {}
    assert idle.memory.requests == pytest.approx(110e6)
    totals = snapshot.namespaces["batch"]
    assert (totals.pods, totals.cpu_cores, totals.memory_bytes) == (1, None, None)
    assert snapshot.nodes["node-2"].cpu_cores is None
    assert snapshot.cluster.cpu_requests_cores == pytest.approx(0.1)


def test_window_statistics_follow_the_per_cycle_workload_sums():
    aggregator = Aggregator(window_seconds=25, percentiles=(50, 100))
    for t, cpu in [(0, 0.9), (10, 0.1), (20, 0.2), (30, 0.3), (40, 0.4)]:
        snapshot = aggregator.cycle(float(t), [pod("a"), pod("b")],
                                    {"a": {"app": used(cpu / 2, 1.0)}, "b": {"app": used(cpu / 2, 1.0)}})
    cpu = snapshot.workloads[WEB].cpu
    # window (15, 40]: cycles at 20, 30, 40
    assert snapshot.workloads[WEB].samples == 3
    assert (cpu.avg, cpu.max) == pytest.approx((0.3, 0.4))
    assert cpu.percentiles == pytest.approx({50: 0.3, 100: 0.4})
    assert snapshot.workloads[WEB].containers["app"].cpu.max == pytest.approx(0.4)


def test_summary_extras_are_summed_over_the_pods_that_have_them():
    snapshot = Aggregator(300, (50,)).cycle(1000.0, [pod("a"), pod("b")], {}, {
        "a": PodExtras(network_rx_bytes_per_second=100.0, network_tx_bytes_per_second=50.0,
                       ephemeral_storage_bytes=4096.0),
        "b": PodExtras(network_rx_bytes_per_second=20.0),
    })
    web = snapshot.workloads[WEB]
    assert (web.network_rx_bytes_per_second, web.network_tx_bytes_per_second, web.ephemeral_storage_bytes) == (
        120.0, 50.0, 4096.0)


def random_cluster(seed: int) -> tuple[list[PodInfo], dict]:
    rng = random.Random(seed)
    specs = [APP, SIDECAR, ContainerSpec("db", 1.0, 2.0, 1e9, 1e9), ContainerSpec("tiny", 0.01, None, None, None)]
    pods, usage = [], {}
    for i in range(400):
        namespace = f"ns-{rng.randrange(5)}"
        ref = WorkloadRef(namespace, rng.choice(["Deployment", "StatefulSet", "Pod"]), f"w{rng.randrange(40)}", "v1")
        containers = tuple(rng.sample(specs, rng.randint(1, 3)))
        pods.append(PodInfo(f"uid-{i}", namespace, f"p{i}", f"node-{rng.randrange(7)}", "Running", {}, None,
                            containers, ref))
        if rng.random() < 0.8:
            # Some containers unreported; none reported without a rate (that makes sums unknown, tested below).
            usage[f"uid-{i}"] = {c.name: used(rng.random(), rng.random() * 1e9)
                                 for c in containers if rng.random() < 0.9}
    return pods, usage


def totals_fields(t):
    return (t.pods, t.pods_reporting, t.cpu_cores or 0.0, t.memory_bytes or 0.0, t.cpu_requests_cores, t.cpu_limits_cores,
            t.memory_requests_bytes, t.memory_limits_bytes)


def summed(items):
    return tuple(map(sum, zip(*items)))


@pytest.mark.parametrize("seed", range(5))
def test_rollups_add_up_workloads_to_namespaces_to_cluster_and_nodes_to_cluster(seed):
    pods, usage = random_cluster(seed)
    snapshot = Aggregator(300, (50,)).cycle(1000.0, pods, usage)
    for namespace, totals in snapshot.namespaces.items():
        workloads = [w for ref, w in snapshot.workloads.items() if ref.namespace == namespace]
        assert totals.pods == sum(w.pods for w in workloads)
        assert totals.cpu_cores == pytest.approx(sum(w.cpu.usage or 0.0 for w in workloads))
        assert totals.memory_bytes == pytest.approx(sum(w.memory.usage or 0.0 for w in workloads))
        assert totals.cpu_requests_cores == pytest.approx(sum(w.cpu.requests or 0.0 for w in workloads))
    cluster = totals_fields(snapshot.cluster)
    assert cluster == pytest.approx(summed(totals_fields(t) for t in snapshot.namespaces.values()))
    assert cluster == pytest.approx(summed(totals_fields(t) for t in snapshot.nodes.values()))
    assert snapshot.cluster.pods == len(pods)
    expected_cpu = sum(u.cpu_cores or 0.0 for containers in usage.values() for u in containers.values())
    assert snapshot.cluster.cpu_cores == pytest.approx(expected_cpu)


def test_cronjob_and_job_churn_does_not_grow_state():
    interval, window = 10.0, 60.0
    aggregator = Aggregator(window, (50, 95))
    cronjob = WorkloadRef("batch", "CronJob", "report", "batch/v1")
    sizes = []
    for cycle in range(1000):
        now = cycle * interval
        run = pod(f"cron-{cycle}", cronjob)                                      # a new Job of the CronJob
        adhoc = pod(f"adhoc-{cycle}", WorkloadRef("batch", "Job", f"migrate-{cycle}", "batch/v1"))  # standalone
        snapshot = aggregator.cycle(now, [run, adhoc], {run.uid: {"app": used(0.1, 1e6)}})
        sizes.append(aggregator.state_size())
    assert len(snapshot.workloads) == 2
    # one series per workload and container name, the jobs of the last window, and the two current pods
    bound = (window / interval + 2) * 3 + 3 + 2
    assert max(sizes) <= bound
    assert sizes[-1] == sizes[500]


def test_a_workload_that_goes_away_leaves_the_snapshot_at_once_and_the_state_after_a_window():
    aggregator = Aggregator(window_seconds=30, percentiles=(50,))
    gone = WorkloadRef("shop", "Deployment", "old", "apps/v1")
    aggregator.cycle(0.0, [pod("a"), pod("b", gone)], {"b": {"app": used(1.0, 1.0)}})
    snapshot = aggregator.cycle(10.0, [pod("a")], {})
    assert set(snapshot.workloads) == {WEB}
    # back within the window: its history is still there
    back = aggregator.cycle(20.0, [pod("a"), pod("b", gone)], {})
    assert back.workloads[gone].samples == 1
    aggregator.cycle(60.0, [pod("a")], {})
    returned = aggregator.cycle(70.0, [pod("a"), pod("b", gone)], {})
    assert returned.workloads[gone].samples == 0


def test_reconfigure_keeps_the_samples_still_inside_the_new_window():
    aggregator = Aggregator(window_seconds=100, percentiles=(50,))
    for t in range(0, 50, 10):
        aggregator.cycle(float(t), [pod("a")], {"a": {"app": used(float(t), 1.0)}})
    aggregator.reconfigure(window_seconds=25, percentiles=(90,))
    snapshot = aggregator.cycle(50.0, [pod("a")], {"a": {"app": used(50.0, 1.0)}})
    cpu = snapshot.workloads[WEB].cpu
    assert snapshot.workloads[WEB].samples == 3            # 30, 40, 50
    assert cpu.percentiles == pytest.approx({90: 48.0})


def test_pods_without_a_resolved_workload_count_in_namespace_node_and_cluster_but_no_workload():
    big = ContainerSpec("app", cpu_request=3.0, cpu_limit=None, memory_request=1e9, memory_limit=None)
    unresolved = PodInfo("x", "shop", "x", "node-2", "Running", {}, None, (big,), None)
    silent = PodInfo("y", "shop", "y", "node-2", "Running", {}, None, (big,), None)  # its node failed, say
    usage = {"x": {"app": used(2.5, 5e8)}, "a": {"app": used(0.1, 1e8), "sidecar": used(0.0, 1e7)}}
    snapshot = Aggregator(300, (50,)).cycle(0.0, [unresolved, silent, pod("a")], usage)

    assert set(snapshot.workloads) == {WEB} and snapshot.workloads[WEB].pods == 1
    shop, node = snapshot.namespaces["shop"], snapshot.nodes["node-2"]
    for totals in (shop, snapshot.cluster):
        assert (totals.pods, totals.pods_reporting) == (3, 2)
        assert totals.cpu_cores == pytest.approx(2.6) and totals.cpu_requests_cores == pytest.approx(6.1)
        assert totals.memory_bytes == pytest.approx(6.1e8)
    assert (node.pods, node.pods_reporting, node.cpu_cores, node.cpu_requests_cores) == (2, 1, 2.5, 6.0)


def test_changed_container_resources_are_picked_up():
    aggregator = Aggregator(300, (50,))
    aggregator.cycle(0.0, [pod("a", containers=(APP,))], {})
    resized = ContainerSpec("app", 0.4, 0.5, 100e6, 200e6)
    snapshot = aggregator.cycle(10.0, [pod("a", containers=(resized,))], {})
    assert snapshot.nodes["node-1"].cpu_requests_cores == pytest.approx(0.4)
    assert snapshot.workloads[WEB].cpu.requests == pytest.approx(0.4)


def test_top_workloads_orders_by_cpu_then_memory_and_puts_unmeasured_last():
    refs = [WorkloadRef("ns", "Deployment", name, "apps/v1") for name in ("a", "b", "c", "d")]
    pods = [pod(ref.name, ref) for ref in refs]
    usage = {"a": {"app": used(0.5, 1.0)}, "b": {"app": used(0.5, 9.0)}, "c": {"app": used(2.0, 0.0)}}
    snapshot = Aggregator(300, (50,)).cycle(0.0, pods, usage)
    assert [w.workload.name for w in snapshot.top_workloads(4)] == ["c", "b", "a", "d"]
    assert [w.workload.name for w in snapshot.top_workloads(1)] == ["c"]
    assert math.isclose(snapshot.top_workloads(1)[0].cpu.usage, 2.0)


def test_two_cycles_at_the_same_time_do_not_double_count():
    aggregator = Aggregator(300, (50,))
    aggregator.cycle(10.0, [pod("a")], {"a": {"app": used(0.1, 1.0)}})
    snapshot = aggregator.cycle(10.0, [pod("a")], {"a": {"app": used(0.1, 1.0)}})
    app = snapshot.workloads[WEB].containers["app"]
    assert app.cpu.usage == pytest.approx(0.1)
    assert app.cpu.requests == pytest.approx(0.1)
    assert snapshot.workloads[WEB].samples == 1


def test_a_pod_without_a_rate_yet_leaves_the_sums_of_the_others_marked_partial_and_out_of_the_window():
    """A scale-up: web's new pods b and c are reported, but b has no CPU rate at all yet and c only for one
    container (a rate needs a second sample unless the container started within the interval). Their workload,
    namespace, node and cluster CPU is that of the pods measured whole, never blank, and says how many pods it
    covers; memory, known for all, covers all. The partial cycle is no dip in the window statistics."""
    aggregator = Aggregator(300, (50,))
    other = WorkloadRef("shop", "Deployment", "api", "apps/v1")
    old = [pod("a"), pod("d", other, node="node-2")]
    steady = {"a": {"app": used(0.2, 80e6), "sidecar": used(0.02, 5e6)},
              "d": {"app": used(0.3, 90e6), "sidecar": used(0.03, 4e6)}}
    aggregator.cycle(1000.0, old, steady)

    pods = [*old, pod("b"), pod("c", node="node-2")]
    snapshot = aggregator.cycle(1015.0, pods, {
        **steady,
        "b": {"app": used(None, 120e6), "sidecar": used(None, 6e6)},
        "c": {"app": used(0.4, 100e6), "sidecar": used(None, 7e6)},  # counted whole or not at all
    })
    web = snapshot.workloads[WEB]
    assert web.cpu.usage == pytest.approx(0.22)
    assert (web.pods, web.pods_reporting, web.cpu_measured_pods, web.memory_measured_pods) == (3, 3, 1, 3)
    app = web.containers["app"].cpu
    assert app.usage == pytest.approx(0.2), "the same pods as the total"
    assert app.request_utilization == pytest.approx(0.2 / 0.1), "over the requests of the pods measured"
    assert web.memory.usage == pytest.approx(318e6)
    assert (web.cpu.avg, web.cpu.max) == (pytest.approx(0.22), pytest.approx(0.22)), "no dip recorded"
    assert web.memory.avg == pytest.approx((85e6 + 318e6) / 2)
    node = snapshot.nodes["node-2"]
    assert (node.cpu_cores, node.cpu_measured_pods, node.memory_measured_pods) == (pytest.approx(0.33), 1, 2)
    shop = snapshot.namespaces["shop"]
    assert (shop.cpu_cores, shop.cpu_measured_pods, shop.pods) == (pytest.approx(0.55), 2, 4)
    assert snapshot.cluster.cpu_cores == pytest.approx(0.55) and snapshot.cluster.cpu_measured_pods == 2
    assert snapshot.cluster.memory_measured_pods == 4

    snapshot = aggregator.cycle(1030.0, pods, {
        **steady,
        "b": {"app": used(0.3, 120e6), "sidecar": used(0.03, 6e6)},
        "c": {"app": used(0.4, 100e6), "sidecar": used(0.04, 7e6)},
    })
    web = snapshot.workloads[WEB]
    assert web.cpu_measured_pods == 3 and web.cpu.usage == pytest.approx(0.99)
    assert web.cpu.avg == pytest.approx((0.22 + 0.99) / 2), "the partial cycle is not in the window"
    assert snapshot.cluster.cpu_cores == pytest.approx(1.32) and snapshot.cluster.cpu_measured_pods == 4


def test_a_pod_not_reported_at_all_is_counted_by_pods_reporting_and_its_workload_keeps_its_window():
    """A pod on a failing node is not a pod waiting for a rate: the sums of the others are what is known of the
    workload this cycle (podsReporting says how much), and the window records them."""
    aggregator = Aggregator(300, (50,))
    snapshot = aggregator.cycle(1000.0, [pod("a"), pod("b", node="node-3")], {
        "a": {"app": used(0.2, 80e6), "sidecar": used(0.02, 5e6)},
    })
    web = snapshot.workloads[WEB]
    assert (web.pods, web.pods_reporting, web.cpu_measured_pods) == (2, 1, 1)
    assert web.cpu.usage == pytest.approx(0.22) and web.cpu.avg == pytest.approx(0.22)
    assert snapshot.nodes["node-3"].cpu_cores is None and snapshot.nodes["node-3"].cpu_measured_pods == 0
