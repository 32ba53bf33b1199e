"""Worker replicas, as KubeRay v1.6.1 counts them (feature gate RayMultiHostIndexing,
on by default since v1.6). Pure: part of the planner.

Every new worker pod gets `ray.io/worker-group-replica-index`, the lowest index its
group does not use yet. With `numOfHosts > 1` a replica is `numOfHosts` pods that
live and die together (a TPU slice, say):

- they share `ray.io/worker-group-replica-name` (`<group>-<5 random characters>`,
  chosen by the reconciler when it creates them) and the replica index, and each has
  its `ray.io/replica-host-index` 0..numOfHosts-1;
- a replica missing a host, with a finished (Failed/Succeeded) pod, or with a pod in
  `workersToDelete` is deleted whole, and replaced whole when still wanted;
- scaling adds and removes whole replicas; down (without in-tree autoscaling) the
  least useful first: one with a pod not running, then not ready, then the newest;
- with `upgradeStrategy: Recreate`, a replica with an outdated pod is replaced whole.

A worker pod of such a group without a replica name (made before the group had more
than one host, or by an older operator) cannot be part of a replica: it is deleted,
where KubeRay would ignore it and run a replica's worth of pods too many.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from . import constants as c
from .builders.meta import owner_reference
from .model import (
    REASON_FINISHED,
    REASON_INCOMPLETE_REPLICA,
    REASON_OUTDATED,
    REASON_SURPLUS,
    REASON_WORKERS_TO_DELETE,
    Plan,
    PodCreate,
    PodDelete,
    PodStamp,
)
from .observed import ObservedPod
from .spec import NodeGroup


def free_indices(used: Iterable[int | None], count: int) -> list[int]:
    """The `count` lowest indices not in `used`."""
    taken = {i for i in used if i is not None}
    out: list[int] = []
    candidate = 0
    while len(out) < count:
        if candidate not in taken:
            out.append(candidate)
        candidate += 1
    return out


def single_host_creates(
    group: NodeGroup, prototype: dict[str, Any], kept: list[ObservedPod], count: int
) -> list[PodCreate]:
    """`count` new pods of a one-host group, each with its own replica index."""
    return [
        PodCreate(
            group.name,
            prototype,
            f"{group.path}.template",
            labels=((c.LABEL_REPLICA_INDEX, str(index)),),
        )
        for index in free_indices((p.replica_index for p in kept), count)
    ]


def plan_multi_host(
    group: NodeGroup,
    pods: list[ObservedPod],
    prototype: dict[str, Any],
    wanted_hash: str | None,
    autoscaling: bool,
    result: Plan,
) -> None:
    """Deletes and creates for a group with numOfHosts > 1 (see the module doc).
    `wanted_hash` is set only under `upgradeStrategy: Recreate`."""
    hosts = group.num_of_hosts
    replicas: dict[str, list[ObservedPod]] = {}
    for pod in pods:
        if pod.replica:
            replicas.setdefault(pod.replica, []).append(pod)
        else:
            result.deletes.append(PodDelete(pod.name, group.name, REASON_INCOMPLETE_REPLICA))

    listed = set(group.workers_to_delete)
    healthy: dict[str, list[ObservedPod]] = {}
    for name, members in replicas.items():
        reason = _replica_fault(members, hosts, listed, wanted_hash)
        if reason:
            result.deletes += [PodDelete(p.name, group.name, reason) for p in members]
        else:
            healthy[name] = members
    if wanted_hash is not None:
        # KubeRay's pods (before a migration) carry no hash: adopt whole replicas by
        # stamping them, as for single-host groups, instead of restarting them.
        result.stamps += [
            PodStamp(p.name, group.name, wanted_hash)
            for members in healthy.values()
            for p in members
            if p.template_hash is None
        ]

    missing = group.clamped_replicas - len(healthy) if not group.suspended else -len(healthy)
    if missing > 0:
        used = (members[0].replica_index for members in healthy.values())
        for ordinal, index in enumerate(free_indices(used, missing)):
            result.creates += [
                PodCreate(
                    group.name,
                    prototype,
                    f"{group.path}.template",
                    labels=(
                        (c.LABEL_REPLICA_INDEX, str(index)),
                        (c.LABEL_HOST_INDEX, str(host)),
                    ),
                    new_replica=ordinal,
                )
                for host in range(hosts)
            ]
    elif missing < 0 and not autoscaling:
        for members in _scale_down_order(list(healthy.values()))[:-missing]:
            result.deletes += [PodDelete(p.name, group.name, REASON_SURPLUS) for p in members]


def _replica_fault(
    members: list[ObservedPod], hosts: int, listed: set[str], wanted_hash: str | None
) -> str | None:
    """Why the whole replica must go, or None."""
    if any(p.name in listed for p in members):
        return REASON_WORKERS_TO_DELETE
    if any(p.finished for p in members):
        return REASON_FINISHED
    if len(members) < hosts:
        return REASON_INCOMPLETE_REPLICA
    if wanted_hash is not None and any(
        p.template_hash is not None and p.template_hash != wanted_hash for p in members
    ):
        return REASON_OUTDATED
    return None


def _scale_down_order(replicas: list[list[ObservedPod]]) -> list[list[ObservedPod]]:
    """Least useful first: a pod not running, then not ready, then the newest."""
    by_newest = sorted(replicas, key=lambda m: max(p.created for p in m), reverse=True)
    return sorted(by_newest, key=lambda m: (all(p.running for p in m), all(p.ready for p in m)))


def build_headless_service(cluster: dict[str, Any]) -> dict[str, Any]:
    """`<cluster>-headless`: DNS names for every worker pod, which multi-host replicas
    use to find each other. Made when a group has numOfHosts > 1, as KubeRay does."""
    name = cluster["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": headless_service_name(name),
            "namespace": cluster["metadata"]["namespace"],
            "labels": {c.LABEL_HEADLESS_SERVICE: name},
            "ownerReferences": [owner_reference(cluster)],
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {c.LABEL_CLUSTER: name, c.LABEL_NODE_TYPE: c.NODE_TYPE_WORKER},
        },
    }


def headless_service_name(cluster_name: str) -> str:
    return f"{cluster_name}-headless"
