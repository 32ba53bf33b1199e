"""After a restart, the autoscaler RBAC objects of many clusters are checked with one
metadata list per kind on the real API server, not with a GET per object; one deleted
meanwhile is read alone and made again."""

from __future__ import annotations

import asyncio
from typing import Any

from kubernetes import client

from ray_operator.kube import KubeApi
from ray_operator.reconciler import Reconciler
from tests.manifests import raycluster, worker_group

ON = {"enableInTreeAutoscaling": True}
RBAC = ("ServiceAccount", "Role", "RoleBinding")


class CountingApi(KubeApi):
    def __init__(self, api_client: client.ApiClient) -> None:
        super().__init__(api_client)
        self.lists: list[tuple[str, str | None]] = []
        self.checks: list[tuple[str, str]] = []  # children read or created one by one

    def list_labelled_children(self, kind: str, namespace: str | None):
        self.lists.append((kind, namespace))
        return super().list_labelled_children(kind, namespace)

    def create_or_get(self, obj: dict[str, Any], check_first: bool = True):
        self.checks.append((obj["kind"], obj["metadata"]["name"]))
        return super().create_or_get(obj, check_first)


def _passes(reconciler: Reconciler, clusters, names: list[str]) -> None:
    async def run() -> None:
        for name in names:
            reconciler.observe((clusters.ns, name), clusters.get(name))
        for name in names:
            await reconciler.reconcile((clusters.ns, name))

    try:
        asyncio.run(run())
    finally:
        reconciler.close()


def test_a_restart_lists_the_rbac_of_many_autoscaling_clusters(
    api_client, clusters, namespace, crd_installed
):
    names = ["a", "b", "c"]
    for name in names:
        clusters.create(raycluster(name, worker_group("cpu", 0), **ON))
    rbac = client.RbacAuthorizationV1Api(api_client)
    # A stranger with the label: listed too, but not controlled by any RayCluster.
    rbac.create_namespaced_role(
        namespace, {"metadata": {"name": "x", "labels": {"ray.io/cluster": "a"}}, "rules": []}
    )
    first = CountingApi(api_client)
    _passes(Reconciler(first), clusters, names)
    assert sorted(k for k, _ in first.lists) == sorted(RBAC)  # all still missing then
    assert sorted(c for c in first.checks if c[0] in RBAC) == sorted(
        (k, n) for k in RBAC for n in names
    )

    rbac.delete_namespaced_role_binding("b", namespace)
    restarted = CountingApi(api_client)
    _passes(Reconciler(restarted, namespaces=[namespace]), clusters, names)
    assert sorted(restarted.lists) == sorted((k, namespace) for k in RBAC)
    # the only one the list lacked (the head Services: the clusters have no status
    # yet, so each pass makes sure of its Service)
    assert [c for c in restarted.checks if c[0] in RBAC] == [("RoleBinding", "b")]
    binding = rbac.read_namespaced_role_binding("b", namespace)
    assert binding.metadata.owner_references[0].uid == clusters.get("b")["metadata"]["uid"]
