"""What a checkpoint round trip may change in a histogram: its weights are quantised (VPA's checkpoints)."""

from kubemeter.compute.histogram import MAX_CHECKPOINT_WEIGHT, DecayingHistogram


def assert_percentiles_survive_quantisation(original: DecayingHistogram, restored: DecayingHistogram) -> None:
    """Each bucket's weight is rounded to 1/MAX_CHECKPOINT_WEIGHT of the heaviest, so every cumulative share moves
    by at most ``buckets / MAX_CHECKPOINT_WEIGHT`` (doubled here for the renormalisation to the total): a
    restored percentile lies between the original's at ``p - slack`` and ``p + slack``. Near a tie it may be a
    neighbouring non-empty bucket, far away in value, as in VPA."""
    slack = 200.0 * len(original) / MAX_CHECKPOINT_WEIGHT
    for p in (0.0, 10.0, 50.0, 90.0, 95.0, 100.0):
        low, high = original.percentile(max(p - slack, 0.0)), original.percentile(min(p + slack, 100.0))
        assert low <= restored.percentile(p) <= high, (p, slack)
