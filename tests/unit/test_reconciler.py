"""The reconciler against a fake API that records every call: ownership before labels,
the autoscaler RBAC chain, and a cluster deleted in the middle of a pass."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

from kubernetes.client.rest import ApiException

from ray_operator import constants as c
from ray_operator import observed
from ray_operator.observed import ObservedPod, ObservedService
from ray_operator.reconciler import Reconciler
from tests.manifests import raycluster, worker_group
from tests.observed_pods import pod

UID = "uid-rc"


def stored(name: str = "rc", **spec: Any) -> dict[str, Any]:
    body = raycluster(name, worker_group("cpu", 1), **spec)
    body["metadata"].update({"namespace": "ns", "uid": UID, "generation": 1})
    return body


class FakeApi:
    """The methods of KubeApi the reconciler uses; objects live in dicts."""

    def __init__(self, cluster: dict[str, Any] | None) -> None:
        self.cluster = cluster
        self.pods: list[ObservedPod] = []
        self.service: ObservedService | None = None
        self.existing: dict[tuple[str, str], dict[str, Any]] = {}  # (kind, name) -> meta
        self.calls: list[tuple[str, ...]] = []
        self.events: list[tuple[str, str, str]] = []
        self.status_gone = False

    def get_cluster(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("get_cluster", name))
        return self.cluster

    def list_cluster_pods(self, namespace: str, cluster: str) -> tuple[list[ObservedPod], str]:
        return list(self.pods), "1"

    def get_service(self, namespace: str, name: str) -> ObservedService | None:
        return self.service

    def service_account_exists(self, namespace: str, name: str) -> bool:
        return ("ServiceAccount", name) in self.existing

    def create_pod(self, namespace: str, body: dict[str, Any]) -> tuple[str, str]:
        self.calls.append(("create_pod", body["metadata"]["labels"][c.LABEL_GROUP]))
        return f"pod-{len(self.calls)}", str(len(self.calls))

    def delete_pod(self, namespace: str, name: str) -> bool:
        self.calls.append(("delete_pod", name))
        return True

    def create_or_get(self, obj: dict[str, Any], check_first: bool = True):
        kind, name = obj["kind"], obj["metadata"]["name"]
        if (kind, name) in self.existing:
            return False, {"metadata": self.existing[(kind, name)]}
        self.calls.append(("create", kind, name))
        self.existing[(kind, name)] = obj["metadata"]
        return True, obj

    def replace_status(self, namespace: str, name: str, status: dict[str, Any]) -> str:
        if self.status_gone:
            raise ApiException(status=404, reason="Not Found")
        self.calls.append(("replace_status", name))
        return "2"

    def post_event(self, cluster: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    def annotate_pod(self, namespace: str, name: str, annotations: dict[str, str]) -> bool:
        return True  # stamps the template hash on the pods of `all_there`


def all_there(api: FakeApi) -> FakeApi:
    """The cluster's pods and head Service exist: a pass creates nothing."""
    api.pods = [_owned(pod("rc-head", c.HEAD_GROUP)), _owned(pod("rc-cpu-1", "cpu"))]
    api.service = ObservedService("rc-head-svc", "None", (), owner_uid=UID)
    return api


def reconcile(api: FakeApi, reconciler: Reconciler | None = None) -> Reconciler:
    reconciler = reconciler or Reconciler(api)  # type: ignore[arg-type]
    asyncio.run(reconciler.reconcile(("ns", "rc")))
    return reconciler


