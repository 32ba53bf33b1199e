"""Read a RayCluster's spec with the API's defaults applied.

The API server applies the CRD defaults, but the operator also sees objects written
before a default existed and tests build bodies by hand, so every read goes through
these accessors instead of indexing the dict directly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import constants as c


@dataclass(frozen=True, slots=True)
class GroupSpec:
    index: int
    name: str
    replicas: int
    min_replicas: int
    max_replicas: int
    num_of_hosts: int
    suspended: bool
    workers_to_delete: tuple[str, ...]
    raw: dict[str, Any]

    @property
    def path(self) -> str:
        return f"spec.workerGroupSpecs[{self.index}]"

    @property
    def clamped_replicas(self) -> int:
        """`replicas` clamped into [minReplicas, maxReplicas] (max wins if min > max)."""
        return max(0, min(max(self.replicas, self.min_replicas), self.max_replicas))

    @property
    def desired_pods(self) -> int:
        return 0 if self.suspended else self.clamped_replicas * self.num_of_hosts


def _int(value: Any, default: int) -> int:
    return default if value is None else int(value)


def worker_groups(cluster: dict[str, Any]) -> list[GroupSpec]:
    groups = []
    for index, raw in enumerate(cluster.get("spec", {}).get("workerGroupSpecs") or []):
        strategy = raw.get("scaleStrategy") or {}
        groups.append(
            GroupSpec(
                index=index,
                name=raw.get("groupName", ""),
                replicas=_int(raw.get("replicas"), 0),
                min_replicas=_int(raw.get("minReplicas"), 0),
                max_replicas=_int(raw.get("maxReplicas"), c.DEFAULT_MAX_REPLICAS),
                num_of_hosts=max(1, _int(raw.get("numOfHosts"), 1)),
                suspended=bool(raw.get("suspend", False)),
                workers_to_delete=tuple(strategy.get("workersToDelete") or ()),
                raw=raw,
            )
        )
    return groups


def autoscaling_enabled(cluster: dict[str, Any]) -> bool:
    return bool(cluster.get("spec", {}).get("enableInTreeAutoscaling", False))


def cluster_suspended(cluster: dict[str, Any]) -> bool:
    """`suspend`, or `idleSuspend` set by Ray's autoscaler under the Suspend policy."""
    spec = cluster.get("spec", {})
    return bool(spec.get("suspend", False) or spec.get("idleSuspend", False))


def managed_by_us(cluster: dict[str, Any]) -> bool:
    return cluster.get("spec", {}).get("managedBy") in (None, "", c.MANAGED_BY_US)


def recreate_on_template_change(cluster: dict[str, Any]) -> bool:
    return (cluster.get("spec", {}).get("upgradeStrategy") or {}).get("type") == "Recreate"
