"""Multi-host worker groups (numOfHosts > 1) on the local control plane, as KubeRay
v1.6.1 runs them: the headless worker Service, replica labels, a replica that lost a
host replaced as a unit, `workersToDelete` and scale-down by whole replicas."""

from __future__ import annotations

from collections import defaultdict

from ray_operator import constants as c
from tests.clusters import Clusters
from tests.kubehelpers import wait_for
from tests.manifests import raycluster, worker_group


def replicas_of(clusters: Clusters) -> dict[str, dict[str, str]]:
    """replica name -> {host index: pod name}"""
    out: dict[str, dict[str, str]] = defaultdict(dict)
    for p in clusters.pods("mh", "tpu"):
        labels = p.metadata.labels
        out[labels[c.LABEL_REPLICA_NAME]][labels[c.LABEL_HOST_INDEX]] = p.metadata.name
    return dict(out)


def test_multi_host_replicas(api_client, namespace, run_operator):
    clusters = Clusters(api_client, namespace)
    run_operator(namespace)
    clusters.create(raycluster("mh", worker_group("tpu", 2, numOfHosts=2), worker_group("cpu", 1)))
    status = clusters.wait_state("mh")["status"]
    assert status["desiredWorkerReplicas"] == 5

    svc = clusters.core.read_namespaced_service("mh-headless", namespace)
    assert svc.spec.cluster_ip == "None" and svc.spec.publish_not_ready_addresses
    assert svc.spec.selector == {c.LABEL_CLUSTER: "mh", c.LABEL_NODE_TYPE: "worker"}
    assert svc.metadata.owner_references[0].controller

    first = replicas_of(clusters)
    assert len(first) == 2 and all(set(h) == {"0", "1"} for h in first.values())
    indices = {
        p.metadata.labels[c.LABEL_REPLICA_NAME]: p.metadata.labels[c.LABEL_REPLICA_INDEX]
        for p in clusters.pods("mh", "tpu")
    }
    assert sorted(indices.values()) == ["0", "1"]
    (cpu,) = clusters.pods("mh", "cpu")
    assert cpu.metadata.labels[c.LABEL_REPLICA_INDEX] == "0"
    assert c.LABEL_REPLICA_NAME not in cpu.metadata.labels

    # A host lost: its replica goes whole and a new one (new name, same index) comes.
    lost, survivor = sorted(first)
    clusters.core.delete_namespaced_pod(first[lost]["0"], namespace)

    def replaced():
        now = replicas_of(clusters)
        ok = lost not in now and survivor in now and len(now) == 2
        return now if ok and all(len(h) == 2 for h in now.values()) else None

    second = wait_for(replaced, timeout=60, what="replica replaced as a unit")
    assert second[survivor] == first[survivor]  # the other replica untouched

    # workersToDelete naming one host removes its whole replica.
    (renewed,) = [r for r in second if r != survivor]
    victim = second[renewed]["1"]
    clusters.patch(
        "mh",
        {
            "spec": {
                "workerGroupSpecs": [
                    worker_group(
                        "tpu", 1, numOfHosts=2, scaleStrategy={"workersToDelete": [victim]}
                    ),
                    worker_group("cpu", 1),
                ]
            }
        },
    )
    wait_for(lambda: replicas_of(clusters) == {survivor: first[survivor]}, timeout=60, what="down")
    clusters.wait_state("mh")
