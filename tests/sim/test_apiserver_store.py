"""Store semantics through the in-process API: what controllers and the scenario builder rely on."""
from __future__ import annotations

import pytest

from kubemeter_sim.apiserver.errors import ApiError
from kubemeter_sim.apiserver.objects import WriteOptions
from kubemeter_sim.apiserver.store import Store


def pod(name: str, namespace: str = "default", **metadata: object) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, **metadata},
            "spec": {"containers": [{"name": "app", "image": "nginx"}]}}


def deployment(name: str) -> dict:
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "app", "image": "nginx"}]}}}}


def owned_by(owner: dict) -> list[dict]:
    meta = owner["metadata"]
    return [{"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta["name"], "uid": meta["uid"],
             "controller": True, "blockOwnerDeletion": True}]


@pytest.fixture
def store() -> Store:
    return Store()


def error_of(call, *args, **kwargs) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call(*args, **kwargs)
    return caught.value


def test_initial_namespaces_and_global_resource_version(store: Store) -> None:
    names = [ns["metadata"]["name"] for ns in store.list("v1", "namespaces")]
    assert names == ["default", "kube-node-lease", "kube-public", "kube-system"]
    before = int(store.resource_version)
    created = store.create("v1", "configmaps", {"metadata": {"name": "a", "namespace": "default"}})
    assert created["metadata"]["resourceVersion"] == store.resource_version == str(before + 1)
    assert created["metadata"]["creationTimestamp"].endswith("Z") and len(created["metadata"]["uid"]) == 36


def test_returned_objects_are_copies(store: Store) -> None:
    created = store.create("v1", "pods", pod("a"))
    created["spec"]["containers"][0]["image"] = "changed"
    assert store.get("v1", "pods", "a", "default")["spec"]["containers"][0]["image"] == "nginx"