def events_of(api: FakeApi, reason: str, timeout: float = 5.0) -> list[tuple[str, str, str]]:
    """Events are posted from the thread pool: wait until one with `reason` is in."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in api.events if e[1] == reason]
        if found:
            return found
        time.sleep(0.01)
    return []


def test_a_labelled_stranger_is_neither_counted_nor_deleted_and_is_reported_once():
    api = FakeApi(stored())
    head = pod("rc-head", c.HEAD_GROUP)
    stranger = pod("impostor", "cpu")  # the labels of a cpu worker, no ownerReference
    api.pods = [_owned(head), stranger]
    api.service = ObservedService("rc-head-svc", "None", (), owner_uid=UID)
    reconciler = reconcile(api)
    assert ("create_pod", "cpu") in api.calls  # the stranger does not count as the worker
    assert not any(call[0] == "delete_pod" for call in api.calls)
    (warning,) = events_of(api, "ForeignPodIgnored")
    assert "impostor" in warning[2] and warning[0] == "Warning"
    reconcile(api, reconciler)
    reconciler._pool.shutdown(wait=True)  # every event posted
    assert len([e for e in api.events if e[1] == "ForeignPodIgnored"]) == 1


def test_an_existing_service_account_of_the_cluster_name_gets_no_role_binding():
    """A RayCluster named like an existing account (`default`) must not bind the
    autoscaler's Role to it: every pod running as that account would get its rights."""
    api = FakeApi(stored("default", enableInTreeAutoscaling=True))
    api.cluster["metadata"]["name"] = "default"
    api.existing[("ServiceAccount", "default")] = {"name": "default"}  # not owned by us
    reconciler = Reconciler(api)  # type: ignore[arg-type]
    asyncio.run(reconciler.reconcile(("ns", "default")))
    created = [call for call in api.calls if call[0] == "create"]
    assert ("create", "Role", "default") not in created
    assert ("create", "RoleBinding", "default") not in created
    (warning,) = events_of(api, "AutoscalerRBACConflict")
    assert "ServiceAccount 'default' already exists" in warning[2]
    assert "serviceAccountName" in warning[2]


def test_a_foreign_role_stops_the_chain_before_the_binding():
    api = FakeApi(stored(enableInTreeAutoscaling=True))
    api.existing[("Role", "rc")] = {"name": "rc", "ownerReferences": []}
    reconcile(api)
    created = {call[1] for call in api.calls if call[0] == "create"}
    assert "ServiceAccount" in created and "RoleBinding" not in created


def test_owned_rbac_children_are_created_in_order_and_checked_once():
    api = FakeApi(stored(enableInTreeAutoscaling=True))
    reconciler = reconcile(api)
    kinds = [call[1] for call in api.calls if call[0] == "create"]
    assert kinds == ["Service", "ServiceAccount", "Role", "RoleBinding"]
    api.calls.clear()
    api.service = ObservedService("rc-head-svc", "None", (), owner_uid=UID)
    reconcile(api, reconciler)
    assert [call for call in api.calls if call[0] == "create"] == []


def test_a_cluster_deleted_before_its_status_write_ends_the_pass_quietly():
    api = all_there(FakeApi(stored()))
    api.status_gone = True
    reconciler = reconcile(api)  # no exception
    assert reconciler.is_gone(UID)
    assert "ns/rc" not in reconciler.states


def test_a_deleted_cluster_is_forgotten_and_its_uid_remembered():
    api = FakeApi(stored())
    reconciler = reconcile(api)
    api.cluster = None
    reconciler.recheck_children()  # a resync reads every cluster again
    reconcile(api, reconciler)
    assert reconciler.is_gone(UID) and not reconciler.is_gone("another")
    assert not reconciler.is_gone(None)


def _owned(p: ObservedPod) -> ObservedPod:
    return dataclasses.replace(p, owner_uid=UID)


def _gets(api: FakeApi) -> int:
    return sum(1 for call in api.calls if call[0] == "get_cluster")


def test_a_pass_starts_from_the_body_its_watch_delivered_without_a_get():
    api = FakeApi(stored())
    reconciler = Reconciler(api)  # type: ignore[arg-type]
    watched = stored()
    watched["spec"]["workerGroupSpecs"][0]["replicas"] = 3  # newer than the GET would say
    reconciler.observe(("ns", "rc"), watched)
    reconcile(api, reconciler)
    assert _gets(api) == 0
    assert api.calls.count(("create_pod", "cpu")) == 3
    assert watched["spec"]["workerGroupSpecs"][0]["replicas"] == 3 and "status" not in watched


