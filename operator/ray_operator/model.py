"""The values passed between the planner, the status calculation and the reconciler."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Why a pod is deleted: shown in events and used by tests.
REASON_WORKERS_TO_DELETE = "WorkersToDelete"
REASON_FINISHED = "PodFinished"
REASON_SURPLUS = "ScaleDown"
REASON_SUSPEND = "Suspend"
REASON_OUTDATED = "TemplateChanged"
REASON_EXTRA_HEAD = "DuplicateHead"
REASON_INCOMPLETE_REPLICA = "IncompleteReplica"  # a host of its multi-host replica is gone


@dataclass(frozen=True, slots=True)
class PodCreate:
    group: str  # HEAD_GROUP for the head
    body: dict[str, Any]
    template_path: str = "spec.headGroupSpec.template"  # where users fix a refused pod
    # Labels this pod gets on top of the body's (replica and host indices).
    labels: tuple[tuple[str, str], ...] = ()
    # Multi-host: the pods of one new replica share this number within a plan; the
    # reconciler names the replica (randomly, as KubeRay) when it creates them.
    new_replica: int | None = None


@dataclass(frozen=True, slots=True)
class PodDelete:
    name: str
    group: str
    reason: str


@dataclass(frozen=True, slots=True)
class PodStamp:
    """A pod to keep that lacks our template hash (made by KubeRay before a migration):
    it gets the current hash by a metadata patch instead of being recreated."""

    name: str
    group: str
    template_hash: str


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with the spec that only shows at runtime: surfaced as the
    ReplicaFailure condition and a Warning event, never as a crash."""

    reason: str
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class Failure:
    """An API call of the last plan that failed (e.g. a pod create refused by quota)."""

    reason: str  # FailedCreateHeadPod, FailedCreateWorkerPod, FailedDeleteWorkerPod, ...
    message: str


@dataclass
class Plan:
    creates: list[PodCreate] = field(default_factory=list)
    deletes: list[PodDelete] = field(default_factory=list)
    stamps: list[PodStamp] = field(default_factory=list)
    # Children that must exist: the head Service when it is missing, then the autoscaler
    # ServiceAccount, Role and RoleBinding, in that order (each is bound to the one
    # before, so the reconciler stops at the first it cannot vouch for).
    ensure: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # A finalizer the RayCluster must carry first (GCS fault tolerance: teardown.py).
    add_finalizer: str | None = None
