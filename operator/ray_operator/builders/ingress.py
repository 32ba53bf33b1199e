"""The head's Ingress (`headGroupSpec.enableIngress`): the dashboard, from outside the
cluster, through whatever Ingress controller the cluster runs.

Named `<cluster>-head-ingress`, labelled like the head Service, it routes one path to
the head Service's dashboard port (the head container's port named `dashboard`, else
8265). Its class is the RayCluster's `kubernetes.io/ingress.class` annotation, written
as `spec.ingressClassName`; the RayCluster's other annotations are copied onto it, so
controller-specific settings (rewrite rules, auth) are set there. (kubectl's own
`kubectl.kubernetes.io/*` bookkeeping is not copied: it describes the RayCluster.)

Without `ingressOptions` the rule is KubeRay v1.6's: path `/<cluster>/(.*)`, pathType
Exact, any host. `ingressOptions` (from KubeRay's newer API) sets the path (default
`/`), pathType (default Prefix), host and TLS. Like KubeRay, the operator creates the
Ingress once and then leaves it to its owner: edits are not reverted, and a spec change
does not rewrite it (delete it to have it rebuilt).
"""

from __future__ import annotations

import copy
from typing import Any

from .. import constants as c
from .. import spec as cluster_spec
from ..spec import Body
from .meta import owner_reference
from .service import head_service_ports, service_labels

INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
KUBECTL_ANNOTATIONS = "kubectl.kubernetes.io/"


def ingress_name(cluster: Body) -> str:
    return f"{cluster_spec.cluster_name(cluster)}-head-ingress"


def wants_ingress(cluster: Body) -> bool:
    return bool(cluster_spec.head_group_spec(cluster).get("enableIngress"))


def _dashboard_port(cluster: Body) -> int:
    for port in head_service_ports(cluster):
        if port.get("name") == "dashboard":
            return int(port["port"])
    return c.DASHBOARD_PORT


def build_head_ingress(cluster: Body) -> dict[str, Any]:
    name = cluster_spec.cluster_name(cluster)
    options = cluster_spec.head_group_spec(cluster).get("ingressOptions")
    annotations = {
        key: value
        for key, value in cluster_spec.annotations(cluster).items()
        if not key.startswith(KUBECTL_ANNOTATIONS)
    }
    ingress_class = annotations.pop(INGRESS_CLASS_ANNOTATION, None)
    if options is None:
        path, path_type = f"/{name}/(.*)", "Exact"
    else:
        path, path_type = options.get("path") or "/", options.get("pathType") or "Prefix"
    rule: dict[str, Any] = {
        "http": {
            "paths": [
                {
                    "path": path,
                    "pathType": path_type,
                    "backend": {
                        "service": {
                            "name": cluster_spec.head_service_name(cluster),
                            "port": {"number": _dashboard_port(cluster)},
                        }
                    },
                }
            ]
        }
    }
    if options and options.get("host"):
        rule["host"] = options["host"]
    spec: dict[str, Any] = {"rules": [rule]}
    if options and options.get("tls"):
        spec["tls"] = copy.deepcopy(options["tls"])
    if ingress_class:
        spec["ingressClassName"] = ingress_class
    metadata: dict[str, Any] = {
        "name": ingress_name(cluster),
        "namespace": cluster_spec.cluster_namespace(cluster),
        "labels": service_labels(cluster),
        "ownerReferences": [owner_reference(cluster)],
    }
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata,
        "spec": spec,
    }
