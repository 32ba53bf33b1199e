"""The head Service (docs/behaviour.md, Pods and Services) and the merge of
`headGroupSpec.headService`."""

from __future__ import annotations

from typing import Any

import pytest

from ray_operator import constants as c
from ray_operator.builders import build_head_pod, build_head_service, build_worker_pod

from .builders_support import cluster, frozen, ray_container

TCP = {"appProtocol": "tcp"}  # KubeRay's appProtocol on every generated port
DEFAULT = sorted(
    ({"name": n, "port": p, **TCP} for n, p in c.DEFAULT_PORTS.items()), key=lambda p: p["name"]
)


def port_map(service: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["port"] for p in service["spec"]["ports"]}


def test_generated_service() -> None:
    svc = build_head_service(cluster())
    assert (svc["apiVersion"], svc["kind"]) == ("v1", "Service")
    assert svc["metadata"]["name"] == "demo-head-svc"
    assert svc["metadata"]["namespace"] == "ns"
    assert svc["metadata"]["ownerReferences"][0]["uid"] == "uid-1234"
    assert svc["metadata"]["ownerReferences"][0]["controller"] is True
    assert svc["metadata"]["labels"] == {
        "ray.io/cluster": "demo",
        "ray.io/node-type": "head",
        "ray.io/identifier": "demo-head",
        "app.kubernetes.io/name": "kuberay",
        "app.kubernetes.io/created-by": "kuberay-operator",
    }
    assert "annotations" not in svc["metadata"]
    assert svc["spec"]["selector"] == {"ray.io/cluster": "demo", "ray.io/node-type": "head"}
    assert svc["spec"]["ports"] == DEFAULT


def test_selector_matches_the_head_pod_only() -> None:
    body = cluster()
    selector = build_head_service(body)["spec"]["selector"]
    assert selector.items() <= build_head_pod(body)["metadata"]["labels"].items()


