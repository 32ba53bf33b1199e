"""The head Service as KubeRay v1.6.1 builds it, on the real API server: a user's
`headService` (name, labels, annotations, type) merged over the defaults, node ports
in `status.endpoints`, `appProtocol` on the generated ports, workers joining through
the renamed Service."""

from __future__ import annotations

from ray_operator import constants as c
from tests.clusters import Clusters
from tests.kubehelpers import wait_for
from tests.manifests import raycluster, worker_group


def test_user_head_service_nodeport_and_endpoints(api_client, namespace, run_operator):
    clusters = Clusters(api_client, namespace)
    run_operator(namespace)
    body = raycluster("svc", worker_group("cpu", 1))
    body["spec"]["headServiceAnnotations"] = {"owner": "dedicated"}
    body["spec"]["headGroupSpec"]["headService"] = {
        "metadata": {
            "name": "front",
            "labels": {"team": "ml", c.LABEL_CLUSTER: "other"},
            "annotations": {"owner": "service", "lb": "internal"},
        },
        "spec": {"type": "NodePort", "ports": [{"name": "web", "port": 80, "targetPort": 8265}]},
    }
    created = clusters.create(body)
    status = clusters.wait_state("svc")["status"]

    svc = clusters.core.read_namespaced_service("front", namespace)
    assert svc.metadata.owner_references[0].uid == created["metadata"]["uid"]
    assert svc.metadata.owner_references[0].controller is True
    assert svc.metadata.labels["team"] == "ml"
    assert svc.metadata.labels[c.LABEL_CLUSTER] == "svc"  # ours win
    assert svc.metadata.annotations == {"owner": "dedicated", "lb": "internal"}
    assert svc.spec.type == "NodePort"
    assert svc.spec.selector == {c.LABEL_CLUSTER: "svc", c.LABEL_NODE_TYPE: "head"}
    by_name = {p.name: p for p in svc.spec.ports}
    assert by_name["web"].app_protocol is None  # the user's port as written
    assert by_name["gcs-server"].app_protocol == "tcp"
    assert status["head"]["serviceName"] == "front"
    assert status["head"]["serviceIP"] == svc.spec.cluster_ip  # not headless
    # NodePort: every endpoint is the node port the API server allocated.
    assert status["endpoints"] == {p.name: str(p.node_port) for p in svc.spec.ports}
    assert all(p.node_port for p in svc.spec.ports)
    # Workers join through the Service's real name; no `<cluster>-head-svc` exists.
    (worker,) = clusters.pods("svc", "cpu")
    env = {e.name: e.value for e in worker.spec.containers[0].env}
    assert env["FQ_RAY_IP"] == f"front.{namespace}.svc.cluster.local"
    names = [s.metadata.name for s in clusters.core.list_namespaced_service(namespace).items]
    assert names == ["front"]


def test_default_head_service_is_headless_with_app_protocol(api_client, namespace, run_operator):
    clusters = Clusters(api_client, namespace)
    run_operator(namespace)
    clusters.create(raycluster("plain", worker_group("cpu", 0)))
    status = clusters.wait_state("plain")["status"]
    svc = wait_for(
        lambda: clusters.core.read_namespaced_service("plain-head-svc", namespace), what="svc"
    )
    assert svc.spec.cluster_ip == "None"
    assert [p.name for p in svc.spec.ports] == sorted(p.name for p in svc.spec.ports)
    assert {p.app_protocol for p in svc.spec.ports} == {"tcp"}
    assert status["head"]["serviceIP"] == status["head"]["podIP"]
    assert status["endpoints"]["gcs-server"] == "6379"
