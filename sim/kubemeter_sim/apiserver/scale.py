"""The /scale subresource (autoscaling/v1 Scale) of deployments, replicasets and statefulsets."""
from __future__ import annotations

from kubemeter_sim.apiserver.admission import field_invalid
from kubemeter_sim.apiserver.errors import bad_request, invalid
from kubemeter_sim.apiserver.resources import ResourceType


def selector_string(selector: dict | None) -> str:
    """metav1.LabelSelector as the text form Scale.status.selector carries."""
    selector = selector or {}
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        if operator in ("In", "NotIn"):
            terms.append(f"{key} {operator.lower()} ({','.join(sorted(values))})")
        elif operator == "Exists":
            terms.append(key)
        elif operator == "DoesNotExist":
            terms.append(f"!{key}")
    return ",".join(terms)


def scale_of(obj: dict) -> dict:
    meta = obj["metadata"]
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in meta},
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
            "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                       "selector": selector_string((obj.get("spec") or {}).get("selector"))}}


def replicas_of(rtype: ResourceType, scale: object, name: str) -> int:
    """spec.replicas of a submitted Scale; 400 for a non-Scale body, 422 for a negative count."""
    if not isinstance(scale, dict) or scale.get("kind", "Scale") != "Scale":
        raise bad_request("the kind in the data does not match the expected kind (Scale)")
    replicas = (scale.get("spec") or {}).get("replicas", 0)
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise invalid("Scale", "autoscaling", name, [field_invalid(
            "spec.replicas", replicas, "must be greater than or equal to 0")])
    return replicas
