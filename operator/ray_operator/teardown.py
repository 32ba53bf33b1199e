"""The planner for a RayCluster being deleted: which pods to delete, whether to create
the Redis cleanup Job, which finalizers to remove and why (docs/behaviour.md, GCS
fault tolerance). Pure: the clock is an argument; the reconciler acts on the result.

Two finalizers are honoured, each only if present:

- `ray.io/idle-termination-cleanup-finalizer` (Ray's autoscaler, idle policy Delete):
  removed once the cluster's pods are gone;
- `ray.io/gcs-ft-redis-cleanup-finalizer` (added by this operator or by KubeRay to a
  GCS fault-tolerant cluster): once no head pod is left (a live GCS would write its
  keys back), a cleanup Job deletes the storage namespace's keys from Redis; the
  finalizer goes when the Job has Completed or Failed (a Warning names the namespace
  to clean by hand), or when `ray.io/gcs-ft-deletion-timeout` seconds (default 300)
  have passed since the delete, whatever the Job does. A cluster whose cleanup cannot
  run at all (fault tolerance switched off since, the cleanup disabled in the
  operator, a head spec no Job can be built from) loses the finalizer at once, with an
  event saying what is left in Redis.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from . import constants as c
from . import spec as g
from .builders.env import external_storage_namespace
from .errors import InvalidSpecError
from .model import PodDelete
from .observed import JOB_COMPLETE, JOB_FAILED, ObservedJob, ObservedPod

REASON_CLUSTER_DELETED = "ClusterDeleted"
HEAD_GONE_RECHECK = 10.0  # seconds; pod deletions also wake the cluster (childwatch)


@dataclass(frozen=True, slots=True)
class Note:
    """An event to post once the step it explains has been done."""

    type: str  # "Normal" or "Warning"
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Removal:
    finalizer: str
    note: Note | None = None


@dataclass
class Teardown:
    deletes: list[PodDelete] = field(default_factory=list)
    create_job: dict[str, Any] | None = None
    removals: list[Removal] = field(default_factory=list)
    requeue: float | None = None  # seconds until this cluster must be looked at again


def finalizer_to_add(cluster: dict[str, Any], redis_cleanup: bool) -> str | None:
    """The GCS FT finalizer, for a fault-tolerant cluster that lacks it."""
    present = (cluster.get("metadata") or {}).get("finalizers") or []
    wanted = redis_cleanup and g.gcs_ft_enabled(cluster)
    if wanted and c.GCS_FT_REDIS_CLEANUP_FINALIZER not in present:
        return c.GCS_FT_REDIS_CLEANUP_FINALIZER
    return None


def deletion_timeout(cluster: dict[str, Any]) -> int:
    """`ray.io/gcs-ft-deletion-timeout` in seconds if a positive integer, else 300."""
    text = str(g.annotations(cluster).get(c.ANNOTATION_GCS_FT_DELETION_TIMEOUT, "")).strip()
    if text.isdigit() and int(text) > 0:
        return int(text)
    return c.DEFAULT_GCS_FT_DELETION_TIMEOUT_SECONDS


def _seconds(rfc3339: str) -> float:
    return dt.datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def plan_teardown(
    cluster: dict[str, Any],
    pods: Iterable[ObservedPod],
    jobs: Iterable[ObservedJob],
    now: float,
    redis_cleanup: bool,
    build_job: Callable[[dict[str, Any]], dict[str, Any]],
) -> Teardown:
    """`pods` and `jobs` are the cluster's own (controlled by it); `now` is epoch seconds."""
    meta = cluster["metadata"]
    finalizers = meta.get("finalizers") or []
    result = Teardown()
    idle = c.IDLE_TERMINATION_FINALIZER in finalizers
    gcs = c.GCS_FT_REDIS_CLEANUP_FINALIZER in finalizers
    if not (idle or gcs):
        return result
    pods = list(pods)
    result.deletes = [
        PodDelete(p.name, p.group, REASON_CLUSTER_DELETED) for p in pods if not p.terminating
    ]
    if idle:
        if pods:
            result.requeue = 1.0
        else:
            result.removals.append(Removal(c.IDLE_TERMINATION_FINALIZER))
    if gcs:
        _plan_redis_cleanup(cluster, pods, list(jobs), now, redis_cleanup, build_job, result)
    return result


def _plan_redis_cleanup(
    cluster: dict[str, Any],
    pods: list[ObservedPod],
    jobs: list[ObservedJob],
    now: float,
    redis_cleanup: bool,
    build_job: Callable[[dict[str, Any]], dict[str, Any]],
    result: Teardown,
) -> None:
    storage = external_storage_namespace(cluster)
    by_hand = (
        f"Redis storage namespace {storage!r} may still hold this cluster's GCS state: "
        f"delete its keys (RAY{storage}@*) by hand"
    )

    def remove(type_: str, reason: str, message: str) -> None:
        result.removals.append(
            Removal(c.GCS_FT_REDIS_CLEANUP_FINALIZER, Note(type_, reason, message))
        )

    if not redis_cleanup:
        remove("Warning", "RedisCleanupDisabled",
               f"Redis cleanup is disabled in this operator; {by_hand}")  # fmt: skip
        return
    if not g.gcs_ft_enabled(cluster):
        remove("Normal", "RedisCleanupSkipped",
               "GCS fault tolerance is not enabled on this RayCluster: nothing to clean "
               "up in Redis")  # fmt: skip
        return
    timeout = deletion_timeout(cluster)
    waited = now - _seconds(cluster["metadata"]["deletionTimestamp"])
    if waited >= timeout:
        remove("Warning", "ForceDeletedStuckCluster",
               f"Removed finalizer {c.GCS_FT_REDIS_CLEANUP_FINALIZER} {waited:.0f}s after the "
               f"delete ({c.ANNOTATION_GCS_FT_DELETION_TIMEOUT}: {timeout}s) without a "
               f"finished Redis cleanup; {by_hand}")  # fmt: skip
        return
    left = timeout - waited + 0.5  # looked at again just after the deadline
    if any(p.is_head for p in pods):
        # The GCS must be gone first: a live one writes its keys back.
        result.requeue = _sooner(result.requeue, min(left, HEAD_GONE_RECHECK))
        return
    finished = [j for j in jobs if j.outcome is not None]
    failed = [j for j in finished if j.outcome == JOB_FAILED]
    if failed:
        job = failed[0]
        detail = f" ({job.message})" if job.message else ""
        remove("Warning", "RedisCleanupFailed",
               f"Redis cleanup Job {job.name} failed{detail}; {by_hand}")  # fmt: skip
        return
    if any(j.outcome == JOB_COMPLETE for j in finished):
        done = next(j for j in finished if j.outcome == JOB_COMPLETE)
        remove("Normal", "RedisCleanupCompleted",
               f"Redis cleanup Job {done.name} deleted storage namespace {storage!r}")  # fmt: skip
        return
    if not jobs:
        try:
            result.create_job = build_job(cluster)
        except InvalidSpecError as err:
            remove("Warning", "FailedToCreateRedisCleanupJob",
                   f"no cleanup Job can be built from {err.field}: {err.message}; "
                   f"{by_hand}")  # fmt: skip
            return
    # The Job watch wakes the cluster when the Job finishes; the deadline bounds the wait.
    result.requeue = _sooner(result.requeue, left)


def _sooner(a: float | None, b: float) -> float:
    return b if a is None else min(a, b)