def test_after_its_own_status_write_a_pass_reads_again_until_the_watch_brings_it_back():
    api = all_there(FakeApi(stored()))
    reconciler = Reconciler(api)  # type: ignore[arg-type]
    reconciler.observe(("ns", "rc"), stored())
    reconcile(api, reconciler)  # writes status "2"; its event has not come yet
    assert _gets(api) == 0 and ("replace_status", "rc") in api.calls
    reconcile(api, reconciler)
    assert _gets(api) == 1  # the watched body lacks our status: GET
    written = {**stored(), "status": {"state": "ready"}}
    written["metadata"] = {**written["metadata"], "resourceVersion": "2"}
    reconciler.observe(("ns", "rc"), written)
    assert reconciler.own_writes.is_own(("ns", "rc"), "2")
    reconcile(api, reconciler)
    assert _gets(api) == 1


def _at(version: str, replicas: int = 1) -> dict[str, Any]:
    body = stored()
    body["metadata"]["resourceVersion"] = version
    body["spec"]["workerGroupSpecs"][0]["replicas"] = replicas
    return body


def test_a_resync_starts_each_pass_from_the_listed_body_without_a_get():
    api = FakeApi(stored())
    reconciler = Reconciler(api)  # type: ignore[arg-type]
    reconciler.observe(("ns", "rc"), _at("5"))
    # The watch missed the change to 2 replicas; the resync's list has it.
    assert reconciler.resync([_at("7", replicas=2)]) == [("ns", "rc")]
    reconcile(api, reconciler)
    assert _gets(api) == 0
    assert api.calls.count(("create_pod", "cpu")) == 2


def test_a_resync_keeps_a_body_the_watch_delivered_while_the_list_was_on_its_way():
    """Its event's pass may be queued already: the older listed body must not undo it."""
    api = FakeApi(stored())
    reconciler = Reconciler(api)  # type: ignore[arg-type]
    newer = _at("9", replicas=3)
    reconciler.observe(("ns", "rc"), newer)
    reconciler.resync([_at("8")])
    reconcile(api, reconciler)
    assert _gets(api) == 0
    assert api.calls.count(("create_pod", "cpu")) == 3


def test_a_resync_reads_every_cluster_again_and_a_deletion_forgets_its_body():
    api = FakeApi(stored())
    reconciler = Reconciler(api)  # type: ignore[arg-type]
    reconciler.observe(("ns", "rc"), stored())
    reconciler.recheck_children()  # the periodic resync
    api.cluster = None  # deleted while its watch missed the event
    reconcile(api, reconciler)
    assert _gets(api) == 1 and reconciler.is_gone(UID) is False  # never seen: no uid kept
    reconciler.observe(("ns", "rc"), stored())
    reconciler.forget(("ns", "rc"), UID)
    reconcile(api, reconciler)
    assert _gets(api) == 2


def test_a_cluster_being_deleted_is_always_read_afresh():
    """Its teardown must not act on a body from before our own finalizer removal: the
    cluster may be gone already (here: the GET finds nothing, and nothing is done)."""
    api = FakeApi(stored())
    reconciler = Reconciler(api)  # type: ignore[arg-type]
    deleting = stored()
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    deleting["metadata"]["finalizers"] = [c.GCS_FT_REDIS_CLEANUP_FINALIZER]
    reconciler.observe(("ns", "rc"), deleting)
    api.cluster = None
    reconcile(api, reconciler)
    assert _gets(api) == 1
    assert [call for call in api.calls if call[0] not in ("get_cluster",)] == []


class CountingApi(FakeApi):
    def get_service(self, namespace: str, name: str) -> ObservedService | None:
        self.calls.append(("get_service", name))
        return self.service

    def create_or_get(self, obj: dict[str, Any], check_first: bool = True):
        created, found = super().create_or_get(obj, check_first)
        if created:
            found = {**found, "metadata": {**found["metadata"], "resourceVersion": "5"}}
        return created, found


def reconciled_before() -> dict[str, Any]:
    return {**stored(), "status": {"state": "ready"}}


