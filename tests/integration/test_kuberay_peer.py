"""KubeRay's own operator runs on our local control plane (the peer of the migration
tests and the benchmarks): built from its Go module, started with its chart's default
flags, it reconciles a RayCluster from its own CRD. A control plane of its own, since
KubeRay's CRDs replace ours."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client, config

from ray_operator_dev import kuberay
from ray_operator_dev.devcluster import ControlPlane
from tests.kubehelpers import apply_crds, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def kuberay_plane() -> Iterator[ControlPlane]:
    with ControlPlane.in_temp_dir().start() as plane:
        yield plane


def test_kuberay_reconciles_a_cluster_and_its_successor_waits_for_the_lease(
    kuberay_plane: ControlPlane,
) -> None:
    api = config.new_client_from_config(str(kuberay_plane.kubeconfig))
    apply_crds(api, kuberay.crd_files())
    peer = kuberay.KubeRayProcess(kuberay_plane.kubeconfig, kuberay_plane.root / "kuberay.log")
    peer.start()
    try:
        wait_for(peer.ready, timeout=60, what="KubeRay's readyz")
        cluster = {
            "apiVersion": "ray.io/v1",
            "kind": "RayCluster",
            "metadata": {"name": "peer"},
            "spec": {
                "headGroupSpec": {
                    "rayStartParams": {},
                    "template": {"spec": {"containers": [{"name": "ray-head", "image": "ray"}]}},
                },
                "workerGroupSpecs": [
                    {
                        "groupName": "cpu",
                        "replicas": 2,
                        "minReplicas": 0,
                        "maxReplicas": 4,
                        "rayStartParams": {},
                        "template": {
                            "spec": {"containers": [{"name": "ray-worker", "image": "ray"}]}
                        },
                    }
                ],
            },
        }
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            "ray.io", "v1", "default", "rayclusters", cluster
        )
        core = client.CoreV1Api(api)

        def three_pods() -> list[client.V1Pod] | None:
            found = core.list_namespaced_pod("default", label_selector="ray.io/cluster=peer")
            return found.items if len(found.items) == 3 else None

        pods = wait_for(three_pods, timeout=60, what="KubeRay's three pods")
        assert sorted(p.metadata.labels["ray.io/node-type"] for p in pods) == [
            "head",
            "worker",
            "worker",
        ]
        assert all(p.metadata.owner_references[0].kind == "RayCluster" for p in pods)
        assert wait_for(peer.reconciles, timeout=30, what="KubeRay's reconcile counter") > 0
        assert peer.leading()
    finally:
        peer.stop()
    assert peer.proc.returncode == 0, peer.log_tail()

    # What the benchmark's restart phase relies on: a stopped KubeRay keeps its Lease,
    # so its successor serves /readyz as a standby, reconciling nothing, until the
    # Lease expires; then it leads and reconciles the cluster again.
    successor = kuberay.KubeRayProcess(
        kuberay_plane.kubeconfig, kuberay_plane.root / "kuberay-successor.log"
    )
    successor.start()
    try:
        wait_for(successor.ready, timeout=60, what="the successor's readyz")
        assert not successor.leading()
        assert successor.reconciles() == 0
        wait_for(successor.leading, timeout=60, what="the successor taking the Lease")
        assert wait_for(successor.reconciles, timeout=30, what="the successor's passes") > 0
    finally:
        successor.stop()
