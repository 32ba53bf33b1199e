"""`upgradeStrategy: Recreate` and pods that lack our `ray.io/pod-template-hash` (as
KubeRay's pods do after a migration): they are stamped with the current hash by a
metadata patch, never deleted and recreated."""

from __future__ import annotations

import pytest

from ray_operator import constants as c
from tests.clusters import Clusters
from tests.kubehelpers import wait_for
from tests.manifests import raycluster, worker_group

HASH = c.ANNOTATION_TEMPLATE_HASH


@pytest.mark.parametrize(
    ("group", "pods"),
    [(worker_group("cpu", 2), 3), (worker_group("tpu", 2, numOfHosts=2), 5)],
    ids=["single-host", "multi-host"],
)
def test_pods_without_our_hash_are_stamped_not_recreated(
    api_client, namespace, run_operator, group, pods
):
    clusters = Clusters(api_client, namespace)
    run_operator(namespace)
    clusters.create(raycluster("adopt", group, upgradeStrategy={"type": "Recreate"}))
    clusters.wait_state("adopt")
    before = {
        p.metadata.name: (p.metadata.uid, p.metadata.annotations[HASH])
        for p in clusters.pods("adopt")
    }
    assert len(before) == pods

    # Make them look like KubeRay's pods: no hash of ours.
    escaped = HASH.replace("/", "~1")
    for name in before:
        clusters.core.patch_namespaced_pod(
            name, namespace, [{"op": "remove", "path": f"/metadata/annotations/{escaped}"}]
        )

    def restamped() -> bool:
        return len(found := clusters.pods("adopt")) == pods and all(
            HASH in (p.metadata.annotations or {}) for p in found
        )

    wait_for(restamped, timeout=60, what="pods stamped again")
    after = {
        p.metadata.name: (p.metadata.uid, p.metadata.annotations[HASH])
        for p in clusters.pods("adopt")
    }
    assert after == before  # same pods (uids), same hash: nothing was recreated
    assert clusters.events("adopt") and any(
        e.reason == "AdoptedPods" for e in clusters.events("adopt")
    )
    assert not [e for e in clusters.events("adopt") if e.reason.startswith("Deleted")]
