"""kubemeter_sim: a simulated Kubernetes cluster that kopf, the official client and kubectl use unmodified.

* :mod:`kubemeter_sim.cluster` -- ``Cluster``, the whole thing as one async context manager;
* :mod:`kubemeter_sim.apiserver` -- the API server (REST protocol, watches, RBAC, CRDs);
* :mod:`kubemeter_sim.kubelet` -- one HTTPS kubelet per node (``/metrics/resource``, ``/stats/summary``,
  ``/pods``, ``/healthz``), rendered by :mod:`kubemeter_sim.payloads` from :mod:`kubemeter_sim.profiles`;
* :mod:`kubemeter_sim.faults` -- kubelet misbehaviour to inject;
* :mod:`kubemeter_sim.scenario` -- workloads as the controllers make them, and operations on them (a package:
  controllers, scheduler, pods, kubelets' writes);
* :mod:`kubemeter_sim.catalogue` -- what test clusters are made of (``populate_mixed``), on either backend;
* :mod:`kubemeter_sim.cli` -- ``kubemeter sim``.
"""
