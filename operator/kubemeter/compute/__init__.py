"""kubemeter.compute: pure, I/O-free computation from decoded samples to per-workload figures.

``quantity`` parses Kubernetes quantities, ``owners`` resolves pods to workloads, ``rates`` turns
cumulative counters into rates, ``window`` keeps rolling statistics and ``aggregate`` sums a cycle into a
:class:`~kubemeter.compute.snapshot.Snapshot`.
"""