def test_the_head_service_is_read_once_until_an_event_of_it_arrives():
    api = all_there(CountingApi(reconciled_before()))
    reconciler = Reconciler(api)  # type: ignore[arg-type]
    reconcile(api, reconciler)
    reconcile(api, reconciler)
    assert api.calls.count(("get_service", "rc-head-svc")) == 1
    api.service = None  # deleted by hand: its watch event comes
    reconciler.service_changed([("ns", "rc")], "4")
    reconcile(api, reconciler)
    assert api.calls.count(("get_service", "rc-head-svc")) == 2
    assert ("create", "Service", "rc-head-svc") in api.calls  # made again at once
    reconciler.service_changed([("ns", "rc")], "5")  # the event of our own create
    reconcile(api, reconciler)
    assert api.calls.count(("get_service", "rc-head-svc")) == 2


def test_a_new_cluster_creates_its_head_service_without_reading_it_first():
    api = CountingApi(stored())  # no status: never reconciled
    reconciler = reconcile(api)
    all_there(api)
    reconcile(api, reconciler)  # the create's answer is our copy
    assert ("get_service", "rc-head-svc") not in api.calls
    assert api.calls.count(("create", "Service", "rc-head-svc")) == 1


def test_a_read_that_overlapped_an_event_of_another_version_is_not_kept():
    api = all_there(CountingApi(reconciled_before()))
    reconciler = Reconciler(api)  # type: ignore[arg-type]
    epoch = reconciler._service_epoch.get(("ns", "rc"), 0)
    reconciler.service_changed([("ns", "rc")], "9")  # arrived while the GET was out
    reconciler._keep_service(("ns", "rc"), api.service, epoch)
    assert ("ns", "rc") not in reconciler._services


def test_a_kept_head_service_of_a_former_cluster_of_that_name_is_not_used():
    api = all_there(CountingApi(reconciled_before()))
    reconciler = Reconciler(api)  # type: ignore[arg-type]
    reconcile(api, reconciler)
    api.cluster = reconciled_before()
    api.cluster["metadata"]["uid"] = "uid-new"
    reconciler.recheck_children()  # (or its ADDED event) the new cluster is read
    reconciler._services[("ns", "rc")] = api.service  # as if kept across the deletion
    reconcile(api, reconciler)
    assert api.calls.count(("get_service", "rc-head-svc")) == 2


def test_a_pass_that_created_pods_leaves_the_status_to_the_pass_their_events_bring():
    api = FakeApi(stored())
    reconciler = reconcile(api)
    assert ("create_pod", "cpu") in api.calls and ("replace_status", "rc") not in api.calls
    all_there(api)  # their events woke the next pass
    reconcile(api, reconciler)
    assert api.calls.count(("replace_status", "rc")) == 1


def test_a_pass_that_created_pods_but_hit_a_problem_writes_the_status_at_once():
    api = FakeApi(stored())
    api.existing[("Service", "rc-head-svc")] = {"name": "rc-head-svc"}  # not ours
    reconcile(api)
    assert ("create_pod", "cpu") in api.calls and ("replace_status", "rc") in api.calls


def _cached(api: FakeApi) -> tuple[Reconciler, Any]:
    """A reconciler planning from a pod cache fed as the child watch feeds it."""
    from ray_operator.podcache import PodCache

    cache = PodCache()
    cache.track(None)
    cache.replace(None, [], "1")
    return Reconciler(api, pods=cache), cache  # type: ignore[arg-type]


def _watched(name: str, group: str, version: str) -> dict[str, Any]:
    kind = c.NODE_TYPE_HEAD if group == c.HEAD_GROUP else "worker"
    labels = {c.LABEL_CLUSTER: "rc", c.LABEL_GROUP: group, c.LABEL_NODE_TYPE: kind}
    owner = {"kind": c.KIND, "name": "rc", "uid": UID, "controller": True}
    meta = {"name": name, "namespace": "ns", "resourceVersion": version, "labels": labels}
    return {"metadata": {**meta, "ownerReferences": [owner]}, "status": {"phase": "Pending"}}


