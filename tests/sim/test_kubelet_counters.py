"""Counters served by a simulated kubelet behave like cgroup counters read by cadvisor."""

from __future__ import annotations

import time

import pytest

from kubemeter_sim.kubelet import Kubelet
from kubemeter_sim.profiles import PROFILE_KINDS, make_profile

START = 1_795_000_000.0


def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _pod(profile: str, *, restarts: int = 0, started: float = START, limit: str | None = "256Mi",
         phase: str = "Running") -> dict:
    resources = {"requests": {"cpu": "200m", "memory": "64Mi"}, **({"limits": {"memory": limit}} if limit else {})}
    return {
        "metadata": {"name": "app-0", "namespace": "default", "uid": "uid-app-0",
                     "annotations": {"sim.kubemeter.io/profile": profile}},
        "spec": {"nodeName": "node-a", "containers": [{"name": "app", "resources": resources}]},
        "status": {"phase": phase, "startTime": _rfc3339(START),
                   "containerStatuses": [{"name": "app", "restartCount": restarts, "started": True,
                                          "state": {"running": {"startedAt": _rfc3339(started)}}}]},
    }


def _kubelet(profile: str, **pod_options: object) -> tuple[Kubelet, list[tuple]]:
    restarts: list[tuple] = []
    kubelet = Kubelet("node-a", "127.1.0.1", 10250, "1.30.0", authorize=lambda *a, **k: (True, "t"),
                      housekeeping_interval=10.0, on_restart=lambda *event: restarts.append(event))
    kubelet.sync_pod(_pod(profile, **pod_options))  # type: ignore[arg-type]
    return kubelet, restarts


def _container(kubelet: Kubelet, now: float):
    reading = kubelet.read(now)
    return reading.pods[0].containers[0] if reading.pods else None


@pytest.mark.parametrize("kind", PROFILE_KINDS)
def test_cpu_counter_is_monotonic_and_its_rate_is_the_profile_average(kind: str) -> None:
    kubelet, _ = _kubelet(kind, limit="4Gi")
    previous = None
    for step in range(1, 120):
        sample = _container(kubelet, START + 30 + step * 7.0)
        if previous is not None and sample.start_time == previous.start_time:
            assert sample.cpu_seconds >= previous.cpu_seconds
            if sample.timestamp > previous.timestamp:
                rate = (sample.cpu_seconds - previous.cpu_seconds) / (sample.timestamp - previous.timestamp)
                runtime = next(iter(kubelet.pods.values())).containers[0]
                expected = runtime.profile.mean_cpu_rate(previous.timestamp, sample.timestamp)
                assert rate == pytest.approx(expected, rel=1e-6, abs=1e-8)
        previous = sample


def test_counter_is_deterministic_given_seed_and_time() -> None:
    first, _ = _kubelet("bursty")
    second, _ = _kubelet("bursty")
    assert _container(first, START + 500) == _container(second, START + 500)


def test_samples_come_from_housekeeping_ticks_and_no_stats_before_the_first_tick() -> None:
    kubelet, _ = _kubelet("steady", started=START + 100)
    runtime = next(iter(kubelet.pods.values())).containers[0]
    first_tick = kubelet.tick(START + 100, runtime.tick_phase) + kubelet.housekeeping_interval
    assert _container(kubelet, first_tick - 0.001) is None
    sample = _container(kubelet, first_tick + 3)
    assert sample.timestamp == pytest.approx(first_tick) and sample.cpu_seconds > 0


def test_restart_reported_by_the_api_resets_the_counter_and_the_start_time() -> None:
    kubelet, _ = _kubelet("steady")
    before = _container(kubelet, START + 3600)
    kubelet.sync_pod(_pod("steady", restarts=1, started=START + 3600))
    after = _container(kubelet, START + 3630)
    assert after.start_time == START + 3600 > before.start_time
    assert after.cpu_seconds < before.cpu_seconds
    assert after.cpu_seconds == pytest.approx(
        next(iter(kubelet.pods.values())).containers[0].profile.cpu_seconds(START + 3600, after.timestamp))


def test_pod_counter_survives_container_restarts() -> None:
    kubelet, _ = _kubelet("steady")
    before = kubelet.read(START + 3600).pods[0]
    kubelet.sync_pod(_pod("steady", restarts=1, started=START + 3600))
    after = kubelet.read(START + 3660).pods[0]
    assert after.cpu_seconds > before.cpu_seconds


def test_memory_leak_ends_in_oom_kill_and_restart() -> None:
    kubelet, restarts = _kubelet("leak", limit="256Mi")
    runtime = next(iter(kubelet.pods.values())).containers[0]
    period = runtime.profile.oom_period()
    assert period is not None
    limit = 256 * 1024 * 1024
    early, late = _container(kubelet, START + 20), _container(kubelet, START + period - 1)
    assert early.memory_working_set_bytes < late.memory_working_set_bytes <= limit
    after = _container(kubelet, START + period + 25)
    assert after.start_time == pytest.approx(START + period)
    assert after.memory_working_set_bytes < late.memory_working_set_bytes
    assert after.cpu_seconds < late.cpu_seconds
    assert restarts == [("default", "app-0", "app", 1, pytest.approx(START + period))]
    # The API server learns of the restart; syncing it back must not reset the counter again.
    kubelet.sync_pod(_pod("leak", restarts=1, started=START + period))
    assert _container(kubelet, START + period + 25).start_time == pytest.approx(START + period)


def test_leak_without_limit_still_restarts() -> None:
    profile = make_profile("leak", seed=3)
    assert profile.oom_period() is not None


def test_finished_pods_disappear_from_payloads() -> None:
    kubelet, _ = _kubelet("steady")
    assert kubelet.read(START + 60).pods
    kubelet.sync_pod(_pod("steady", phase="Succeeded"))
    assert kubelet.read(START + 60).pods == []
    assert "uid-app-0" in kubelet.pod_objects  # still listed by /pods, like the real kubelet


def test_unknown_profile_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown usage profile"):
        _kubelet("sometimes")


def test_clock_skew_shifts_timestamps_only() -> None:
    kubelet, _ = _kubelet("steady")
    honest = kubelet.read(START + 600).pods[0].containers[0]
    skewed = kubelet.read(START + 600, timestamp_offset=-300).pods[0].containers[0]
    assert skewed.timestamp == honest.timestamp - 300 and skewed.cpu_seconds == honest.cpu_seconds
