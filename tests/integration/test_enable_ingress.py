"""`enableIngress: true` is accepted by the API but this operator creates no Ingress:
it says so (ReplicaFailure condition and a Warning event naming the field and the way
out) and reconciles the rest of the cluster, instead of ignoring the field."""

from __future__ import annotations

from kubernetes import client

from ray_operator import constants as c
from tests.clusters import Clusters
from tests.kubehelpers import wait_for
from tests.manifests import raycluster, worker_group


def test_enable_ingress_is_reported_and_the_cluster_still_runs(
    api_client, namespace, run_operator
) -> None:
    clusters = Clusters(api_client, namespace)
    run_operator(namespace)
    body = raycluster("ingress", worker_group("cpu", 1))
    body["spec"]["headGroupSpec"]["enableIngress"] = True
    clusters.create(body)
    clusters.wait_state("ingress")  # the Ray cluster itself works

    def reported() -> dict | None:
        found = clusters.condition("ingress", c.COND_REPLICA_FAILURE)
        return found if found and found["reason"] == "IngressNotSupported" else None

    condition = wait_for(reported, timeout=60, what="IngressNotSupported condition")
    assert condition["status"] == "True"
    assert "spec.headGroupSpec.enableIngress" in condition["message"]
    assert "ingress-head-svc" in condition["message"]
    event = clusters.wait_warning("ingress", "IngressNotSupported")
    assert "enableIngress" in event.message
    ingresses = client.NetworkingV1Api(api_client).list_namespaced_ingress(namespace).items
    assert ingresses == []

    # turning it off clears the condition
    clusters.patch("ingress", {"spec": {"headGroupSpec": {"enableIngress": False}}})
    wait_for(lambda: clusters.condition("ingress", c.COND_REPLICA_FAILURE) is None,
             timeout=60, what="condition cleared")  # fmt: skip
