"""The one accessor layer for a RayCluster body: every module reads the spec through
these functions and views, with the API's defaults applied, instead of indexing the
dict. The API server applies the CRD defaults, but the operator also sees objects
written before a default existed, and tests build bodies by hand.

`NodeGroup` is the head group or a worker group: where its settings live (for error
messages), its pod template and Ray container, and its replica settings. Nothing here
copies or changes the body."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import constants as c
from . import names
from .errors import InvalidSpecError

Body = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class NodeGroup:
    """The head group or one worker group of a cluster. Replica settings read with the
    API's defaults; the head group has no index and is always one pod."""

    node_type: str  # constants.NODE_TYPE_HEAD or NODE_TYPE_WORKER
    name: str  # HEAD_GROUP for the head, else the groupName
    raw: Body  # headGroupSpec or workerGroupSpecs[i], as in the body
    path: str  # "spec.headGroupSpec" or "spec.workerGroupSpecs[i]", for messages
    index: int | None = None  # position in workerGroupSpecs; None for the head

    @property
    def is_head(self) -> bool:
        return self.node_type == c.NODE_TYPE_HEAD

    @property
    def replicas(self) -> int:
        return _int(self.raw.get("replicas"), 0)

    @property
    def min_replicas(self) -> int:
        return _int(self.raw.get("minReplicas"), 0)

    @property
    def max_replicas(self) -> int:
        return _int(self.raw.get("maxReplicas"), c.DEFAULT_MAX_REPLICAS)

    @property
    def num_of_hosts(self) -> int:
        return max(1, _int(self.raw.get("numOfHosts"), 1))

    @property
    def suspended(self) -> bool:
        return bool(self.raw.get("suspend", False))

    @property
    def workers_to_delete(self) -> tuple[str, ...]:
        return tuple((self.raw.get("scaleStrategy") or {}).get("workersToDelete") or ())

    @property
    def clamped_replicas(self) -> int:
        """`replicas` clamped into [minReplicas, maxReplicas] (max wins if min > max)."""
        return max(0, min(max(self.replicas, self.min_replicas), self.max_replicas))

    @property
    def desired_pods(self) -> int:
        return 0 if self.suspended else self.clamped_replicas * self.num_of_hosts

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


def _int(value: Any, default: int) -> int:
    return default if value is None else int(value)


def spec_of(cluster: Body) -> Body:
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


def head_group_spec(cluster: Body) -> Body:
    """`headGroupSpec` as written, or empty: for checks that report rather than build."""
    return spec_of(cluster).get("headGroupSpec") or {}


def head_pod_spec(cluster: Body) -> Body:
    return (head_group_spec(cluster).get("template") or {}).get("spec") or {}


def managed_by(cluster: Body) -> str:
    return str(spec_of(cluster).get("managedBy") or "")


def generation(cluster: Body) -> int:
    return int((cluster.get("metadata") or {}).get("generation") or 0)


def head_group(cluster: Body) -> NodeGroup:
    raw = spec_of(cluster).get("headGroupSpec")
    if not raw:
        raise InvalidSpecError("spec.headGroupSpec", "is required")
    return NodeGroup(c.NODE_TYPE_HEAD, c.HEAD_GROUP, raw, "spec.headGroupSpec")


def worker_group(cluster: Body, index: int) -> NodeGroup:
    groups = spec_of(cluster).get("workerGroupSpecs") or []
    if not 0 <= index < len(groups):
        raise IndexError(f"the RayCluster has no workerGroupSpecs[{index}]")
    raw = groups[index]
    path = f"spec.workerGroupSpecs[{index}]"
    name = raw.get("groupName")
    if not name:
        raise InvalidSpecError(f"{path}.groupName", "is required")
    return NodeGroup(c.NODE_TYPE_WORKER, str(name), raw, path, index)


def worker_groups(cluster: Body) -> list[NodeGroup]:
    """Every worker group, leniently: a group without a name still counts (the CRD
    requires one; the planner reports what it cannot build)."""
    return [
        NodeGroup(
            c.NODE_TYPE_WORKER,
            str(raw.get("groupName", "")),
            raw,
            f"spec.workerGroupSpecs[{index}]",
            index,
        )
        for index, raw in enumerate(spec_of(cluster).get("workerGroupSpecs") or [])
    ]


def annotations(cluster: Body) -> Mapping[str, str]:
    return (cluster.get("metadata") or {}).get("annotations") or {}


def autoscaling_enabled(cluster: Body) -> bool:
    return bool(spec_of(cluster).get("enableInTreeAutoscaling", False))


def cluster_suspended(cluster: Body) -> bool:
    """`suspend`, or `idleSuspend` set by Ray's autoscaler under the Suspend policy."""
    spec = spec_of(cluster)
    return bool(spec.get("suspend", False) or spec.get("idleSuspend", False))


def managed_by_us(cluster: Body) -> bool:
    return managed_by(cluster) in ("", c.MANAGED_BY_US)


def recreate_on_template_change(cluster: Body) -> bool:
    return (spec_of(cluster).get("upgradeStrategy") or {}).get("type") == "Recreate"


def autoscaler_options(cluster: Body) -> Body:
    return spec_of(cluster).get("autoscalerOptions") or {}


def autoscaler_v2(cluster: Body) -> bool:
    """autoscalerOptions.version v2 only counts while in-tree autoscaling is on."""
    return autoscaling_enabled(cluster) and autoscaler_options(cluster).get("version") == "v2"


def gcs_ft_options(cluster: Body) -> Body | None:
    return spec_of(cluster).get("gcsFaultToleranceOptions")


def gcs_ft_enabled(cluster: Body) -> bool:
    """GCS fault tolerance: `gcsFaultToleranceOptions`, or the older way of asking for
    it, the RayCluster annotation `ray.io/ft-enabled: "true"` (the user then sets
    RAY_REDIS_ADDRESS on the head container themselves)."""
    legacy = str(annotations(cluster).get(c.ANNOTATION_FT_ENABLED, "")).lower() == "true"
    return gcs_ft_options(cluster) is not None or legacy


def head_service_name(cluster: Body) -> str:
    """`headGroupSpec.headService.metadata.name` if set, else `<cluster>-head-svc`."""
    head = head_group_spec(cluster)
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
