"""Metadata shared by a RayCluster's children: owner reference, labels, selectors and
the pod-template hash."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .. import constants as c
from ..spec import Body, NodeGroup, cluster_name

TEMPLATE_HASH_LENGTH = 16


def owner_reference(cluster: Body) -> dict[str, Any]:
    """Makes the child garbage-collected with the RayCluster, even without us."""
    meta = cluster.get("metadata") or {}
    if not meta.get("uid"):
        raise ValueError(
            "the RayCluster body has no metadata.uid: build children only from an object "
            "read from the API server"
        )
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "name": cluster_name(cluster),
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def identifier(cluster: Body, node_type: str) -> str:
    """`<cluster>-head` / `<cluster>-worker`, cut to a valid label value (63 chars)."""
    return f"{cluster_name(cluster)}-{node_type}"[:63].rstrip("-_.")


def head_selector(cluster: Body) -> dict[str, str]:
    """Selects the head pod (the head Service uses it)."""
    return {c.LABEL_CLUSTER: cluster_name(cluster), c.LABEL_NODE_TYPE: c.NODE_TYPE_HEAD}


def group_selector(cluster: Body, group: NodeGroup) -> dict[str, str]:
    """Selects the pods of one group."""
    return {
        c.LABEL_CLUSTER: cluster_name(cluster),
        c.LABEL_NODE_TYPE: group.node_type,
        c.LABEL_GROUP: group.name,
    }


def pod_labels(cluster: Body, group: NodeGroup) -> dict[str, str]:
    """Our labels, then the template's labels and the group's Ray `labels` (which win
    over ours), then the three protected labels again (which nobody overrides)."""
    protected = group_selector(cluster, group)
    labels = {
        **protected,
        c.LABEL_IS_RAY_NODE: "yes",
        c.LABEL_IDENTIFIER: identifier(cluster, group.node_type),
        c.LABEL_APP_NAME: c.APP_NAME,
        c.LABEL_CREATED_BY: c.CREATED_BY,
    }
    labels.update((group.template.get("metadata") or {}).get("labels") or {})
    labels.update(group.raw.get("labels") or {})
    labels.update(protected)
    return labels


def child_labels(cluster: Body) -> dict[str, str]:
    """Labels for children other than pods (ServiceAccount, Role, RoleBinding)."""
    return {
        c.LABEL_CLUSTER: cluster_name(cluster),
        c.LABEL_APP_NAME: c.APP_NAME,
        c.LABEL_CREATED_BY: c.CREATED_BY,
    }


def template_hash(group: NodeGroup) -> str:
    """A stable short hash of what the user wrote for this group's pods: the pod
    template, `rayStartParams`, and the Ray-level `resources` and `labels`. Replica
    counts, scale strategy and suspend are left out (they never need new pods), and so
    are cluster-wide options, so that `upgradeStrategy: Recreate` only replaces pods
    when the group itself changed. Absent and empty maps hash the same."""
    material = {
        "template": group.raw.get("template") or {},
        "rayStartParams": group.raw.get("rayStartParams") or {},
        "resources": group.raw.get("resources") or {},
        "labels": group.raw.get("labels") or {},
    }
    text = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:TEMPLATE_HASH_LENGTH]
