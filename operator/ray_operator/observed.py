"""Slim views of the children we observe. The reconciler keeps only these, never whole
pods: a 200-pod cluster costs a few hundred bytes per pod in memory."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import constants as c

TERMINAL_PHASES = frozenset({"Failed", "Succeeded"})


@dataclass(frozen=True, slots=True)
class ObservedPod:
    name: str
    node_type: str  # "head" or "worker"
    group: str
    phase: str
    ready: bool
    terminating: bool
    pod_ip: str | None
    template_hash: str | None
    created: str  # RFC 3339, sorts chronologically
    # Why a container is not running, e.g. "autoscaler: ImagePullBackOff (...)"; only
    # the first such container, enough to tell users what to fix.
    waiting: str = ""
    # The uid of the controlling owner. Only pods controlled by the RayCluster count as
    # its pods: a label can be written by anyone, an ownerReference only on purpose.
    owner_uid: str | None = None
    # Multi-host replicas: the replica's name ("" outside one) and index in its group.
    replica: str = ""
    replica_index: int | None = None

    @classmethod
    def from_dict(cls, pod: dict[str, Any]) -> ObservedPod:
        meta, status = pod.get("metadata", {}), pod.get("status") or {}
        labels = meta.get("labels") or {}
        conditions = status.get("conditions") or []
        return cls(
            name=meta["name"],
            node_type=labels.get(c.LABEL_NODE_TYPE, ""),
            group=labels.get(c.LABEL_GROUP, ""),
            phase=status.get("phase") or "Pending",
            ready=any(x.get("type") == "Ready" and x.get("status") == "True" for x in conditions),
            terminating=meta.get("deletionTimestamp") is not None,
            pod_ip=status.get("podIP"),
            template_hash=(meta.get("annotations") or {}).get(c.ANNOTATION_TEMPLATE_HASH),
            created=meta.get("creationTimestamp") or "",
            waiting=_first_waiting(status),
            owner_uid=controller_uid(meta),
            replica=labels.get(c.LABEL_REPLICA_NAME, ""),
            replica_index=_int_label(labels.get(c.LABEL_REPLICA_INDEX)),
        )

    @property
    def is_head(self) -> bool:
        return self.node_type == c.NODE_TYPE_HEAD

    @property
    def running(self) -> bool:
        return self.phase == "Running" and not self.terminating

    @property
    def running_and_ready(self) -> bool:
        return self.running and self.ready

    @property
    def finished(self) -> bool:
        """Failed or Succeeded: the container is gone for good and must be replaced."""
        return self.phase in TERMINAL_PHASES


def _int_label(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


def controller_uid(meta: dict[str, Any]) -> str | None:
    """The uid in the object's controller ownerReference, if it has one."""
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid")
    return None


def cluster_key(obj: dict[str, Any]) -> tuple[str, str] | None:
    """The RayCluster a child belongs to, from its `ray.io/cluster` label."""
    meta = obj.get("metadata") or {}
    name = (meta.get("labels") or {}).get(c.LABEL_CLUSTER)
    namespace = meta.get("namespace")
    return (namespace, name) if namespace and name else None


def choose_head(heads: Iterable[ObservedPod]) -> ObservedPod | None:
    """The one head pod that counts when there are several (e.g. after a crash between
    a create and its record): ready first, then the oldest, then by name. The planner
    keeps this one and the status reports it, so the two can never disagree."""
    return min(heads, key=lambda p: (not p.running_and_ready, p.created, p.name), default=None)


def _first_waiting(status: dict[str, Any]) -> str:
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            text = f"{container.get('name')}: {waiting['reason']}"
            message = (waiting.get("message") or "")[:200]
            return f"{text} ({message})" if message else text
    return ""


@dataclass(frozen=True, slots=True)
class ObservedService:
    name: str
    cluster_ip: str | None
    # (name, endpoint) per port: what `status.endpoints` reports, see `endpoint`.
    ports: tuple[tuple[str, int | str], ...]
    owner_uid: str | None = None
    # which version was read: its own watch event is no news (not part of equality)
    resource_version: str | None = field(default=None, compare=False)

    @classmethod
    def from_dict(cls, svc: dict[str, Any]) -> ObservedService:
        spec = svc.get("spec") or {}
        return cls(
            name=svc["metadata"]["name"],
            cluster_ip=spec.get("clusterIP"),
            ports=tuple((p.get("name", ""), endpoint(p)) for p in spec.get("ports") or []),
            owner_uid=controller_uid(svc["metadata"]),
            resource_version=svc["metadata"].get("resourceVersion"),
        )


def endpoint(port: dict[str, Any]) -> int | str:
    """Where a client reaches a Service port, as KubeRay reports it: the node port
    (NodePort and LoadBalancer Services allocate one), else the target port (a number,
    or a container port's name), else the port."""
    if port.get("nodePort"):
        return int(port["nodePort"])
    target = port.get("targetPort")
    if isinstance(target, int) and target:
        return target
    if isinstance(target, str) and target:
        return int(target) if target.isdigit() else target
    return int(port["port"])


JOB_COMPLETE = "Complete"
JOB_FAILED = "Failed"


@dataclass(frozen=True, slots=True)
class ObservedJob:
    """A Redis cleanup Job: whose it is and whether it has finished."""

    name: str
    owner_uid: str | None
    outcome: str | None  # JOB_COMPLETE, JOB_FAILED, or None while it runs
    message: str = ""  # why it failed, from the Job's condition

    @classmethod
    def from_dict(cls, job: dict[str, Any]) -> ObservedJob:
        outcome, message = None, ""
        for cond in (job.get("status") or {}).get("conditions") or []:
            if cond.get("status") != "True":
                continue
            kind = cond.get("type")
            # FailureTarget: the Job controller has decided the Job failed and is only
            # waiting for its pods to end (KubeRay v1.6.2 counts it as failed too).
            if kind in ("Failed", "FailureTarget"):
                outcome = JOB_FAILED
                message = " ".join(x for x in (cond.get("reason"), cond.get("message")) if x)
            elif kind in ("Complete", "SuccessCriteriaMet") and outcome is None:
                outcome = JOB_COMPLETE
        return cls(job["metadata"]["name"], controller_uid(job["metadata"]), outcome, message)


@dataclass(frozen=True, slots=True)
class Observed:
    """Everything one reconcile looked at, besides the RayCluster itself: only children
    the RayCluster controls (see `owned_by`)."""

    pods: tuple[ObservedPod, ...] = ()
    head_service: ObservedService | None = None
    # A Service with the head Service's name that this cluster does not control.
    foreign_head_service: str | None = None
    # Looked up for the planner, None where nothing was looked up: does the head
    # template's own service account exist (in-tree autoscaling); does the Secret
    # `authOptions.secretName` exist, and which keys does it hold (never the values).
    head_service_account_exists: bool | None = None
    auth_secret_found: bool | None = None
    auth_secret_keys: frozenset[str] = frozenset()


def owned_by(
    uid: str, pods: Iterable[ObservedPod], service: ObservedService | None
) -> tuple[Observed, list[ObservedPod]]:
    """Split what the label selector found into the cluster's own children and
    strangers that merely carry its labels: those are never counted, deleted or
    reported as the cluster's own. Returns (what is owned, the foreign pods)."""
    pods = list(pods)
    own = tuple(p for p in pods if p.owner_uid == uid)
    foreign = [p for p in pods if p.owner_uid != uid]
    if service is not None and service.owner_uid != uid:
        return Observed(own, None, foreign_head_service=service.name), foreign
    return Observed(own, service), foreign
