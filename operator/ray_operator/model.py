"""The values passed between the planner, the status calculation and the reconciler."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class PodCreate:
    group: str  # HEAD_GROUP for the head
    body: dict[str, Any]
    template_path: str = "spec.headGroupSpec.template"  # where users fix a refused pod


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
