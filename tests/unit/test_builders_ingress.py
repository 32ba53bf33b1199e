"""The head's Ingress (`enableIngress`): KubeRay v1.6's rule without `ingressOptions`,
the newer options when given (docs/behaviour.md, Pods and Services)."""

from __future__ import annotations

from ray_operator.builders.ingress import build_head_ingress, wants_ingress

from .builders_support import cluster, frozen, ray_container


def backend(ingress: dict) -> tuple[str, int]:
    service = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    return service["name"], service["port"]["number"]


def test_without_options_the_dashboard_is_served_under_the_cluster_name() -> None:
    body = cluster(head={"enableIngress": True})
    assert wants_ingress(body) and not wants_ingress(cluster())
    ingress = build_head_ingress(frozen(body))
    assert (ingress["apiVersion"], ingress["kind"]) == ("networking.k8s.io/v1", "Ingress")
    meta = ingress["metadata"]
    assert (meta["name"], meta["namespace"]) == ("demo-head-ingress", "ns")
    assert meta["ownerReferences"][0]["uid"] == "uid-1234"
    assert meta["labels"]["ray.io/cluster"] == "demo"
    assert meta["labels"]["ray.io/identifier"] == "demo-head"
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/demo/(.*)", "Exact")
    assert "host" not in rule and "tls" not in ingress["spec"]
    assert backend(ingress) == ("demo-head-svc", 8265)
    assert "ingressClassName" not in ingress["spec"] and "annotations" not in meta


def test_class_from_the_annotation_and_other_annotations_copied() -> None:
    annotations = {
        "kubernetes.io/ingress.class": "nginx",
        "nginx.ingress.kubernetes.io/rewrite-target": "/$1",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
    }
    ingress = build_head_ingress(cluster(head={"enableIngress": True}, annotations=annotations))
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["metadata"]["annotations"] == {
        "nginx.ingress.kubernetes.io/rewrite-target": "/$1"
    }


def test_options_set_path_type_host_and_tls() -> None:
    tls = [{"hosts": ["ray.example.test"], "secretName": "cert"}]
    options = {"host": "ray.example.test", "path": "/ray", "tls": tls}
    ingress = build_head_ingress(cluster(head={"enableIngress": True, "ingressOptions": options}))
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "ray.example.test"
    assert rule["http"]["paths"][0]["path"] == "/ray"
    assert rule["http"]["paths"][0]["pathType"] == "Prefix"  # the newer API's default
    assert ingress["spec"]["tls"] == tls
    empty = build_head_ingress(cluster(head={"enableIngress": True, "ingressOptions": {}}))
    path = empty["spec"]["rules"][0]["http"]["paths"][0]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")


def test_backend_follows_a_custom_service_name_and_dashboard_port() -> None:
    container = ray_container("ray-head")
    container["ports"] = [{"name": "dashboard", "containerPort": 9999}]
    body = cluster(
        head={"enableIngress": True, "headService": {"metadata": {"name": "front"}}},
        head_container=container,
    )
    assert backend(build_head_ingress(body)) == ("front", 9999)
