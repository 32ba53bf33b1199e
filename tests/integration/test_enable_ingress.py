"""`enableIngress: true`: the operator creates the head's Ingress once, owned by the
RayCluster (so garbage collection removes it), routing to the head Service's dashboard
port; an Ingress of that name it does not own is reported and left alone. (No Ingress
controller runs here: what is proven is the object the API server accepted.)"""

from __future__ import annotations

from kubernetes import client

from ray_operator import constants as c
from tests.clusters import Clusters
from tests.kubehelpers import wait_for
from tests.manifests import raycluster, worker_group


def _ingress(api_client, namespace: str, name: str) -> client.V1Ingress | None:
    found = client.NetworkingV1Api(api_client).list_namespaced_ingress(
        namespace, field_selector=f"metadata.name={name}"
    )
    return found.items[0] if found.items else None


def test_the_head_ingress_is_created_owned_and_routed_to_the_dashboard(
    api_client, namespace, run_operator
) -> None:
    clusters = Clusters(api_client, namespace)
    run_operator(namespace)
    body = raycluster("web", worker_group("cpu", 1))
    body["metadata"]["annotations"] = {
        "kubernetes.io/ingress.class": "nginx",
        "nginx.ingress.kubernetes.io/rewrite-target": "/$1",
    }
    body["spec"]["headGroupSpec"]["enableIngress"] = True
    created = clusters.create(body)
    clusters.wait_state("web")
    ingress = wait_for(lambda: _ingress(api_client, namespace, "web-head-ingress"))
    (owner,) = ingress.metadata.owner_references
    assert (owner.kind, owner.uid, owner.controller) == (
        "RayCluster",
        created["metadata"]["uid"],
        True,
    )
    assert ingress.spec.ingress_class_name == "nginx"
    assert ingress.metadata.annotations == {"nginx.ingress.kubernetes.io/rewrite-target": "/$1"}
    (path,) = ingress.spec.rules[0].http.paths
    assert (path.path, path.path_type) == ("/web/(.*)", "Exact")
    assert path.backend.service.name == "web-head-svc"
    assert path.backend.service.port.number == 8265
    assert [e for e in clusters.events("web") if e.reason == "CreatedIngress"]
    assert clusters.condition("web", c.COND_REPLICA_FAILURE) is None


def test_an_ingress_of_that_name_owned_by_no_cluster_is_reported_and_kept(
    api_client, namespace, run_operator
) -> None:
    clusters = Clusters(api_client, namespace)
    networking = client.NetworkingV1Api(api_client)
    theirs = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "taken-head-ingress"},
        "spec": {"defaultBackend": {"service": {"name": "elsewhere", "port": {"number": 80}}}},
    }
    before = networking.create_namespaced_ingress(namespace, theirs)
    run_operator(namespace)
    body = raycluster("taken", worker_group("cpu", 1))
    body["spec"]["headGroupSpec"]["enableIngress"] = True
    clusters.create(body)
    event = clusters.wait_warning("taken", "IngressConflict")
    assert "taken-head-ingress" in event.message and "enableIngress" in event.message
    clusters.wait_state("taken")  # the Ray cluster itself is reconciled
    after = _ingress(api_client, namespace, "taken-head-ingress")
    assert after.metadata.resource_version == before.metadata.resource_version