def test_with_a_pod_cache_a_pass_never_plans_before_the_watch_brings_its_own_creates():
    api = FakeApi(stored())
    api.service = ObservedService("rc-head-svc", "None", (), owner_uid=UID)
    reconciler, cache = _cached(api)
    reconcile(api, reconciler)  # creates the head and the worker, lists nothing
    creates = [call for call in api.calls if call[0] == "create_pod"]
    assert len(creates) == 2
    reconcile(api, reconciler)  # the watch has brought none of them: nothing to do
    assert [call for call in api.calls if call[0] == "create_pod"] == creates
    cache.apply(None, "ADDED", _watched("p-head", c.HEAD_GROUP, "2"))
    # FakeApi answers each create with the number of calls so far as its version
    cache.apply(None, "ADDED", _watched("p-cpu", "cpu", "100"))
    reconcile(api, reconciler)  # planned from the cache: both pods are there
    assert [call for call in api.calls if call[0] == "create_pod"] == creates


def test_with_a_pod_cache_a_failed_write_makes_the_next_pass_list():
    api = FakeApi(stored())
    api.service = ObservedService("rc-head-svc", "None", (), owner_uid=UID)
    reconciler, cache = _cached(api)

    def refused(namespace: str, body: dict[str, Any]) -> tuple[str, str]:
        raise ApiException(status=500, reason="etcd timeout")  # may have been stored

    api.create_pod = refused  # type: ignore[method-assign]
    reconcile(api, reconciler)
    assert cache.view(("ns", "rc")).list_now


def test_while_pods_start_status_changes_are_paced_and_ready_is_written_at_once():
    from ray_operator.reconciler import STATUS_PACE

    api = FakeApi(stored())
    api.service = ObservedService("rc-head-svc", "None", (), owner_uid=UID)
    reconciler = reconcile(api)  # creates the head and the worker: no status yet
    starting = [
        _owned(pod("rc-head", c.HEAD_GROUP, phase="Pending", ready=False)),
        _owned(pod("rc-cpu-1", "cpu", phase="Pending", ready=False)),
    ]
    api.pods = starting
    delay = asyncio.run(reconciler.reconcile(("ns", "rc")))
    assert ("replace_status", "rc") not in api.calls  # held back, and looked at again
    assert delay is not None and 0 < delay <= STATUS_PACE
    api.pods = [_owned(pod("rc-head", c.HEAD_GROUP)), _owned(pod("rc-cpu-1", "cpu"))]
    reconcile(api, reconciler)  # `ready`: a new state is written at once
    assert ("replace_status", "rc") in api.calls


def test_with_a_service_cache_the_head_service_is_never_read():
    from ray_operator.childcache import ChildCache

    api = all_there(CountingApi(reconciled_before()))
    services = ChildCache("services", ObservedService.from_dict)
    services.track(None)
    owner = {"kind": c.KIND, "name": "rc", "uid": UID, "controller": True}
    meta = {"name": "rc-head-svc", "namespace": "ns", "ownerReferences": [owner]}
    meta["labels"] = {c.LABEL_CLUSTER: "rc"}
    services.replace(None, [services.slim({"metadata": meta})], "3")
    reconciler = Reconciler(api, services=services)  # type: ignore[arg-type]
    reconcile(api, reconciler)
    assert ("get_service", "rc-head-svc") not in api.calls
    assert not [call for call in api.calls if call[:2] == ("create", "Service")]
    services.apply(None, "DELETED", {"metadata": meta})  # deleted by hand
    reconciler.service_changed([("ns", "rc")], "4")
    reconcile(api, reconciler)
    assert ("create", "Service", "rc-head-svc") in api.calls  # made again at once
    assert ("get_service", "rc-head-svc") not in api.calls


class ListingApi(FakeApi):
    """Also answers the metadata list of the autoscaler's RBAC objects, from `existing`,
    and records every check of a child (a GET on the API server)."""

    def __init__(self, clusters: list[dict[str, Any]], fail_lists: bool = False) -> None:
        super().__init__(None)
        self.clusters = {body["metadata"]["name"]: body for body in clusters}
        self.fail_lists = fail_lists

    def get_cluster(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("get_cluster", name))
        return self.clusters.get(name)

    def create_or_get(self, obj: dict[str, Any], check_first: bool = True):
        self.calls.append(("check", obj["kind"], obj["metadata"]["name"]))
        return super().create_or_get(obj, check_first)

    def list_labelled_children(self, kind: str, namespace: str | None):
        self.calls.append(("list", kind, namespace))
        if self.fail_lists:
            raise ApiException(status=403, reason="Forbidden")
        return [
            ("ns", meta["labels"][c.LABEL_CLUSTER], name, controller)
            for (k, name), meta in self.existing.items()
            if k == kind and (controller := observed.controller_uid(meta))
        ]


