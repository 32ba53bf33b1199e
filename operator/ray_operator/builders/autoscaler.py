"""In-tree autoscaling (docs/behaviour.md, Autoscaling): the `autoscaler` sidecar of the
head pod, and the ServiceAccount, Role and RoleBinding it runs as.

The sidecar runs `ray kuberay-autoscaler`, which reads everything else it needs from
the RayCluster itself on every cycle (Ray's `AutoscalingConfigProducer` in
`ray/autoscaler/_private/kuberay/autoscaling_config.py`): node types, min/max workers,
`autoscalerOptions.idleTimeoutSeconds` and `upscalingMode`. So those two options need
no flag or env var here, and changing them takes effect without restarting the head.

`autoscalerOptions` fields map onto the container: `image` (default: the head's Ray
image, so Ray versions match), `imagePullPolicy` (default IfNotPresent), `resources`
(default 500m CPU / 512Mi, requests = limits; a given value replaces the default whole),
`securityContext`, `command` and `args` (each replaces ours when non-empty), `env` (a
name the user sets replaces ours, others are appended), `envFrom` and `volumeMounts`
(appended). As in KubeRay v1.7.0 (v1.6.1 has no `command`/`args`), the generated start
command is in `KUBERAY_GEN_AUTOSCALER_START_CMD`, which `env` may not set.
"""

from __future__ import annotations

import copy
from typing import Any

from .. import constants as c
from .. import spec as cluster_spec
from ..errors import InvalidSpecError
from ..spec import Body
from . import env as e
from .meta import child_labels, owner_reference

START_COMMAND = (
    "ray kuberay-autoscaler --cluster-name $(RAY_CLUSTER_NAME) "
    "--cluster-namespace $(RAY_CLUSTER_NAMESPACE)"
)
RBAC_API_VERSION = "rbac.authorization.k8s.io/v1"
# KubeRay v1.7.0's name for the generated command, so a custom `command`/`args` can
# wrap it (`... && $KUBERAY_GEN_AUTOSCALER_START_CMD`). Not in v1.6.1.
GEN_START_CMD = "KUBERAY_GEN_AUTOSCALER_START_CMD"


def build_autoscaler_container(cluster: Body) -> dict[str, Any]:
    """The sidecar, before the shared `/tmp/ray` volume is mounted (see pod.py)."""
    options = copy.deepcopy(dict(cluster_spec.autoscaler_options(cluster)))
    head_image = cluster_spec.head_group(cluster).ray_container().get("image")
    default_resources = {"cpu": c.DEFAULT_AUTOSCALER_CPU, "memory": c.DEFAULT_AUTOSCALER_MEMORY}

    ours = [
        e.field_ref(e.RAY_CLUSTER_NAME, f"metadata.labels['{c.LABEL_CLUSTER}']"),
        e.field_ref(e.RAY_CLUSTER_NAMESPACE, "metadata.namespace"),
        e.field_ref("RAY_HEAD_POD_NAME", "metadata.name"),
        e.value("KUBERAY_CRD_VER", c.VERSION),
        # After the variables it names: the kubelet expands $(VAR) from earlier ones.
        e.value(GEN_START_CMD, START_COMMAND),
    ]
    user_env = options.get("env") or []
    for i, entry in enumerate(user_env):
        if entry.get("name") == GEN_START_CMD:
            raise InvalidSpecError(
                f"spec.autoscalerOptions.env[{i}].name",
                f"{GEN_START_CMD} is set by the operator (the autoscaler's start command, "
                "for autoscalerOptions.command/args to run): remove it from env",
            )
    env = [entry for entry in ours if entry["name"] not in e.names(user_env)] + user_env

    container: dict[str, Any] = {
        "name": c.AUTOSCALER_CONTAINER_NAME,
        "image": options.get("image") or head_image,
        "imagePullPolicy": options.get("imagePullPolicy") or "IfNotPresent",
        "command": options.get("command") or ["/bin/bash", "-c", "--"],
        "args": options.get("args") or [START_COMMAND],
        "env": env,
        "resources": options.get("resources")
        or {"requests": dict(default_resources), "limits": dict(default_resources)},
    }
    if options.get("envFrom"):
        container["envFrom"] = options["envFrom"]
    if options.get("volumeMounts"):
        container["volumeMounts"] = options["volumeMounts"]
    if options.get("securityContext"):
        container["securityContext"] = options["securityContext"]
    return container


def head_service_account(cluster: Body) -> str | None:
    """The service account named in the head template, if any."""
    pod_spec = cluster_spec.head_group(cluster).template.get("spec") or {}
    return pod_spec.get("serviceAccountName") or pod_spec.get("serviceAccount") or None


def autoscaler_service_account_name(cluster: Body) -> str:
    return head_service_account(cluster) or cluster_spec.cluster_name(cluster)


def autoscaler_rules(cluster: Body) -> list[dict[str, Any]]:
    """What Ray's autoscaler calls (docs/autoscaler-protocol.md); `delete` on rayclusters only
    under the idle-termination `Delete` policy, where it deletes its own cluster."""
    policy = (cluster_spec.spec_of(cluster).get("idleTerminationOptions") or {}).get("policy")
    raycluster_verbs = ["get", "patch"] + (["delete"] if policy == "Delete" else [])
    return [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "patch"]},
        {"apiGroups": [""], "resources": ["pods/resize"], "verbs": ["patch"]},
        {"apiGroups": [c.GROUP], "resources": [c.PLURAL], "verbs": raycluster_verbs},
    ]


def gets_autoscaler_rbac(cluster: Body) -> bool:
    """In-tree autoscaling with no service account of the user's in the head template:
    the operator creates the autoscaler's ServiceAccount, Role and RoleBinding."""
    return cluster_spec.autoscaling_enabled(cluster) and not head_service_account(cluster)


def build_autoscaler_rbac(cluster: Body) -> list[dict[str, Any]]:
    """[ServiceAccount, Role, RoleBinding], all named after the cluster and owned by it;
    none without in-tree autoscaling or when the head template names its own service
    account (its owner grants it what it needs)."""
    if not gets_autoscaler_rbac(cluster):
        return []
    name = cluster_spec.cluster_name(cluster)
    metadata = {
        "name": name,
        "namespace": cluster_spec.cluster_namespace(cluster),
        "labels": child_labels(cluster),
        "ownerReferences": [owner_reference(cluster)],
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": copy.deepcopy(metadata)},
        {
            "apiVersion": RBAC_API_VERSION,
            "kind": "Role",
            "metadata": copy.deepcopy(metadata),
            "rules": autoscaler_rules(cluster),
        },
        {
            "apiVersion": RBAC_API_VERSION,
            "kind": "RoleBinding",
            "metadata": copy.deepcopy(metadata),
            "subjects": [
                {"kind": "ServiceAccount", "name": name, "namespace": metadata["namespace"]}
            ],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        },
    ]
