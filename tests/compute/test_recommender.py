"""A policy's Recommender: the histories of every workload container it selects, the recommendations and
verdicts made from them, what is forgotten when, and checkpoints put back."""

import pytest

from kubemeter.compute.rightsizing import (
    REFRESH_SECONDS,
    HistoryConfig,
    Recommender,
    RightsizingConfig,
    verdict,
)
from kubemeter.types import ContainerSpec, PodInfo, Usage, WorkloadRef

START = 1_700_006_400.0
HOUR = 3600.0
DAY = 24 * HOUR
MI = 2.0**20
WEB = WorkloadRef("shop", "Deployment", "web", "apps/v1")
SMALL = WorkloadRef("shop", "Deployment", "small", "apps/v1")


def pod(uid: str, ref: WorkloadRef | None, cpu_request: float | None = 0.5, memory_request: float | None = 256 * MI,
        name: str = "app") -> PodInfo:
    return PodInfo(uid, "shop", uid, "node-1", "Running", {}, None,
                   (ContainerSpec(name, cpu_request, None, memory_request, None),), ref)


def run(recommender: Recommender, pods: list[PodInfo], seconds: float, interval: float = 60.0,
        cpu: float = 0.1, memory: float = 100 * MI, start: float = START):
    """Every pod's containers at ``cpu`` cores and ``memory`` bytes, a cycle every ``interval``; the last
    recommendations and the time of the last cycle (``seconds`` after the first: the first sample covers none)."""
    made = {}
    for step in range(int(seconds / interval) + 1):
        t = start + step * interval
        usage = {p.uid: {c.name: Usage(cpu, memory, t) for c in p.containers} for p in pods}
        recommender.observe(t, pods, usage, interval)
        made = recommender.recommendations(t, pods, interval)
    return made, t


def test_an_over_requested_workload_is_called_over_with_what_it_could_give_back():
    pods = [pod("a", WEB), pod("b", WEB)]
    made, _ = run(Recommender(), pods, DAY)
    web = made[WEB].containers["app"]
    assert (web.pods, web.cpu_request, web.memory_request) == (2, 0.5, 256 * MI)
    assert 0.115 <= web.recommendation.cpu.target <= 0.13, "p90 of 0.1 core plus 15%, within a bucket"
    assert (web.cpu_verdict, web.memory_verdict) == ("over", "over")
    assert web.history_seconds == pytest.approx(DAY)
    # Recommended minus requested, per pod and over both pods: negative, capacity to give back.
    assert web.cpu_difference == pytest.approx(web.recommendation.cpu.target - 0.5)
    assert made[WEB].total_difference("cpu") == pytest.approx(2 * web.cpu_difference)


def test_under_fit_unset_and_learning_are_told_apart():
    small, fitting, bare = (WorkloadRef("shop", "Deployment", name, "apps/v1") for name in ("small", "fits", "bare"))
    pods = [pod("s", small, cpu_request=0.01, memory_request=16 * MI), pod("f", fitting, cpu_request=0.15),
            pod("u", bare, cpu_request=None, memory_request=None)]
    made, _ = run(Recommender(), pods, DAY)
    assert (made[small].containers["app"].cpu_verdict, made[small].containers["app"].memory_verdict) == (
        "under", "under")
    assert made[fitting].containers["app"].cpu_verdict == "fit"
    unset = made[bare].containers["app"]
    assert (unset.cpu_verdict, unset.memory_verdict, unset.cpu_difference) == ("unset", "unset", None)
    assert made[bare].total_difference("cpu") is None
    young, _ = run(Recommender(), [pod("y", WEB)], 10 * 60)
    assert young[WEB].containers["app"].cpu_verdict == "learning", "ten minutes of data is not a verdict"
    assert young[WEB].total_difference("cpu") is None, "what could be given back waits for a verdict too"


def test_a_tiny_request_is_not_called_under_when_usage_is_below_what_the_buckets_resolve():
    # 1m of a 5m request and 2 MB of 4 MiB: every sample is in the first bucket (up to 10m, 10 MB), whose end
    # the percentiles report. The histogram cannot tell that from 9m: not "under".
    made, _ = run(Recommender(), [pod("tiny", WEB, cpu_request=0.005, memory_request=4 * MI)], DAY,
                  cpu=0.001, memory=2e6)
    tiny = made[WEB].containers["app"]
    assert (tiny.cpu_verdict, tiny.memory_verdict) == ("fit", "fit")
    # The same request with usage well beyond the first bucket is under.
    made, _ = run(Recommender(), [pod("busy", WEB, cpu_request=0.005, memory_request=4 * MI)], DAY,
                  cpu=0.05, memory=50e6)
    busy = made[WEB].containers["app"]
    assert (busy.cpu_verdict, busy.memory_verdict) == ("under", "under")


def test_the_request_compared_is_the_one_most_pods_have_during_a_rollout():
    pods = [pod("old-1", WEB, cpu_request=1.0), pod("old-2", WEB, cpu_request=1.0), pod("new", WEB, cpu_request=0.2)]
    made, _ = run(Recommender(), pods, HOUR)
    assert made[WEB].containers["app"].cpu_request == 1.0


