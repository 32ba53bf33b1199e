"""Read-only views of a RayCluster body for the builders: which group a pod belongs to,
where its settings live (for error messages), and the cluster-wide switches that shape
every pod. Nothing here copies or changes the body."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import constants as c
from ..errors import InvalidSpecError
from ..spec import autoscaling_enabled
from . import names

Body = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class NodeGroup:
    """The head group or one worker group of a cluster."""

    node_type: str  # constants.NODE_TYPE_HEAD or NODE_TYPE_WORKER
    name: str  # HEAD_GROUP for the head, else the groupName
    raw: Body  # headGroupSpec or workerGroupSpecs[i], as in the body
    path: str  # "spec.headGroupSpec" or "spec.workerGroupSpecs[i]", for messages

    @property
    def is_head(self) -> bool:
        return self.node_type == c.NODE_TYPE_HEAD

    @property
    def ray_start_params(self) -> Mapping[str, Any]:
        return self.raw.get("rayStartParams") or {}

    @property
    def template(self) -> Body:
        return self.raw.get("template") or {}

    def ray_container(self) -> Body:
        """Container 0 of the template: the Ray container."""
        containers = (self.template.get("spec") or {}).get("containers") or []
        if not containers:
            raise InvalidSpecError(
                f"{self.path}.template.spec.containers",
                "the pod template has no containers: container 0 must run Ray",
            )
        return containers[c.RAY_CONTAINER_INDEX]


def spec(cluster: Body) -> Body:
    return cluster.get("spec") or {}


def cluster_name(cluster: Body) -> str:
    name = (cluster.get("metadata") or {}).get("name")
    if not name:
        raise ValueError("the RayCluster body has no metadata.name")
    return str(name)


def cluster_namespace(cluster: Body) -> str:
    namespace = (cluster.get("metadata") or {}).get("namespace")
    if not namespace:
        raise ValueError("the RayCluster body has no metadata.namespace")
    return str(namespace)


def head_group(cluster: Body) -> NodeGroup:
    raw = spec(cluster).get("headGroupSpec")
    if not raw:
        raise InvalidSpecError("spec.headGroupSpec", "is required")
    return NodeGroup(c.NODE_TYPE_HEAD, c.HEAD_GROUP, raw, "spec.headGroupSpec")


def worker_group(cluster: Body, index: int) -> NodeGroup:
    groups = spec(cluster).get("workerGroupSpecs") or []
    if not 0 <= index < len(groups):
        raise IndexError(f"the RayCluster has no workerGroupSpecs[{index}]")
    raw = groups[index]
    path = f"spec.workerGroupSpecs[{index}]"
    name = raw.get("groupName")
    if not name:
        raise InvalidSpecError(f"{path}.groupName", "is required")
    return NodeGroup(c.NODE_TYPE_WORKER, str(name), raw, path)


def annotations(cluster: Body) -> Mapping[str, str]:
    return (cluster.get("metadata") or {}).get("annotations") or {}


def autoscaler_options(cluster: Body) -> Body:
    return spec(cluster).get("autoscalerOptions") or {}


def autoscaler_v2(cluster: Body) -> bool:
    """autoscalerOptions.version v2 only counts while in-tree autoscaling is on."""
    return autoscaling_enabled(cluster) and autoscaler_options(cluster).get("version") == "v2"


def gcs_ft_options(cluster: Body) -> Body | None:
    return spec(cluster).get("gcsFaultToleranceOptions")


def gcs_ft_enabled(cluster: Body) -> bool:
    """GCS fault tolerance: `gcsFaultToleranceOptions`, or the older way of asking for
    it, the RayCluster annotation `ray.io/ft-enabled: "true"` (the user then sets
    RAY_REDIS_ADDRESS on the head container themselves)."""
    legacy = str(annotations(cluster).get(c.ANNOTATION_FT_ENABLED, "")).lower() == "true"
    return gcs_ft_options(cluster) is not None or legacy


def head_service_name(cluster: Body) -> str:
    """`headGroupSpec.headService.metadata.name` if set, else `<cluster>-head-svc`."""
    head = spec(cluster).get("headGroupSpec") or {}
    custom = ((head.get("headService") or {}).get("metadata") or {}).get("name")
    return str(custom) if custom else names.head_service_name(cluster_name(cluster))


def head_fqdn(cluster: Body, cluster_domain: str = c.DEFAULT_CLUSTER_DOMAIN) -> str:
    """The head Service's DNS name, which workers join through."""
    return f"{head_service_name(cluster)}.{cluster_namespace(cluster)}.svc.{cluster_domain}"


def gcs_port(cluster: Body) -> int:
    """The head's GCS port: its rayStartParams `port`, else 6379."""
    head = head_group(cluster)
    value = head.ray_start_params.get("port")
    if value is None:
        return c.GCS_PORT
    return parse_port(value, f'{head.path}.rayStartParams["port"]')


def parse_port(value: Any, field: str) -> int:
    text = str(value).strip()
    if not re.fullmatch(r"[0-9]{1,5}", text) or not 1 <= int(text) <= 65535:
        raise InvalidSpecError(field, f"{value!r} is not a port number: use a whole number 1-65535")
    return int(text)


def overwrite_container_cmd(cluster: Body, group: NodeGroup) -> bool:
    """`ray.io/overwrite-container-cmd: "true"` on the RayCluster (where upstream
    documents it) or on the group's pod template: leave the Ray container's
    command alone."""
    template_annotations = (group.template.get("metadata") or {}).get("annotations") or {}
    for source in (annotations(cluster), template_annotations):
        if str(source.get(c.ANNOTATION_OVERWRITE_CMD, "")).lower() == "true":
            return True
    return False