def _autoscaling(name: str) -> dict[str, Any]:
    body = stored(name, enableInTreeAutoscaling=True)
    body["metadata"]["uid"] = f"uid-{name}"
    return body


def _run_passes(reconciler: Reconciler, api: ListingApi, names: list[str]) -> None:
    async def passes() -> None:
        for name in names:
            reconciler.observe(("ns", name), api.clusters[name])  # the watch's first list
        await asyncio.gather(*(reconciler.reconcile(("ns", name)) for name in names))

    asyncio.run(passes())


def _rbac_checks(api: FakeApi) -> list[tuple[str, ...]]:
    return [call for call in api.calls if call[0] == "check" and call[1] != "Service"]


def test_after_a_restart_many_autoscaling_clusters_rbac_is_listed_not_read_one_by_one():
    names = ["a", "b", "c"]
    api = ListingApi([_autoscaling(n) for n in names])
    _run_passes(Reconciler(api), api, names)  # type: ignore[arg-type]  # creates them all
    assert len(_rbac_checks(api)) == 9
    api.calls.clear()
    restarted = Reconciler(api)  # type: ignore[arg-type]
    _run_passes(restarted, api, names)
    assert _rbac_checks(api) == []
    lists = [call for call in api.calls if call[0] == "list"]
    assert sorted(lists) == [("list", k, None) for k in ("Role", "RoleBinding", "ServiceAccount")]

    # A resync checks again, with one list per kind; one deleted meanwhile comes back.
    del api.existing[("RoleBinding", "b")]
    api.calls.clear()
    restarted.recheck_children()
    _run_passes(restarted, api, names)
    assert len([call for call in api.calls if call[0] == "list"]) == 3
    assert _rbac_checks(api) == [("check", "RoleBinding", "b")]
    assert ("create", "RoleBinding", "b") in api.calls


def test_a_listed_rbac_object_of_another_owner_is_still_checked_and_refused():
    names = ["a", "b"]
    api = ListingApi([_autoscaling(n) for n in names])
    api.existing[("ServiceAccount", "b")] = {
        "name": "b", "labels": {c.LABEL_CLUSTER: "b"},
        "ownerReferences": [{"kind": "RayCluster", "uid": "uid-old-b", "controller": True}],
    }  # fmt: skip
    _run_passes(Reconciler(api), api, names)  # type: ignore[arg-type]
    assert ("check", "ServiceAccount", "b") in api.calls
    assert ("create", "Role", "b") not in api.calls and ("create", "Role", "a") in api.calls


def test_one_autoscaling_cluster_or_a_refused_list_means_one_get_per_object():
    api = ListingApi([_autoscaling("a")])
    _run_passes(Reconciler(api), api, ["a"])  # type: ignore[arg-type]
    api.calls.clear()
    _run_passes(Reconciler(api), api, ["a"])  # type: ignore[arg-type]
    assert not any(call[0] == "list" for call in api.calls)  # 3 GETs, as 3 lists would be
    assert len(_rbac_checks(api)) == 3

    names = ["a", "b"]
    api = ListingApi([_autoscaling(n) for n in names], fail_lists=True)  # no `list` granted
    _run_passes(Reconciler(api), api, names)  # type: ignore[arg-type]
    assert len(_rbac_checks(api)) == 6
    assert {call[1] for call in api.calls if call[0] == "create"} >= {"RoleBinding"}


def test_a_namespaced_operator_lists_in_the_cluster_s_namespace():
    names = ["a", "b"]
    api = ListingApi([_autoscaling(n) for n in names])
    _run_passes(Reconciler(api, namespaces=["ns"]), api, names)  # type: ignore[arg-type]
    assert {call[2] for call in api.calls if call[0] == "list"} == {"ns"}
