"""The status calculation: spec + observed children + what the last plan hit -> status.

Pure. `lastUpdateTime` changes only when something else changed, so the reconciler can
compare the result with the stored status and skip the write on a no-op resync.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from . import constants as c
from .model import Failure, Problem
from .observed import Observed, ObservedPod, choose_head
from .quantity import format_quantity, parse_quantity
from .spec import cluster_suspended, generation, head_group_spec, worker_groups

TPU_RESOURCE = "google.com/tpu"


def pod_resources(template: dict[str, Any]) -> dict[str, Decimal]:
    """What one pod asks for: per container, requests, falling back to limits per key."""
    total: dict[str, Decimal] = {}
    for container in (template.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        for key, value in merged.items():
            try:
                total[key] = total.get(key, Decimal(0)) + parse_quantity(value)
            except ValueError:
                continue  # the builders report bad quantities with the field name
    return total


def desired_resources(cluster: dict[str, Any]) -> dict[str, Decimal]:
    totals = dict(pod_resources(head_group_spec(cluster).get("template") or {}))
    for group in worker_groups(cluster):
        if group.desired_pods == 0:
            continue
        for key, value in pod_resources(group.raw.get("template") or {}).items():
            totals[key] = totals.get(key, Decimal(0)) + value * group.desired_pods
    return totals


def _sum_keys(resources: dict[str, Decimal], keys: Iterable[str], binary: bool = False) -> str:
    return format_quantity(sum((resources[k] for k in keys), Decimal(0)), binary=binary)


def _condition(type_: str, status: bool, reason: str, message: str = "") -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
    }


def compute_status(
    cluster: dict[str, Any],
    observed: Observed,
    previous: dict[str, Any] | None,
    problems: Iterable[Problem] = (),
    failures: Iterable[Failure] = (),
    now: str = "",
) -> dict[str, Any]:
    """The full status object. Conditions keep their lastTransitionTime unless their
    status flips; `now` stamps transitions and `lastUpdateTime`."""
    previous = previous or {}
    groups = worker_groups(cluster)
    suspended = cluster_suspended(cluster)
    pods = [p for p in observed.pods if not p.terminating]
    workers = [p for p in pods if not p.is_head]
    heads = [p for p in pods if p.is_head and not p.finished]
    head = choose_head(heads)

    resources = {} if suspended else desired_resources(cluster)
    gpu_keys = [k for k in resources if k.endswith("gpu")]
    desired_workers = 0 if suspended else sum(g.desired_pods for g in groups)
    status: dict[str, Any] = {
        "observedGeneration": generation(cluster),
        "desiredWorkerReplicas": desired_workers,
        "minWorkerReplicas": sum(g.min_replicas * g.num_of_hosts for g in groups),
        "maxWorkerReplicas": sum(g.max_replicas * g.num_of_hosts for g in groups),
        "readyWorkerReplicas": sum(p.running_and_ready for p in workers),
        "availableWorkerReplicas": sum(p.running for p in workers),
        "desiredCPU": _sum_keys(resources, [k for k in resources if k == "cpu"]),
        "desiredMemory": _sum_keys(resources, [k for k in resources if k == "memory"], True),
        "desiredGPU": _sum_keys(resources, gpu_keys),
        "desiredTPU": _sum_keys(resources, [k for k in resources if k == TPU_RESOURCE]),
    }

    service = observed.head_service
    if service is not None:
        status["endpoints"] = {name: str(port) for name, port in service.ports if name}
    head_info = {}
    if head is not None:
        head_info["podName"] = head.name
        if head.pod_ip:
            head_info["podIP"] = head.pod_ip
    if service is not None:
        head_info["serviceName"] = service.name
        headless = service.cluster_ip in (None, "", "None")
        service_ip = (head.pod_ip if head else None) if headless else service.cluster_ip
        if service_ip:
            head_info["serviceIP"] = service_ip
    if head_info:
        status["head"] = head_info

    all_ready = _all_ready(head, workers, desired_workers, observed.pods)
    conditions = _conditions(
        previous, head, all_ready, suspended, observed.pods, list(problems), list(failures)
    )
    state = (
        c.STATE_SUSPENDED
        if suspended and not observed.pods
        else (c.STATE_READY if all_ready and not suspended else None)
    )
    if state:
        status["state"] = state
    reason = next((x["message"] for x in conditions if x["type"] == c.COND_REPLICA_FAILURE), "")
    if reason:
        status["reason"] = reason

    transitions = dict(previous.get("stateTransitionTimes") or {})
    if state and previous.get("state") != state:
        transitions[state] = now
    if transitions:
        status["stateTransitionTimes"] = transitions
    status["conditions"] = _stamp(conditions, previous.get("conditions") or [], now)

    unchanged = {k: v for k, v in previous.items() if k != "lastUpdateTime"} == status
    status["lastUpdateTime"] = previous.get("lastUpdateTime", now) if unchanged else now
    return status


def _all_ready(
    head: ObservedPod | None,
    workers: list[ObservedPod],
    desired_workers: int,
    every_pod: Iterable[ObservedPod],
) -> bool:
    """Ready means every pod that should exist does, Running and Ready, and nothing is
    Pending or on its way out: never `ready` while a pod is still Pending."""
    if head is None or not head.running_and_ready:
        return False
    if any(not p.running_and_ready for p in every_pod):
        return False
    return sum(p.running_and_ready for p in workers) >= desired_workers


def _conditions(
    previous: dict[str, Any],
    head: ObservedPod | None,
    all_ready: bool,
    suspended: bool,
    pods: tuple[ObservedPod, ...],
    problems: list[Problem],
    failures: list[Failure],
) -> list[dict[str, Any]]:
    conditions = []
    if head is None:
        conditions.append(_condition(c.COND_HEAD_POD_READY, False, "HeadPodNotFound"))
    elif head.running_and_ready:
        conditions.append(_condition(c.COND_HEAD_POD_READY, True, "HeadPodRunningAndReady"))
    else:
        conditions.append(
            _condition(
                c.COND_HEAD_POD_READY,
                False,
                "HeadPodNotReady",
                f"head pod {head.name} is {head.phase}, not ready"
                + (f"; waiting: {head.waiting}" if head.waiting else ""),
            )
        )

    was_provisioned = any(
        x.get("type") == c.COND_PROVISIONED and x.get("status") == "True"
        for x in previous.get("conditions") or []
    )
    if was_provisioned or all_ready:
        conditions.append(
            _condition(
                c.COND_PROVISIONED,
                True,
                "AllPodRunningAndReadyFirstTime",
                "all Ray pods were Running and Ready at least once",
            )
        )
    else:
        conditions.append(
            _condition(
                c.COND_PROVISIONED,
                False,
                "RayClusterPodsProvisioning",
                "waiting for every Ray pod to be Running and Ready",
            )
        )

    if problems or failures:
        first = problems[0] if problems else None
        reason = first.reason if first else failures[0].reason
        messages = [f"{p.field}: {p.message}" for p in problems] + [f.message for f in failures]
        conditions.append(_condition(c.COND_REPLICA_FAILURE, True, reason, "; ".join(messages)))

    if suspended:
        suspending = bool(pods)
        conditions.append(
            _condition(
                c.COND_SUSPENDING,
                suspending,
                "RayClusterSuspending" if suspending else "RayClusterSuspended",
            )
        )
        conditions.append(
            _condition(
                c.COND_SUSPENDED,
                not suspending,
                "RayClusterSuspended" if not suspending else "RayClusterSuspending",
            )
        )
    return conditions


def _stamp(
    conditions: list[dict[str, Any]], previous: list[dict[str, Any]], now: str
) -> list[dict[str, Any]]:
    before = {x.get("type"): x for x in previous}
    for condition in conditions:
        old = before.get(condition["type"])
        if old and old.get("status") == condition["status"] and old.get("lastTransitionTime"):
            condition["lastTransitionTime"] = old["lastTransitionTime"]
        else:
            condition["lastTransitionTime"] = now
    return conditions


def status_changed(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    strip = lambda s: {k: v for k, v in (s or {}).items() if k != "lastUpdateTime"}  # noqa: E731
    return strip(old) != strip(new)
