"""kubemeter.sim: a simulated Kubernetes cluster that kopf, the official client and kubectl use unmodified.

* :mod:`kubemeter.sim.cluster` -- ``Cluster``, the whole thing as one async context manager;
* :mod:`kubemeter.sim.apiserver` -- the API server (REST protocol, watches, RBAC, CRDs);
* :mod:`kubemeter.sim.kubelet` -- one HTTPS kubelet per node (``/metrics/resource``, ``/stats/summary``,
  ``/pods``, ``/healthz``), rendered by :mod:`kubemeter.sim.payloads` from :mod:`kubemeter.sim.profiles`;
* :mod:`kubemeter.sim.faults` -- kubelet misbehaviour to inject;
* :mod:`kubemeter.sim.scenario` -- workloads as the controllers make them, and operations on them;
* :mod:`kubemeter.sim.cli` -- ``kubemeter sim``.
"""
