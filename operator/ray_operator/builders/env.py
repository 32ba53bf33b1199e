"""Environment variables the operator gives Ray containers.

Every variable is added only if the user did not set one of that name, and is appended
after the user's, as upstream does. A variable is either `value` or `valueFrom`, never
both (the API server rejects that).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .. import constants as c
from .. import spec as cluster_spec
from ..spec import Body, NodeGroup
from .command import REDIS_PASSWORD_ENV, REDIS_USERNAME_ENV

RAY_CLUSTER_NAME = "RAY_CLUSTER_NAME"
RAY_CLUSTER_NAMESPACE = "RAY_CLUSTER_NAMESPACE"
RAY_CLOUD_INSTANCE_ID = "RAY_CLOUD_INSTANCE_ID"
RAY_NODE_TYPE_NAME = "RAY_NODE_TYPE_NAME"
RAY_PORT = "RAY_PORT"
RAY_ADDRESS = "RAY_ADDRESS"
FQ_RAY_IP = "FQ_RAY_IP"
RAY_IP = "RAY_IP"  # deprecated upstream, kept for scripts that still read it
RAY_USAGE_STATS_KUBERAY_IN_USE = "RAY_USAGE_STATS_KUBERAY_IN_USE"
# Makes Ray's dashboard show the pod's disk usage (it reads the container's cgroup
# view instead of the node's disks).
RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE = "RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE"
KUBERAY_GEN_RAY_START_CMD = "KUBERAY_GEN_RAY_START_CMD"
RAY_ENABLE_AUTOSCALER_V2 = "RAY_enable_autoscaler_v2"
RAY_REDIS_ADDRESS = "RAY_REDIS_ADDRESS"
RAY_EXTERNAL_STORAGE_NAMESPACE = "RAY_external_storage_namespace"
RAY_GCS_RECONNECT_TIMEOUT = "RAY_gcs_rpc_server_reconnect_timeout_s"
# Workers keep waiting for a restarted GCS this long (Ray's own default is 60 s, shorter
# than a new head pod takes to come up).
WORKER_GCS_RECONNECT_TIMEOUT_S = "600"


def value(name: str, text: str) -> dict[str, Any]:
    return {"name": name, "value": text}


def field_ref(name: str, field_path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": field_path}}}


def names(env: Iterable[Mapping[str, Any]] | None) -> set[str]:
    return {entry.get("name", "") for entry in env or ()}


def add_missing(container: dict[str, Any], entries: Iterable[dict[str, Any]]) -> None:
    """Append each entry whose name the container's env does not have yet."""
    env = container.setdefault("env", [])
    present = names(env)
    for entry in entries:
        if entry["name"] not in present:
            env.append(entry)
            present.add(entry["name"])


def from_option(name: str, option: Mapping[str, Any]) -> dict[str, Any]:
    """An env var from a `{value}` or `{valueFrom}` option (Redis credentials): a
    secret reference is passed on as a reference, never resolved."""
    if option.get("valueFrom") is not None:
        return {"name": name, "valueFrom": option["valueFrom"]}
    return value(name, str(option.get("value", "")))


def ray_container_env(
    cluster: Body, group: NodeGroup, ray_start_command: str, fqdn: str
) -> list[dict[str, Any]]:
    """The variables injected into the Ray container (docs/behaviour.md, Pods and
    Services), plus autoscaler v2's switch and GCS fault tolerance's settings."""
    port = str(cluster_spec.gcs_port(cluster))
    entries = [
        value(RAY_CLUSTER_NAME, cluster_spec.cluster_name(cluster)),
        field_ref(RAY_CLUSTER_NAMESPACE, "metadata.namespace"),
        field_ref(RAY_CLOUD_INSTANCE_ID, "metadata.name"),
        value(RAY_NODE_TYPE_NAME, group.name),
        value(KUBERAY_GEN_RAY_START_CMD, ray_start_command),
        value(RAY_PORT, port),
        value(RAY_ADDRESS, f"127.0.0.1:{port}" if group.is_head else f"{fqdn}:{port}"),
        value(RAY_USAGE_STATS_KUBERAY_IN_USE, "1"),
        value(RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE, "1"),
    ]
    if not group.is_head:
        entries += [value(FQ_RAY_IP, fqdn), value(RAY_IP, fqdn.split(".", 1)[0])]
    if cluster_spec.autoscaler_v2(cluster):
        # "1": Ray's Python side checks for exactly that, its C++ config also takes it.
        entries.append(value(RAY_ENABLE_AUTOSCALER_V2, "1"))
    if cluster_spec.gcs_ft_enabled(cluster):
        entries += gcs_ft_env(cluster, group)
    return entries


def external_storage_namespace(cluster: Body) -> str:
    """`gcsFaultToleranceOptions.externalStorageNamespace`, else the older annotation,
    else the RayCluster's uid: the key prefix of this cluster's GCS state in Redis."""
    options = cluster_spec.gcs_ft_options(cluster) or {}
    if options.get("externalStorageNamespace"):
        return str(options["externalStorageNamespace"])
    legacy = cluster_spec.annotations(cluster).get(c.ANNOTATION_EXTERNAL_STORAGE_NS)
    if legacy:
        return str(legacy)
    return str((cluster.get("metadata") or {}).get("uid", ""))


def gcs_ft_env(cluster: Body, group: NodeGroup) -> list[dict[str, Any]]:
    if not group.is_head:
        return [value(RAY_GCS_RECONNECT_TIMEOUT, WORKER_GCS_RECONNECT_TIMEOUT_S)]
    entries = [value(RAY_EXTERNAL_STORAGE_NAMESPACE, external_storage_namespace(cluster))]
    options = cluster_spec.gcs_ft_options(cluster)
    if options is not None:
        if options.get("redisAddress"):
            entries.append(value(RAY_REDIS_ADDRESS, str(options["redisAddress"])))
        if options.get("redisPassword") is not None:
            entries.append(from_option(REDIS_PASSWORD_ENV, options["redisPassword"]))
        if options.get("redisUsername") is not None:
            entries.append(from_option(REDIS_USERNAME_ENV, options["redisUsername"]))
    return entries