def test_with_short_history_under_shows_early_and_over_only_once_the_bounds_narrow():
    # VPA's bounds widen with little history: the upper one is 13 times p95's after two hours, so a request
    # five times the usage is not yet "over"; the lower one is within 15% of p50's after ten minutes, so a
    # request ten times too small is "under" at once (the costly mistake: throttling, OOM kills).
    config = RightsizingConfig(min_history=0.0)
    pods = [pod("big", WEB), pod("small", SMALL, cpu_request=0.01)]
    made, t = run(Recommender(config), pods, 2 * HOUR)
    assert (made[WEB].containers["app"].cpu_verdict, made[SMALL].containers["app"].cpu_verdict) == ("fit", "under")
    assert verdict(0.5, None, HOUR, 0.0) == "learning", "no sample of that resource yet"


def test_verdicts_stay_learning_until_min_history_of_watching_whatever_the_interval():
    config = RightsizingConfig(min_history=HOUR)
    for interval in (10.0, HOUR):
        recommender, pods = Recommender(config), [pod("a", WEB)]
        made, _ = run(recommender, pods, 0.0, interval)  # one cycle
        app = made[WEB].containers["app"]
        assert app.history_seconds == 0.0 and (app.cpu_verdict, app.memory_verdict) == ("learning", "learning")
    made, t = run(Recommender(config), pods, HOUR, HOUR)  # two hour-long cycles: an hour watched
    app = made[WEB].containers["app"]
    assert app.history_seconds == pytest.approx(HOUR) and (app.cpu_verdict, app.memory_verdict) == ("fit", "fit")


def test_recommendations_are_refreshed_once_a_minute_not_every_cycle():
    recommender, pods, interval = Recommender(), [pod("a", WEB)], 10.0
    times = set()
    for step in range(1, 31):
        t = START + step * interval
        recommender.observe(t, pods, {"a": {"app": Usage(0.1, 100 * MI, t)}}, interval)
        times.add(recommender.recommendations(t, pods, interval)[WEB].time)
    assert len(times) == 5 and all(b - a == REFRESH_SECONDS for a, b in zip(sorted(times), sorted(times)[1:]))


def test_bare_pods_and_jobs_are_forgotten_with_the_window_other_kinds_after_a_half_life():
    job = WorkloadRef("shop", "Job", "migrate-28391", "batch/v1")
    bare = WorkloadRef("shop", "Pod", "debug", "v1")
    recommender = Recommender(RightsizingConfig(HistoryConfig(half_life=6 * HOUR)))
    _, t = run(recommender, [pod("a", WEB), pod("j", job), pod("p", bare)], HOUR)
    assert recommender.forget_unseen(t + 299, 300.0) == []
    assert set(recommender.forget_unseen(t + 301, 300.0)) == {job, bare}
    assert set(recommender.workloads()) == {WEB}
    assert recommender.forget_unseen(t + 5 * HOUR, 300.0) == [], "a Deployment scaled to zero for the night"
    assert recommender.forget_unseen(t + 6 * HOUR + 1, 300.0) == [WEB]
    assert len(recommender) == 0


def test_pods_without_a_workload_leave_no_history():
    recommender = Recommender()
    made, _ = run(recommender, [pod("orphan", None)], HOUR)
    assert made == {} and len(recommender) == 0


def test_a_checkpoint_put_back_gives_the_same_recommendation_and_confidence():
    first = Recommender()
    made, t = run(first, [pod("a", WEB)], 3 * HOUR)
    second = Recommender()
    second.restore(WEB, first.export(WEB), t)
    again = second.recommendations(t, [pod("a", WEB)], 60.0)
    mine, theirs = made[WEB].containers["app"], again[WEB].containers["app"]
    assert theirs.history_seconds == mine.history_seconds
    assert theirs.recommendation.cpu.target == pytest.approx(mine.recommendation.cpu.target)
    assert theirs.recommendation.memory.target == pytest.approx(mine.recommendation.memory.target)


def test_a_malformed_checkpoint_names_the_container_and_restores_nothing():
    recommender = Recommender()
    _, t = run(recommender, [pod("a", WEB)], HOUR)
    good = recommender.export(WEB)["app"]
    fresh = Recommender()
    with pytest.raises(ValueError, match="container 'sidecar'"):
        fresh.restore(WEB, {"app": good, "sidecar": {"version": 99}}, t)
    assert fresh.workloads() == []
    with pytest.raises(ValueError, match="must map container names"):
        fresh.restore(WEB, ["app"], t)


def test_a_new_half_life_keeps_the_history():
    recommender = Recommender()
    made, t = run(recommender, [pod("a", WEB)], 2 * HOUR)
    recommender.reconfigure(RightsizingConfig(HistoryConfig(half_life=HOUR)))
    again = recommender.recommendations(t, [pod("a", WEB)], 60.0)
    assert again[WEB].containers["app"].history_seconds == made[WEB].containers["app"].history_seconds
