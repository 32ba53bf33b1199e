"""The planner: RayCluster spec + observed children -> what to create and delete.

Pure: no I/O, no clock. The reconciler executes the plan; the status module describes
the result. The rules follow the RayCluster API (docs/behaviour.md, Reconciliation):

- a missing head pod is created; Failed/Succeeded pods are deleted and replaced;
- per group, pods named in `scaleStrategy.workersToDelete` are deleted (the list itself
  is never edited here: Ray's autoscaler clears it once the pods are gone);
- missing pods are created up to the clamped `replicas` x `numOfHosts`;
- surplus pods are deleted only without in-tree autoscaling (with it, choosing victims
  races the autoscaler and kills busy workers); more pods than `maxReplicas` allows is
  then reported, and Ray's autoscaler removes them;
- with in-tree autoscaling, a group whose CPU count Ray's autoscaler cannot derive is
  reported (the autoscaler fails on every cycle for the whole cluster);
- `authOptions` that Ray cannot honour are refused before anything is done, and the
  token Secret is ensured first (builders/auth.py);
- a GCS fault-tolerant cluster gets the Redis cleanup finalizer (teardown.py plans
  its deletion);
- suspend (cluster or group) deletes the pods; `upgradeStrategy: Recreate` replaces
  pods whose template hash is out of date, and stamps pods that have none (adopted
  from KubeRay) with the current one instead of replacing them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from . import constants as c
from . import replicas
from .builders import auth
from .builders.ingress import build_head_ingress, wants_ingress
from .errors import InvalidSpecError
from .model import (  # why a pod is deleted: shown in events and used by tests
    REASON_EXTRA_HEAD,
    REASON_FINISHED,
    REASON_OUTDATED,
    REASON_SURPLUS,
    REASON_SUSPEND,
    REASON_WORKERS_TO_DELETE,
    Plan,
    PodCreate,
    PodDelete,
    PodStamp,
    Problem,
)
from .observed import Observed, ObservedPod, choose_head
from .spec import (
    NodeGroup,
    autoscaling_enabled,
    cluster_namespace,
    cluster_suspended,
    head_group_spec,
    head_pod_spec,
    recreate_on_template_change,
    worker_groups,
)
from .teardown import finalizer_to_add


@dataclass(frozen=True)
class Builders:
    """The builder functions the planner uses (injected so tests can count calls)."""

    head_pod: Callable[[dict[str, Any]], dict[str, Any]]
    worker_pod: Callable[[dict[str, Any], int], dict[str, Any]]
    head_service: Callable[[dict[str, Any]], dict[str, Any]]
    autoscaler_rbac: Callable[[dict[str, Any]], list[dict[str, Any]]]
    redis_cleanup_job: Callable[[dict[str, Any]], dict[str, Any]]


def default_builders() -> Builders:
    from .builders.autoscaler import build_autoscaler_rbac
    from .builders.pod import build_head_pod, build_worker_pod
    from .builders.redis_cleanup import build_redis_cleanup_job
    from .builders.service import build_head_service

    return Builders(
        build_head_pod,
        build_worker_pod,
        build_head_service,
        build_autoscaler_rbac,
        build_redis_cleanup_job,
    )


def template_hash(pod: dict[str, Any]) -> str | None:
    return (pod.get("metadata", {}).get("annotations") or {}).get(c.ANNOTATION_TEMPLATE_HASH)


def plan(
    cluster: dict[str, Any],
    observed: Observed,
    builders: Builders,
    max_pods_per_cluster: int = 10_000,
    redis_cleanup: bool = True,
) -> Plan:
    result = Plan(add_finalizer=finalizer_to_add(cluster, redis_cleanup))
    alive = [p for p in observed.pods if not p.terminating]

    if cluster_suspended(cluster):
        result.deletes += [PodDelete(p.name, p.group, REASON_SUSPEND) for p in alive]
        return result

    invalid_auth = auth.problems(cluster)
    if invalid_auth:
        # KubeRay refuses such a spec whole; pods without working auth must not start.
        result.problems += [Problem("InvalidAuthOptions", f, m) for f, m in invalid_auth]
        return result
    if auth.wants_generated_secret(cluster):
        # First: the pods read their token from it.
        result.ensure.append(auth.build_auth_secret(cluster))

    try:
        head_pod = builders.head_pod(cluster)
        service = builders.head_service(cluster)
        if observed.foreign_head_service:
            result.problems.append(head_service_taken(observed.foreign_head_service))
        elif observed.head_service is None:
            result.ensure.append(service)
        if any(g.num_of_hosts > 1 for g in worker_groups(cluster)):
            result.ensure.append(replicas.build_headless_service(cluster))
        if autoscaling_enabled(cluster):
            result.ensure += builders.autoscaler_rbac(cluster)
    except InvalidSpecError as err:
        result.problems.append(Problem("InvalidHeadGroupSpec", err.field, err.message))
        return result  # without a valid head nothing else can work
    if wants_ingress(cluster):
        result.ensure.append(build_head_ingress(cluster))
    _check_head_service_account(cluster, observed, result)
    _check_auth_secret(cluster, observed, result)

    heads = [p for p in alive if p.is_head]
    if recreate_on_template_change(cluster):
        _stamp_adopted(heads, c.HEAD_GROUP, template_hash(head_pod), result)
    outdated_head = recreate_on_template_change(cluster) and any(
        _outdated(p, template_hash(head_pod)) for p in heads if not p.finished
    )
    if outdated_head:
        # A new head means a new Ray cluster: every worker must rejoin it.
        result.deletes += [PodDelete(p.name, p.group, REASON_OUTDATED) for p in alive]
        return result
    _plan_head(heads, head_pod, result)

    groups = worker_groups(cluster)
    total_desired = 1 + sum(g.desired_pods for g in groups)
    if total_desired > max_pods_per_cluster:
        biggest = max(groups, key=lambda g: g.desired_pods)
        result.problems.append(
            Problem(
                "TooManyPods",
                f"{biggest.path}.replicas",
                f"the cluster asks for {total_desired} pods, more than this operator's limit of "
                f"{max_pods_per_cluster} per cluster (--max-pods-per-cluster); lower replicas "
                "or maxReplicas, or raise the limit",
            )
        )
        return result

    autoscaling = autoscaling_enabled(cluster)
    if autoscaling:
        _check_cpu_for_autoscaler(cluster, groups, result)
    group_names = {g.name for g in groups}
    for group in groups:
        pods = [p for p in alive if not p.is_head and p.group == group.name]
        _plan_group(cluster, group, pods, autoscaling, builders, result)
        _check_replicas_range(group, result)
        _check_workers_to_delete(group, observed.pods, result)

    # Workers of groups that no longer exist in the spec are removed.
    for p in alive:
        if not p.is_head and p.group not in group_names:
            result.deletes.append(PodDelete(p.name, p.group, REASON_SURPLUS))
    return result


def _plan_head(heads: list[ObservedPod], head_pod: dict[str, Any], result: Plan) -> None:
    finished = [p for p in heads if p.finished]
    result.deletes += [PodDelete(p.name, c.HEAD_GROUP, REASON_FINISHED) for p in finished]
    live = [p for p in heads if not p.finished]
    if not live:
        result.creates.append(PodCreate(c.HEAD_GROUP, head_pod))
        return
    # More than one head (e.g. created by a second operator replica): keep the best.
    keep = choose_head(live)
    result.deletes += [
        PodDelete(p.name, c.HEAD_GROUP, REASON_EXTRA_HEAD) for p in live if p is not keep
    ]


def _plan_group(
    cluster: dict[str, Any],
    group: NodeGroup,
    pods: list[ObservedPod],
    autoscaling: bool,
    builders: Builders,
    result: Plan,
) -> None:
    if group.suspended:
        result.deletes += [PodDelete(p.name, group.name, REASON_SUSPEND) for p in pods]
        return
    try:
        prototype = builders.worker_pod(cluster, group.index)
    except InvalidSpecError as err:
        result.problems.append(Problem("InvalidWorkerGroupSpec", err.field, err.message))
        return

    if group.num_of_hosts > 1:
        wanted = template_hash(prototype) if recreate_on_template_change(cluster) else None
        if autoscaling:
            _check_max_replicas(group, [p for p in pods if not p.finished], result)
        replicas.plan_multi_host(group, pods, prototype, wanted, autoscaling, result)
        return

    listed = set(group.workers_to_delete)
    remaining: list[ObservedPod] = []
    for p in pods:
        if p.name in listed:
            result.deletes.append(PodDelete(p.name, group.name, REASON_WORKERS_TO_DELETE))
        elif p.finished:
            result.deletes.append(PodDelete(p.name, group.name, REASON_FINISHED))
        else:
            remaining.append(p)

    if autoscaling:
        _check_max_replicas(group, remaining, result)

    if recreate_on_template_change(cluster):
        wanted_hash = template_hash(prototype)
        _stamp_adopted(remaining, group.name, wanted_hash, result)
        outdated = [p for p in remaining if _outdated(p, wanted_hash)]
        result.deletes += [PodDelete(p.name, group.name, REASON_OUTDATED) for p in outdated]
        remaining = [p for p in remaining if not _outdated(p, wanted_hash)]

    missing = group.desired_pods - len(remaining)
    if missing > 0:
        # Pods use generateName, so one body serves every copy.
        result.creates += replicas.single_host_creates(group, prototype, remaining, missing)
    elif missing < 0 and not autoscaling:
        for p in _scale_down_order(remaining)[:-missing]:
            result.deletes.append(PodDelete(p.name, group.name, REASON_SURPLUS))


def _outdated(pod: ObservedPod, wanted_hash: str | None) -> bool:
    """Made from another template: it has a hash, and not the wanted one. A pod
    without any hash is adopted (stamped) instead."""
    return pod.template_hash is not None and pod.template_hash != wanted_hash


def _stamp_adopted(
    pods: list[ObservedPod], group: str, wanted_hash: str | None, result: Plan
) -> None:
    """Pods without our hash, made by KubeRay before a migration (its pods carry none):
    restarting them would kill the running Ray cluster, so they get the current hash
    and count as up to date, as KubeRay counts its own pods."""
    if wanted_hash is None:
        return
    result.stamps += [PodStamp(p.name, group, wanted_hash) for p in pods if p.template_hash is None]


def head_service_taken(name: str) -> Problem:
    return Problem(
        "HeadServiceConflict",
        "metadata.name",
        f"Service {name!r} exists but is not controlled by this RayCluster, so the "
        "operator neither adopts nor replaces it and the cluster has no head Service: "
        "delete that Service, or give the RayCluster another name",
    )


def _check_head_service_account(cluster: dict[str, Any], observed: Observed, result: Plan) -> None:
    """With in-tree autoscaling and a service account named in the head template, the
    operator creates no RBAC (the account's owner grants it) and the account must
    exist: the head pod cannot be created without it, and Ray's autoscaler runs as it."""
    if observed.head_service_account_exists is not False:
        return
    pod_spec = head_pod_spec(cluster)
    field = "serviceAccountName" if pod_spec.get("serviceAccountName") else "serviceAccount"
    name = pod_spec.get(field)
    result.problems.append(
        Problem(
            "ServiceAccountNotFound",
            f"spec.headGroupSpec.template.spec.{field}",
            f"service account {name!r} does not exist in namespace "
            f"{cluster_namespace(cluster)!r}: the head pod cannot be created until it "
            "does, and Ray's autoscaler runs as it; create it and grant it what the "
            "autoscaler uses (pods get, list, watch, patch; pods/resize patch; "
            "rayclusters get, patch)",
        )
    )


def _check_auth_secret(cluster: dict[str, Any], observed: Observed, result: Plan) -> None:
    """`authOptions.secretName` must exist and hold the token, or every Ray pod stays
    unstarted (its env cannot be resolved)."""
    name = auth.user_secret(cluster)
    field = "spec.authOptions.secretName"
    if observed.auth_secret_found is False:
        result.problems.append(
            Problem(
                "AuthSecretNotFound",
                field,
                f"Secret {name!r} does not exist in namespace {cluster_namespace(cluster)!r}: "
                f"Ray pods cannot start until it does; create it with key {auth.TOKEN_KEY!r}, "
                "or remove secretName to have one generated",
            )
        )
    elif observed.auth_secret_found and auth.TOKEN_KEY not in observed.auth_secret_keys:
        result.problems.append(
            Problem(
                "AuthSecretKeyMissing",
                field,
                f"Secret {name!r} has no key {auth.TOKEN_KEY!r}: Ray pods cannot start until "
                f"it does; put the token under {auth.TOKEN_KEY!r}",
            )
        )


def _check_replicas_range(group: NodeGroup, result: Plan) -> None:
    """`replicas` outside [minReplicas, maxReplicas] is clamped (as KubeRay does);
    say so rather than let the status disagree with the spec in silence."""
    if group.suspended or group.replicas == group.clamped_replicas:
        return
    bound = "maxReplicas" if group.replicas > group.max_replicas else "minReplicas"
    result.problems.append(
        Problem(
            "ReplicasOutOfRange",
            f"{group.path}.replicas",
            f"group {group.name!r} asks for replicas {group.replicas}, outside "
            f"[minReplicas {group.min_replicas}, maxReplicas {group.max_replicas}]: "
            f"{group.clamped_replicas} kept; set replicas within the range or change {bound}",
        )
    )


def _scale_down_order(pods: Iterable[ObservedPod]) -> list[ObservedPod]:
    """Least useful first: not running, then not ready, then the newest."""
    by_newest = sorted(pods, key=lambda p: (p.created, p.name), reverse=True)
    return sorted(by_newest, key=lambda p: (p.running, p.ready))


def _check_max_replicas(group: NodeGroup, pods: list[ObservedPod], result: Plan) -> None:
    """More pods than maxReplicas allows (it was lowered): with in-tree autoscaling the
    operator picks no victims, Ray's autoscaler removes the surplus through
    workersToDelete. Listed and finished pods are not counted."""
    allowed = group.max_replicas * group.num_of_hosts
    if group.suspended or len(pods) <= allowed:
        return
    hosts = f" x numOfHosts {group.num_of_hosts}" if group.num_of_hosts > 1 else ""
    result.problems.append(
        Problem(
            "PodsAboveMaxReplicas",
            f"{group.path}.maxReplicas",
            f"group {group.name!r} has {len(pods)} pods, more than maxReplicas "
            f"{group.max_replicas}{hosts} allows; with in-tree autoscaling the operator "
            "does not choose which to remove: Ray's autoscaler lists the surplus in "
            "scaleStrategy.workersToDelete and the operator then deletes those pods",
        )
    )


def _check_cpu_for_autoscaler(
    cluster: dict[str, Any], groups: list[NodeGroup], result: Plan
) -> None:
    """Ray's autoscaler derives every group's CPU count, head included, from the
    group's `resources.CPU`, `rayStartParams["num-cpus"]`, or container 0's cpu limit
    or request, in that order (`autoscaling_config.py`). Without any it raises on every
    cycle and scales nothing, for the whole cluster."""
    entries = [("spec.headGroupSpec", "the head group", head_group_spec(cluster))]
    entries += [(g.path, f"group {g.name!r}", g.raw) for g in groups]
    for path, what, raw in entries:
        if (raw.get("resources") or {}).get("CPU") is not None:
            continue
        if (raw.get("rayStartParams") or {}).get("num-cpus") is not None:
            continue
        containers = ((raw.get("template") or {}).get("spec") or {}).get("containers") or []
        if not containers:
            continue  # reported by the builders
        resources = containers[c.RAY_CONTAINER_INDEX].get("resources") or {}
        if any(
            (resources.get(kind) or {}).get("cpu") is not None for kind in ("limits", "requests")
        ):
            continue
        result.problems.append(
            Problem(
                "AutoscalerCannotDeriveCPU",
                f"{path}.template.spec.containers[{c.RAY_CONTAINER_INDEX}].resources",
                f"Ray's autoscaler cannot tell how many CPUs {what} has and stops scaling "
                "the whole cluster: set a cpu limit or request on the Ray container, "
                'rayStartParams["num-cpus"], or resources.CPU',
            )
        )


def _check_workers_to_delete(group: NodeGroup, pods: Iterable[ObservedPod], result: Plan) -> None:
    """A listed pod that belongs to another group of this cluster is never deleted on
    this group's behalf; say so. (Pods of other clusters are never observed at all.)"""
    others = {p.name: p.group for p in pods if p.group != group.name}
    for name in group.workers_to_delete:
        if name in others:
            result.problems.append(
                Problem(
                    "InvalidWorkersToDelete",
                    f"{group.path}.scaleStrategy.workersToDelete",
                    f"pod {name} belongs to group {others[name]!r}, not {group.name!r}; it is "
                    "left running: list it under its own group",
                )
            )
