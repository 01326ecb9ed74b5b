"""Workloads as the real controllers would have made them, and the operations tests perform on them.

:class:`Scenario` plays kube-controller-manager, the scheduler and the kubelets' status writers against
the simulated API server's store: Deployment -> ReplicaSet (``<name>-<pod-template-hash>``) -> Pods,
CronJob -> Job (``<name>-<scheduled minute>``) -> Pods, StatefulSets (``<name>-<ordinal>``), DaemonSets
(one pod per node), bare pods and static (mirror) pods owned by their Node. Pods are created as the
controllers create them (``Pending``) and then set ``Running`` through the ``status`` subresource as the
kubelet does. Names and choices are deterministic given the seed; uids come from the API server.

One module per concern:

* :mod:`.simulated` -- :class:`Scenario`, the wiring and the methods shared with the real backend's scenario;
* :mod:`.controllers` -- the reconcile queue and the per-kind controllers together: :mod:`.deployments`
  (Deployments, ReplicaSets), :mod:`.sets` (StatefulSets, DaemonSets), :mod:`.jobs` (CronJobs, Jobs),
  each working with a :class:`~.kit.ControllerKit` (:mod:`.kit`);
* :mod:`.scheduler` -- node choice: taints, the least-loaded node;
* :mod:`.pods` -- the pod index by owner and pod creation as controllers do it;
* :mod:`.kubelets` -- what the kubelets write: Node registration and status, pod IPs, Running, restarts.

The workload catalogue (``container``, ``template``, ``populate_mixed``) is backend-agnostic and lives in
:mod:`kubemeter_sim.catalogue`; it is re-exported here, where the simulated cluster's users find it.
"""

from kubemeter_sim.catalogue import container, populate_mixed, template
from kubemeter_sim.scenario.simulated import Scenario

__all__ = ["Scenario", "container", "populate_mixed", "template"]
