"""The head Service `<cluster>-head-svc` (docs/behaviour.md, Pods and Services).

Generated: labels (cluster, node type head, identifier, app name, created-by), the
owner reference, annotations from `spec.headServiceAnnotations`, the selector
`{ray.io/cluster: <cluster>, ray.io/node-type: head}`, and ports: the head Ray
container's named ports, else constants.DEFAULT_PORTS; `metrics` (the head's
`metrics-export-port`) and `gcs-server` (its GCS port) are added when neither their
name nor their number is among them, since Prometheus and workers need them. Type
ClusterIP or unset gives a headless Service (`clusterIP: None`,
`publishNotReadyAddresses: true`): the name resolves to the head pod IP even before
the pod is Ready, which workers need to join. Other `serviceType`s are used as given.

`headGroupSpec.headService`, a user-written Service, is merged over that:
- metadata labels and annotations are added, overriding ours, except that
  `ray.io/cluster` and `ray.io/node-type` stay ours, and `headServiceAnnotations` (the
  dedicated field) wins over `headService.metadata.annotations`;
- each field of its `spec` replaces ours (e.g. `type`, `clusterIP`,
  `externalTrafficPolicy`), except `selector`, which stays ours so the Service always
  finds the head; `ports` are merged by name: the user's entries come first and
  replace ours of the same name, ours whose name and port are unused are appended;
- name, namespace and owner references always stay ours (upstream lets
  `headService.metadata.name` rename the Service; here the name is fixed so workers'
  `RAY_ADDRESS` and the autoscaler always find it).
"""

from __future__ import annotations

import copy
from typing import Any

from .. import constants as c
from . import groups as g
from .command import ray_start_params
from .meta import head_selector, identifier, owner_reference
from .names import head_service_name

PROTECTED_SERVICE_LABELS = (c.LABEL_CLUSTER, c.LABEL_NODE_TYPE)


def head_service_ports(cluster: g.Body) -> list[dict[str, Any]]:
    head = g.head_group(cluster)
    named = [
        p
        for p in head.ray_container().get("ports") or []
        if p.get("name") and p.get("containerPort")
    ]
    if named:
        ports = []
        for p in named:
            port: dict[str, Any] = {"name": p["name"], "port": p["containerPort"]}
            if p.get("protocol"):
                port["protocol"] = p["protocol"]
            ports.append(port)
    else:
        ports = [{"name": name, "port": number} for name, number in c.DEFAULT_PORTS.items()]
    params = ray_start_params(cluster, head)
    required = {
        "gcs-server": g.gcs_port(cluster),
        "metrics": int(params["metrics-export-port"]),
    }
    for name, number in required.items():
        if not any(p["name"] == name or p["port"] == number for p in ports):
            ports.append({"name": name, "port": number})
    return ports


def _merge_ports(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged = copy.deepcopy(theirs)
    names = {p.get("name") for p in merged}
    numbers = {p.get("port") for p in merged}
    merged += [p for p in ours if p["name"] not in names and p["port"] not in numbers]
    return merged


def build_head_service(cluster: g.Body) -> dict[str, Any]:
    head = g.head_group(cluster)
    user = copy.deepcopy(dict(head.raw.get("headService") or {}))
    user_meta = user.get("metadata") or {}
    user_spec = user.get("spec") or {}
    selector = head_selector(cluster)

    labels = {
        **selector,
        c.LABEL_IDENTIFIER: identifier(cluster, c.NODE_TYPE_HEAD),
        c.LABEL_APP_NAME: c.APP_NAME,
        c.LABEL_CREATED_BY: c.CREATED_BY,
        **(user_meta.get("labels") or {}),
    }
    labels.update({k: selector[k] for k in PROTECTED_SERVICE_LABELS})
    annotations = {
        **(user_meta.get("annotations") or {}),
        **(g.spec(cluster).get("headServiceAnnotations") or {}),
    }

    service_type = user_spec.get("type") or head.raw.get("serviceType") or "ClusterIP"
    spec: dict[str, Any] = {"type": service_type, "selector": selector}
    if service_type == "ClusterIP":
        spec["clusterIP"] = "None"
        spec["publishNotReadyAddresses"] = True
    spec["ports"] = head_service_ports(cluster)
    for key, value in user_spec.items():
        if key == "selector":
            continue
        spec[key] = _merge_ports(spec["ports"], value or []) if key == "ports" else value

    metadata: dict[str, Any] = {
        "name": head_service_name(g.cluster_name(cluster)),
        "namespace": g.cluster_namespace(cluster),
        "labels": labels,
        "ownerReferences": [owner_reference(cluster)],
    }
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}