def test_create_errors_are_status_objects_like_the_real_server(store: Store) -> None:
    store.create("v1", "pods", pod("a"))
    exists = error_of(store.create, "v1", "pods", pod("a"))
    assert exists.status() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                               "message": 'pods "a" already exists', "reason": "AlreadyExists",
                               "details": {"name": "a", "kind": "pods"}, "code": 409}
    missing_ns = error_of(store.create, "v1", "pods", pod("a", namespace="nope"))
    assert (missing_ns.code, missing_ns.message) == (404, 'namespaces "nope" not found')
    bad_name = error_of(store.create, "apps/v1", "deployments", deployment("Web_1"))
    assert bad_name.code == 422 and bad_name.reason == "Invalid"
    assert bad_name.message.startswith('Deployment.apps "Web_1" is invalid: metadata.name: Invalid value: "Web_1": '
                                       "a lowercase RFC 1123 subdomain")
    assert bad_name.details["causes"][0]["field"] == "metadata.name"
    bad_label = error_of(store.create, "v1", "configmaps", {"metadata": {"name": "c", "labels": {"app": "a b"}}})
    assert bad_label.code == 422 and bad_label.message.startswith(
        'ConfigMap "c" is invalid: metadata.labels: Invalid value: "a b": a valid label must be an empty string')
    no_image = error_of(store.create, "v1", "pods", {"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "app"}]}})
    assert no_image.message == 'Pod "p" is invalid: spec.containers[0].image: Required value'
    no_name = error_of(store.create, "v1", "configmaps", {"metadata": {}})
    assert no_name.message == 'ConfigMap "" is invalid: metadata.name: Required value: name or generateName is required'


def test_generate_name(store: Store) -> None:
    created = store.create("v1", "events", {"metadata": {"generateName": "kopf-event-", "namespace": "default"}})
    assert created["metadata"]["name"].startswith("kopf-event-") and len(created["metadata"]["name"]) == 16


def test_pod_create_resets_status_and_status_subresource_owns_it(store: Store) -> None:
    created = store.create("v1", "pods", {**pod("a"), "status": {"phase": "Running"}})
    assert created["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    assert created["metadata"]["generation"] == 1
    # The main endpoint ignores status; spec changes bump generation.
    changed = store.patch("v1", "pods", "a", {"spec": {"activeDeadlineSeconds": 5}, "status": {"phase": "Failed"}},
                          namespace="default")
    assert changed["status"]["phase"] == "Pending" and changed["metadata"]["generation"] == 2
    # /status ignores spec but, for pods, takes label changes (not ownerReferences).
    status = store.patch("v1", "pods", "a", {"metadata": {"labels": {"x": "y"}, "ownerReferences": [
        {"apiVersion": "v1", "kind": "Node", "name": "n", "uid": "u"}]}, "spec": {"activeDeadlineSeconds": 9},
        "status": {"phase": "Running", "podIP": "10.0.0.1"}}, namespace="default", subresource="status")
    assert status["status"]["phase"] == "Running" and status["spec"]["activeDeadlineSeconds"] == 5
    assert status["metadata"]["labels"] == {"x": "y"} and "ownerReferences" not in status["metadata"]
    assert status["metadata"]["generation"] == 2


def test_noop_patch_keeps_resource_version(store: Store) -> None:
    created = store.create("v1", "configmaps", {"metadata": {"name": "a", "namespace": "default"},
                                                "data": {"k": "v"}})
    again = store.patch("v1", "configmaps", "a", {"data": {"k": "v"}}, namespace="default")
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_update_with_stale_resource_version_conflicts(store: Store) -> None:
    created = store.create("v1", "configmaps", {"metadata": {"name": "a", "namespace": "default"}})
    store.patch("v1", "configmaps", "a", {"data": {"k": "1"}}, namespace="default")
    error = error_of(store.update, "v1", "configmaps", {**created, "data": {"k": "2"}})
    assert error.code == 409 and error.reason == "Conflict"
    assert error.message == ('Operation cannot be fulfilled on configmaps "a": the object has been modified; please '
                             "apply your changes to the latest version and try again")


def test_custom_resource_generation_and_status_subresource(store: Store, widget_crd: dict) -> None:
    store.create("apiextensions.k8s.io/v1", "customresourcedefinitions", widget_crd)
    crd = store.get("apiextensions.k8s.io/v1", "customresourcedefinitions", "widgets.example.com")
    assert {c["type"]: c["status"] for c in crd["status"]["conditions"]} == {"NamesAccepted": "True",
                                                                            "Established": "True"}
    widget = store.create("example.com/v1", "widgets", {"metadata": {"name": "w", "namespace": "default"},
                                                        "spec": {"size": 2}, "status": {"ignored": True}})
    assert "status" not in widget and widget["metadata"]["generation"] == 1
    status = store.patch("example.com/v1", "widgets", "w", {"status": {"ok": 1}, "spec": {"size": 9},
                                                            "metadata": {"labels": {"a": "b"}}},
                         namespace="default", subresource="status")
    # CR /status takes nothing but status (not even labels), and does not bump generation.
    assert status["status"] == {"ok": 1} and status["spec"] == {"size": 2} and "labels" not in status["metadata"]
    assert status["metadata"]["generation"] == 1
    main = store.patch("example.com/v1", "widgets", "w", {"spec": {"size": 3}, "status": {"ok": 2}},
                       namespace="default")
    assert main["spec"] == {"size": 3} and main["status"] == {"ok": 1} and main["metadata"]["generation"] == 2
    labels_only = store.patch("example.com/v1", "widgets", "w", {"metadata": {"labels": {"a": "b"}}},
                              namespace="default")
    assert labels_only["metadata"]["generation"] == 2
    strategic = error_of(store.patch, "example.com/v1", "widgets", "w", {"spec": {}}, "strategic",
                         namespace="default")
    assert strategic.code == 415


def test_deleting_a_crd_removes_its_objects_and_its_api(store: Store, widget_crd: dict) -> None:
    events: list[tuple[str, str]] = []
    store.add_listener(lambda kind, rtype, obj: events.append((kind, obj["kind"])))
    store.create("apiextensions.k8s.io/v1", "customresourcedefinitions", widget_crd)
    store.create("example.com/v1", "widgets", {"metadata": {"name": "w", "namespace": "default"}})
    store.delete("apiextensions.k8s.io/v1", "customresourcedefinitions", "widgets.example.com")
    assert events[-2:] == [("DELETED", "Widget"), ("DELETED", "CustomResourceDefinition")]
    assert error_of(store.list, "example.com/v1", "widgets").code == 404


def test_finalizers_hold_deletion_until_removed(store: Store) -> None:
    store.create("v1", "configmaps", {"metadata": {"name": "a", "namespace": "default", "finalizers": ["x/y"]}})
    deleting = store.delete("v1", "configmaps", "a", "default")
    assert deleting["metadata"]["deletionTimestamp"] and deleting["metadata"]["deletionGracePeriodSeconds"] == 0
    assert store.get("v1", "configmaps", "a", "default")["metadata"]["finalizers"] == ["x/y"]
    refused = error_of(store.patch, "v1", "configmaps", "a", {"metadata": {"finalizers": ["x/y", "new"]}},
                       namespace="default")
    assert refused.code == 422 and "no new finalizers can be added" in refused.message
    store.patch("v1", "configmaps", "a", {"metadata": {"finalizers": None}}, namespace="default")
    assert error_of(store.get, "v1", "configmaps", "a", "default").code == 404


def test_background_gc_keeps_dependents_with_another_live_owner(store: Store) -> None:
    owner_a = store.create("apps/v1", "replicasets", deployment("a"))
    owner_b = store.create("apps/v1", "replicasets", deployment("b"))
    store.create("v1", "pods", pod("only-a", ownerReferences=owned_by(owner_a)))
    store.create("v1", "pods", pod("both", ownerReferences=owned_by(owner_a) + owned_by(owner_b)))
    store.delete("apps/v1", "replicasets", "a", "default")
    remaining = {p["metadata"]["name"]: p for p in store.list("v1", "pods")}
    assert list(remaining) == ["both"]
    assert [r["name"] for r in remaining["both"]["metadata"]["ownerReferences"]] == ["b"]


def test_gc_cascades_through_generations(store: Store) -> None:
    dep = store.create("apps/v1", "deployments", deployment("web"))
    rs = store.create("apps/v1", "replicasets", {**deployment("web-1"), "metadata": {
        "name": "web-1", "namespace": "default", "ownerReferences": owned_by(dep)}})
    store.create("v1", "pods", pod("web-1-x", ownerReferences=owned_by(rs)))
    store.delete("apps/v1", "deployments", "web", "default")
    assert store.list("apps/v1", "replicasets") == [] and store.list("v1", "pods") == []


def test_orphan_and_foreground_propagation(store: Store) -> None:
    rs = store.create("apps/v1", "replicasets", deployment("a"))
    store.create("v1", "pods", pod("p", ownerReferences=owned_by(rs)))
    store.delete("apps/v1", "replicasets", "a", "default", propagation_policy="Orphan")
    orphan = store.get("v1", "pods", "p", "default")
    assert "ownerReferences" not in orphan["metadata"]

    rs = store.create("apps/v1", "replicasets", deployment("b"))
    store.create("v1", "pods", pod("q", ownerReferences=owned_by(rs), finalizers=["hold"]))
    deleting = store.delete("apps/v1", "replicasets", "b", "default", propagation_policy="Foreground")
    assert deleting["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert store.get("v1", "pods", "q", "default")["metadata"]["deletionTimestamp"]
    store.patch("v1", "pods", "q", {"metadata": {"finalizers": []}}, namespace="default")
    assert store.list("apps/v1", "replicasets") == []


def test_namespace_deletion_removes_contents(store: Store) -> None:
    store.create("v1", "namespaces", {"metadata": {"name": "team"}})
    store.create("v1", "pods", pod("a", namespace="team"))
    store.create("v1", "configmaps", {"metadata": {"name": "c", "namespace": "team", "finalizers": ["f"]}})
    terminating = store.delete("v1", "namespaces", "team")
    assert terminating["status"]["phase"] == "Terminating"
    assert error_of(store.create, "v1", "pods", pod("b", namespace="team")).code == 403
    store.patch("v1", "configmaps", "c", {"metadata": {"finalizers": None}}, namespace="team")
    assert error_of(store.get, "v1", "namespaces", "team").code == 404
    assert store.list("v1", "pods", namespace="team") == []
    protected = error_of(store.delete, "v1", "namespaces", "kube-system")
    assert (protected.code, protected.message) == (403, 'namespaces "kube-system" is forbidden: this namespace may '
                                                        "not be deleted")


def test_selectors(store: Store) -> None:
    for name, labels, node in (("a", {"app": "web", "tier": "fe"}, "n1"), ("b", {"app": "db"}, "n2"),
                               ("c", {}, "n1")):
        body = pod(name, labels=labels)
        body["spec"]["nodeName"] = node
        store.create("v1", "pods", body)

    def names(**kwargs: str) -> list[str]:
        return [p["metadata"]["name"] for p in store.list("v1", "pods", **kwargs)]
    assert names(label_selector="app=web") == ["a"]
    assert names(label_selector="app==web,tier") == ["a"]
    assert names(label_selector="app!=web") == ["b", "c"]
    assert names(label_selector="app in (web, db)") == ["a", "b"]
    assert names(label_selector="app notin (web)") == ["b", "c"]
    assert names(label_selector="!app") == ["c"]
    assert names(field_selector="spec.nodeName=n1") == ["a", "c"]
    assert names(field_selector="spec.nodeName=n1,metadata.name!=a") == ["c"]
    assert names(field_selector="status.phase=Pending", label_selector="app") == ["a", "b"]
    # worded as the real server words them (tests/real/test_fidelity.py compares many more)
    assert [(e.code, e.message) for e in (error_of(store.list, "v1", "pods", label_selector=text)
                                          for text in ("app in web", "=x", "a,"))] == [
        (400, "unable to parse requirement: found 'web' expected: '('"),
        (400, "found '=', expected: !, identifier, or 'end of string'"),
        (400, "found '', expected: identifier after ','")]
    bad_field = error_of(store.list, "v1", "pods", field_selector="spec.image=x")
    assert (bad_field.code, bad_field.message) == (400, "field label not supported: spec.image")


def test_strategic_merge_patch_on_builtins(store: Store) -> None:
    base = deployment("web")
    base["spec"]["template"]["spec"]["containers"] = [
        {"name": "app", "image": "a:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
        {"name": "side", "image": "s:1"}]
    store.create("apps/v1", "deployments", base)
    patched = store.patch("apps/v1", "deployments", "web", {"spec": {"template": {"spec": {
        "containers": [{"name": "app", "env": [{"name": "B", "value": "3"}, {"name": "A", "$patch": "delete"}]},
                       {"name": "new", "image": "n:1"}],
        "$setElementOrder/containers": [{"name": "new"}, {"name": "app"}, {"name": "side"}]}}}},
        "strategic", namespace="default")
    containers = patched["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["new", "app", "side"]
    assert containers[1] == {"name": "app", "image": "a:1", "env": [{"name": "B", "value": "3"}]}
    replaced = store.patch("apps/v1", "deployments", "web", {"spec": {"template": {"spec": {
        "containers": [{"name": "only", "image": "o:1"}, {"$patch": "replace"}]}}}}, "strategic",
        namespace="default")
    assert [c["name"] for c in replaced["spec"]["template"]["spec"]["containers"]] == ["only"]
    retained = store.patch("apps/v1", "deployments", "web", {"spec": {"strategy": {
        "$retainKeys": ["type"], "type": "Recreate"}}}, "strategic", namespace="default")
    assert retained["spec"]["strategy"] == {"type": "Recreate"}
    finalized = store.patch("apps/v1", "deployments", "web", {"metadata": {"finalizers": ["a", "b"]}}, "strategic",
                            namespace="default")
    trimmed = store.patch("apps/v1", "deployments", "web", {"metadata": {"$deleteFromPrimitiveList/finalizers":
                                                                         ["a"]}}, "strategic", namespace="default")
    assert finalized["metadata"]["finalizers"] == ["a", "b"] and trimmed["metadata"]["finalizers"] == ["b"]


def test_json_patch_operations_and_failures(store: Store) -> None:
    store.create("v1", "configmaps", {"metadata": {"name": "a", "namespace": "default"},
                                      "data": {"x": "1", "y": "2"}})
    patched = store.patch("v1", "configmaps", "a", [
        {"op": "test", "path": "/data/x", "value": "1"}, {"op": "move", "from": "/data/x", "path": "/data/z"},
        {"op": "copy", "from": "/data/y", "path": "/data/w"}, {"op": "remove", "path": "/data/y"},
        {"op": "add", "path": "/metadata/labels", "value": {"k": "v"}}], "json", namespace="default")
    assert patched["data"] == {"z": "1", "w": "2"} and patched["metadata"]["labels"] == {"k": "v"}
    failed = error_of(store.patch, "v1", "configmaps", "a", [{"op": "test", "path": "/data/z", "value": "9"}],
                      "json", namespace="default")
    assert failed.code == 422 and failed.details is None  # as the real server: the reason is not in the answer
    assert failed.__notes__ == ["testing value /data/z failed: test failed"]
    missing = error_of(store.patch, "v1", "configmaps", "a", [{"op": "replace", "path": "/data/nope", "value": "1"}],
                       "json", namespace="default")
    assert missing.code == 422


def test_server_side_apply_subset_creates_then_merges(store: Store) -> None:
    applied = store.patch("v1", "configmaps", "a", {"apiVersion": "v1", "kind": "ConfigMap",
                                                    "data": {"k": "1"}}, "apply", namespace="default",
                          options=WriteOptions(field_manager="me"))
    again = store.patch("v1", "configmaps", "a", {"data": {"j": "2"}}, "apply", namespace="default",
                        options=WriteOptions(field_manager="me"))
    assert applied["data"] == {"k": "1"} and again["data"] == {"k": "1", "j": "2"}
    assert error_of(store.patch, "v1", "configmaps", "a", {"data": {}}, "apply", namespace="default").code == 422


def test_custom_resource_served_in_two_versions_is_stored_once(store: Store, widget_crd: dict) -> None:
    beta = {**widget_crd["spec"]["versions"][0], "name": "v1beta1", "storage": False}
    widget_crd["spec"]["versions"].append(beta)
    store.create("apiextensions.k8s.io/v1", "customresourcedefinitions", widget_crd)
    store.create("example.com/v1beta1", "widgets", {"metadata": {"name": "w", "namespace": "default"},
                                                    "spec": {"size": 1}})
    as_v1 = store.get("example.com/v1", "widgets", "w", "default")
    assert as_v1["apiVersion"] == "example.com/v1" and as_v1["spec"] == {"size": 1}
    assert [w["apiVersion"] for w in store.list("example.com/v1beta1", "widgets")] == ["example.com/v1beta1"]
    crd = store.get("apiextensions.k8s.io/v1", "customresourcedefinitions", "widgets.example.com")
    assert crd["status"]["storedVersions"] == ["v1"]


def test_scale_subresource_changes_only_replicas(store: Store) -> None:
    store.create("apps/v1", "deployments", deployment("web"))
    scale = store.get_scale("apps/v1", "deployments", "web", "default")
    assert scale["kind"] == "Scale" and scale["spec"] == {"replicas": 1}
    assert scale["status"] == {"replicas": 0, "selector": "app=web"}
    scaled = store.patch("apps/v1", "deployments", "web", {"spec": {"replicas": 3}, "metadata": {"labels": {"x": "y"}}},
                         namespace="default", subresource="scale")
    assert scaled["spec"]["replicas"] == 3
    current = store.get("apps/v1", "deployments", "web", "default")
    assert current["spec"]["replicas"] == 3 and "labels" not in current["metadata"]
    assert current["metadata"]["generation"] == 2
    stale = error_of(store.update, "apps/v1", "deployments", scale, "scale", name="web", namespace="default")
    assert stale.code == 409
    negative = error_of(store.patch, "apps/v1", "deployments", "web", {"spec": {"replicas": -1}},
                        namespace="default", subresource="scale")
    assert negative.code == 422


def test_events_are_one_resource_in_two_api_groups(store: Store) -> None:
    store.create("v1", "events", {"metadata": {"name": "core", "namespace": "default"}, "reason": "Pulled",
                                  "message": "pulled", "involvedObject": {"kind": "Pod", "name": "p"}, "count": 2})
    store.create("events.k8s.io/v1", "events", {"metadata": {"name": "new", "namespace": "default"},
                                                "reason": "Scheduled", "note": "assigned", "action": "Binding",
                                                "regarding": {"kind": "Pod", "name": "p"},
                                                "eventTime": "2026-01-01T00:00:00.000000Z",
                                                "reportingController": "scheduler", "reportingInstance": "s-1"})
    as_new = {e["metadata"]["name"]: e for e in store.list("events.k8s.io/v1", "events")}
    assert as_new["core"]["note"] == "pulled" and as_new["core"]["deprecatedCount"] == 2
    assert as_new["core"]["regarding"] == {"kind": "Pod", "name": "p"} and "message" not in as_new["core"]
    as_core = store.get("v1", "events", "new", "default")
    assert (as_core["apiVersion"], as_core["message"], as_core["reportingComponent"]) == ("v1", "assigned",
                                                                                         "scheduler")
    assert [e["metadata"]["name"] for e in store.list("v1", "events",
                                                      field_selector="involvedObject.name=p")] == ["core", "new"]


def test_a_crd_whose_default_fails_its_own_cel_rule_is_refused(store: Store, widget_crd: dict) -> None:
    # The default is checked as written, before nested defaults (as kube-apiserver refused our own CRD once).
    spec_schema = widget_crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec_schema.update({"default": {}, "x-kubernetes-validations": [{"rule": "self.size > 0",
                                                                     "message": "size must be positive"}]})
    spec_schema["properties"]["size"]["default"] = 1
    refused = error_of(store.create, "apiextensions.k8s.io/v1", "customresourcedefinitions", widget_crd)
    assert (refused.code, refused.details["causes"]) == (422, [{
        "reason": "FieldValueInvalid", "field": "spec.validation.openAPIV3Schema.properties[spec].default",
        "message": 'Invalid value: "object": no such key: size evaluating rule: size must be positive'}])
    spec_schema["x-kubernetes-validations"][0]["rule"] = "!has(self.size) || self.size > 0"
    assert store.create("apiextensions.k8s.io/v1", "customresourcedefinitions", widget_crd)["metadata"]["uid"]
