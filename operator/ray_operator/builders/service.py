"""The head Service (docs/behaviour.md, Pods and Services), built as KubeRay v1.6.1
builds it.

Name: `headGroupSpec.headService.metadata.name` if set, else `<cluster>-head-svc`
(`groups.head_service_name`); workers' `--address`, `FQ_RAY_IP` and the init
container follow it. Labels: the head's identity (`ray.io/cluster`, `ray.io/node-type`,
`ray.io/identifier`, `app.kubernetes.io/name` (the head template's, else `kuberay`),
`app.kubernetes.io/created-by`) over the user's labels: ours win on a conflict.
Annotations: `headService.metadata.annotations` under `spec.headServiceAnnotations`
(the dedicated field wins). Owner: a controller ownerReference to the RayCluster.
Selector: `{ray.io/cluster, ray.io/node-type: head}`, whatever the user wrote.

Ports (`head_service_ports`): one per port of the head's Ray container (an unnamed one
is named `<port>-port`), else constants.DEFAULT_PORTS; `metrics` (the head's
`metrics-export-port`) and `gcs-server` are added when neither their name nor their
number is among them. Each gets `appProtocol: tcp`, as KubeRay sets it (not on UDP or
SCTP ports, which keep their protocol here).

Without `headService`: type `serviceType` (default ClusterIP); ClusterIP makes it
headless (`clusterIP: None`, `publishNotReadyAddresses: true`), so the name resolves to
the head pod even before it is Ready, which workers need to join. Ports by name.

With `headService`: its `spec` as written, with our selector, `type` its own else
`serviceType`, and not made headless (KubeRay leaves it to the user); its `ports` come
first and ours follow, except those whose name or number it already uses (KubeRay
appends all of ours, and a duplicate then makes the create fail).
"""

from __future__ import annotations

import copy
from typing import Any

from .. import constants as c
from .. import spec as cluster_spec
from ..spec import Body
from .command import ray_start_params
from .meta import head_selector, identifier, owner_reference

APP_PROTOCOL = "tcp"  # what KubeRay puts on every generated port


def head_service_ports(cluster: Body) -> list[dict[str, Any]]:
    head = cluster_spec.head_group(cluster)
    declared = [p for p in head.ray_container().get("ports") or [] if p.get("containerPort")]
    if declared:
        ports = []
        for p in declared:
            number = int(p["containerPort"])
            port: dict[str, Any] = {"name": p.get("name") or f"{number}-port", "port": number}
            if p.get("protocol"):
                port["protocol"] = p["protocol"]
            ports.append(port)
    else:
        ports = [{"name": name, "port": number} for name, number in c.DEFAULT_PORTS.items()]
    params = ray_start_params(cluster, head)
    required = {
        "gcs-server": cluster_spec.gcs_port(cluster),
        "metrics": int(params["metrics-export-port"]),
    }
    for name, number in required.items():
        if not any(p["name"] == name or p["port"] == number for p in ports):
            ports.append({"name": name, "port": number})
    for port in ports:
        if port.get("protocol", "TCP") == "TCP":
            port["appProtocol"] = APP_PROTOCOL
    return ports


def _merge_ports(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged = copy.deepcopy(theirs)
    names = {p.get("name") for p in merged}
    numbers = {p.get("port") for p in merged}
    merged += [p for p in ours if p["name"] not in names and p["port"] not in numbers]
    return merged


def service_labels(cluster: Body) -> dict[str, str]:
    """The head Service's own labels (they win over the user's)."""
    template_labels = (cluster_spec.head_group(cluster).template.get("metadata") or {}).get(
        "labels"
    ) or {}
    return {
        **head_selector(cluster),
        c.LABEL_IDENTIFIER: identifier(cluster, c.NODE_TYPE_HEAD),
        c.LABEL_APP_NAME: template_labels.get(c.LABEL_APP_NAME) or c.APP_NAME,
        c.LABEL_CREATED_BY: c.CREATED_BY,
    }


def build_head_service(cluster: Body) -> dict[str, Any]:
    head = cluster_spec.head_group(cluster)
    user = head.raw.get("headService")
    user_meta = copy.deepcopy(dict((user or {}).get("metadata") or {}))
    selector = head_selector(cluster)
    labels = {**(user_meta.get("labels") or {}), **service_labels(cluster)}
    annotations = {
        **(user_meta.get("annotations") or {}),
        **(cluster_spec.spec_of(cluster).get("headServiceAnnotations") or {}),
    }
    ports = head_service_ports(cluster)

    spec: dict[str, Any]
    if user is None:
        spec = {"type": head.raw.get("serviceType") or "ClusterIP", "selector": selector}
        if spec["type"] == "ClusterIP":
            spec["clusterIP"] = "None"
            spec["publishNotReadyAddresses"] = True
        spec["ports"] = sorted(ports, key=lambda p: p["name"])
    else:
        spec = copy.deepcopy(dict(user.get("spec") or {}))
        spec["selector"] = selector
        spec["type"] = spec.get("type") or head.raw.get("serviceType") or "ClusterIP"
        spec["ports"] = _merge_ports(ports, spec.get("ports") or [])

    metadata: dict[str, Any] = {
        "name": cluster_spec.head_service_name(cluster),
        "namespace": cluster_spec.cluster_namespace(cluster),
        "labels": labels,
        "ownerReferences": [owner_reference(cluster)],
    }
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}
