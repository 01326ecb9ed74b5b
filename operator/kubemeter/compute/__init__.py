"""kubemeter.compute: pure, I/O-free computation from decoded samples to per-workload figures.

``quantity`` parses Kubernetes quantities, ``owners`` resolves pods to workloads, ``measure`` joins a node's
samples to the selected pods and ``rates`` turns cumulative counters into rates, ``window`` keeps rolling
statistics and ``aggregate`` sums a cycle into a :class:`~kubemeter.compute.snapshot.Snapshot`, carried to the
publishers in a :class:`~kubemeter.compute.report.CycleReport`. ``histogram`` keeps decaying histograms of usage and
``rightsizing`` per-container histories and request recommendations made from them.
"""