@pytest.mark.parametrize("service_type", [None, "ClusterIP"])
def test_cluster_ip_or_unset_is_headless(service_type: str | None) -> None:
    head = {"serviceType": service_type} if service_type else {}
    spec = build_head_service(cluster(head=head))["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["clusterIP"] == "None"
    assert spec["publishNotReadyAddresses"] is True


@pytest.mark.parametrize("service_type", ["NodePort", "LoadBalancer"])
def test_other_types_are_used_as_given(service_type: str) -> None:
    spec = build_head_service(cluster(head={"serviceType": service_type}))["spec"]
    assert spec["type"] == service_type
    assert "clusterIP" not in spec and "publishNotReadyAddresses" not in spec


def test_named_container_ports_replace_the_defaults() -> None:
    ports = [
        {"name": "client", "containerPort": 10001},
        {"name": "serve", "containerPort": 8000, "protocol": "TCP"},
        {"containerPort": 9999},  # unnamed: named after its number, as KubeRay does
        {"name": "dns", "containerPort": 53, "protocol": "UDP"},  # no appProtocol tcp
    ]
    svc = build_head_service(cluster(head_container=ray_container("ray-head", ports=ports)))
    assert svc["spec"]["ports"] == [  # by name
        {"name": "9999-port", "port": 9999, **TCP},
        {"name": "client", "port": 10001, **TCP},
        {"name": "dns", "port": 53, "protocol": "UDP"},
        {"name": "gcs-server", "port": 6379, **TCP},  # workers need it
        {"name": "metrics", "port": 8080, **TCP},  # Prometheus needs it
        {"name": "serve", "port": 8000, "protocol": "TCP", **TCP},
    ]


def test_required_ports_are_not_added_twice_by_number() -> None:
    ports = [{"name": "gcs", "containerPort": 6379}, {"name": "prom", "containerPort": 8080}]
    svc = build_head_service(cluster(head_container=ray_container("ray-head", ports=ports)))
    assert port_map(svc) == {"gcs": 6379, "prom": 8080}


def test_no_container_ports_means_defaults() -> None:
    svc = build_head_service(cluster(head_container=ray_container("ray-head", ports=[])))
    assert svc["spec"]["ports"] == DEFAULT


def test_app_name_label_follows_the_head_template() -> None:
    body = cluster()
    body["spec"]["headGroupSpec"]["template"]["metadata"] = {
        "labels": {"app.kubernetes.io/name": "my-app"}
    }
    assert build_head_service(body)["metadata"]["labels"]["app.kubernetes.io/name"] == "my-app"


def test_custom_gcs_and_metrics_ports_follow_params() -> None:
    body = cluster(
        head={"rayStartParams": {"port": "7000", "metrics-export-port": "9000"}},
        head_container=ray_container(
            "ray-head", ports=[{"name": "dashboard", "containerPort": 8265}]
        ),
    )
    assert port_map(build_head_service(body)) == {
        "dashboard": 8265,
        "gcs-server": 7000,
        "metrics": 9000,
    }


def test_head_service_annotations() -> None:
    svc = build_head_service(cluster(headServiceAnnotations={"cloud/lb": "internal"}))
    assert svc["metadata"]["annotations"] == {"cloud/lb": "internal"}


def test_user_head_service_is_merged() -> None:
    user = {
        "metadata": {
            "name": "renamed",
            "namespace": "other",
            "labels": {
                "team": "ml",
                "ray.io/cluster": "evil",
                "ray.io/node-type": "worker",
                "app.kubernetes.io/name": "mine",
            },
            "annotations": {"a": "from-service", "b": "from-service"},
        },
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": "elsewhere"},
            "externalTrafficPolicy": "Local",
            "ports": [
                {"name": "dashboard", "port": 80, "targetPort": 8265},
                {"name": "extra", "port": 9999},
            ],
        },
    }
    body = cluster(head={"headService": user}, headServiceAnnotations={"b": "dedicated"})
    before = frozen(body)
    svc = build_head_service(body)
    assert body == before
    meta, spec = svc["metadata"], svc["spec"]
    assert (meta["name"], meta["namespace"]) == ("renamed", "ns")
    # The head's own labels win over the user's, as in KubeRay.
    assert meta["labels"]["team"] == "ml"
    assert meta["labels"]["app.kubernetes.io/name"] == "kuberay"
    assert (meta["labels"]["ray.io/cluster"], meta["labels"]["ray.io/node-type"]) == (
        "demo",
        "head",
    )
    assert meta["annotations"] == {"a": "from-service", "b": "dedicated"}
    assert spec["selector"] == {"ray.io/cluster": "demo", "ray.io/node-type": "head"}
    assert spec["type"] == "LoadBalancer" and spec["externalTrafficPolicy"] == "Local"
    assert "clusterIP" not in spec
    assert spec["ports"] == [
        {"name": "dashboard", "port": 80, "targetPort": 8265},
        {"name": "extra", "port": 9999},
        {"name": "gcs-server", "port": 6379, **TCP},
        {"name": "client", "port": 10001, **TCP},
        {"name": "metrics", "port": 8080, **TCP},
        {"name": "serve", "port": 8000, **TCP},
    ]


def test_a_user_head_service_is_not_made_headless() -> None:
    body = cluster(head={"headService": {"metadata": {"annotations": {"a": "b"}}}})
    spec = build_head_service(body)["spec"]
    assert spec["type"] == "ClusterIP"
    assert "clusterIP" not in spec and "publishNotReadyAddresses" not in spec


def test_workers_join_through_the_renamed_service() -> None:
    body = cluster(head={"headService": {"metadata": {"name": "front"}}})
    worker = build_worker_pod(body, 0)
    env = {e["name"]: e.get("value") for e in worker["spec"]["containers"][0]["env"]}
    assert env["FQ_RAY_IP"] == "front.ns.svc.cluster.local"
    assert "--address=front.ns.svc.cluster.local:6379" in env["KUBERAY_GEN_RAY_START_CMD"]


def test_user_head_service_can_make_a_normal_cluster_ip_service() -> None:
    body = cluster(
        head={"headService": {"spec": {"clusterIP": "", "publishNotReadyAddresses": False}}}
    )
    spec = build_head_service(body)["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["clusterIP"] == "" and spec["publishNotReadyAddresses"] is False


def test_head_service_type_beats_service_type() -> None:
    body = cluster(
        head={"serviceType": "NodePort", "headService": {"spec": {"type": "LoadBalancer"}}}
    )
    assert build_head_service(body)["spec"]["type"] == "LoadBalancer"


def test_port_names_are_unique_and_short() -> None:
    for body in (
        cluster(),
        cluster(head={"headService": {"spec": {"ports": [{"name": "metrics", "port": 81}]}}}),
    ):
        names = [p["name"] for p in build_head_service(body)["spec"]["ports"]]
        assert len(names) == len(set(names)) and all(len(n) <= 15 for n in names)
