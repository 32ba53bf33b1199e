"""One reconcile of one RayCluster: observe, plan, act, report.

The imperative shell around the pure planner and status calculation. Level-triggered:
whatever event woke it, it reads the current RayCluster and its pods (a consistent
read, so a restart after a crash sees every pod created before it) and converges.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from kubernetes.client.rest import ApiException

from . import constants as c
from . import metrics
from .builders.autoscaler import head_service_account
from .builders.names import head_service_name
from .kube import KubeApi, now_rfc3339
from .observed import Observed
from .planner import Builders, Plan, PodCreate, PodDelete, Problem, default_builders, plan
from .spec import autoscaling_enabled, managed_by_us
from .status import Failure, compute_status, status_changed

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class ReconcilerConfig:
    api_threads: int = 16  # concurrent API calls per operator
    max_creates_per_pass: int = 250  # bounded work per pass keeps clusters fair
    max_pods_per_cluster: int = 10_000
    retry_after_failure: float = 5.0


class Reconciler:
    def __init__(
        self,
        api: KubeApi,
        config: ReconcilerConfig | None = None,
        builders: Builders | None = None,
    ) -> None:
        self.api = api
        self.config = config or ReconcilerConfig()
        self.builders = builders or default_builders()
        self.states: dict[str, str] = {}  # "ns/name" -> status.state, for the metrics
        # Per cluster key, (uid, kind, name) of RBAC children known to exist: each is
        # checked once per process, not on every reconcile.
        self._ensured: dict[tuple[str, str], set[tuple[str | None, str, str]]] = {}
        self._pool = ThreadPoolExecutor(self.config.api_threads, thread_name_prefix="kube")
        # Per cluster key, the resourceVersion our last status write produced, and the
        # versions of RayCluster events that arrived while a status write was in flight.
        self._own_writes: dict[tuple[str, str], str] = {}
        self._during_write: dict[tuple[str, str], list[str | None]] = {}

    def is_own_write(self, key: tuple[str, str], resource_version: str | None) -> bool:
        """True for the watch event of our own status write: the pass that wrote it saw
        everything the new version holds, so it needs no pass of its own (KubeRay skips
        status-only updates with a generation predicate; this is narrower). Call it on
        the event loop: an event that arrives before the write returns is held until
        the write's version is known."""
        if key in self._during_write:
            self._during_write[key].append(resource_version)
            return True
        return resource_version is not None and self._own_writes.get(key) == resource_version

    async def _write_status(self, key: tuple[str, str], status: dict[str, Any]) -> bool:
        """Write the status; True if another writer's event arrived meanwhile."""
        self._during_write[key] = []
        try:
            version = await self._call(self.api.replace_status, *key, status)
        finally:
            during = self._during_write.pop(key)
        self._own_writes[key] = version
        return any(seen != version for seen in during)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def reconcile(self, key: tuple[str, str]) -> float | None:
        """Returns seconds until this cluster should be looked at again, or None."""
        started = time.monotonic()
        metrics.RECONCILES.inc()
        try:
            return await self._reconcile(*key)
        except Exception:
            metrics.RECONCILE_ERRORS.inc()
            raise
        finally:
            metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
            metrics.publish_states(self.states)

    async def _reconcile(self, namespace: str, name: str) -> float | None:
        cluster = await self._call(self.api.get_cluster, namespace, name)
        if cluster is None:
            self.states.pop(f"{namespace}/{name}", None)
            self._ensured.pop((namespace, name), None)
            self._own_writes.pop((namespace, name), None)
            return None  # deleted: garbage collection removes the children
        if not managed_by_us(cluster):
            log.debug(
                "%s/%s is managed by %s: hands off",
                namespace,
                name,
                cluster["spec"].get("managedBy"),
            )
            return None
        if cluster["metadata"].get("deletionTimestamp"):
            return await self._finalize(cluster)

        pods, service = await asyncio.gather(
            self._call(self.api.list_cluster_pods, namespace, name),
            self._call(self.api.get_service, namespace, head_service_name(name)),
        )
        observed = Observed(pods=tuple(pods), head_service=service)
        todo = plan(cluster, observed, self.builders, self.config.max_pods_per_cluster)
        todo.problems += await self._check_head_service_account(cluster)
        more_to_create = len(todo.creates) > self.config.max_creates_per_pass
        todo.creates = todo.creates[: self.config.max_creates_per_pass]
        failures = await self._execute(cluster, todo)

        previous = cluster.get("status") or {}
        status = compute_status(cluster, observed, previous, todo.problems, failures, now_rfc3339())
        self.states[f"{namespace}/{name}"] = status.get("state", "")
        changed_meanwhile = False
        if status_changed(previous, status):
            changed_meanwhile = await self._write_status((namespace, name), status)
            self._warn_on_new_problems(cluster, previous, status, todo)
        if more_to_create or changed_meanwhile:
            return 0.0
        return self.config.retry_after_failure if failures else None

    async def _execute(self, cluster: dict[str, Any], todo: Plan) -> list[Failure]:
        failures: list[Failure] = []
        meta = cluster["metadata"]
        ensured = self._ensured.setdefault((meta["namespace"], meta["name"]), set())
        for obj in todo.ensure:
            key = (meta.get("uid"), obj["kind"], obj["metadata"]["name"])
            if key in ensured:
                continue
            try:
                # The planner asks for the Service only when it saw none: no GET first.
                check_first = obj["kind"] != "Service"
                if await self._call(self.api.create_if_missing, obj, check_first):
                    self._event(
                        cluster,
                        "Normal",
                        f"Created{obj['kind']}",
                        f"Created {obj['kind']} {obj['metadata']['name']}",
                    )
                if obj["kind"] != "Service":
                    ensured.add(key)
            except ApiException as err:
                failures.append(
                    self._failed(
                        cluster, f"FailedCreate{obj['kind']}", obj["metadata"]["name"], err
                    )
                )
        done: list[PodWrite] = []
        results = await asyncio.gather(
            *(self._delete(cluster, d, done) for d in todo.deletes),
            *(self._create(cluster, p, done) for p in todo.creates),
        )
        failures += [f for f in results if f is not None]
        self._summarize(cluster, done)
        return failures

    async def _check_head_service_account(self, cluster: dict[str, Any]) -> list[Problem]:
        """With in-tree autoscaling and a service account named in the head template,
        the operator creates no RBAC (the account's owner grants it) and the account
        must exist: the head pod cannot be created without it, and Ray's autoscaler
        runs as it. Checked until it is seen once (per cluster and process)."""
        name = head_service_account(cluster)
        if not name or not autoscaling_enabled(cluster):
            return []
        meta = cluster["metadata"]
        ensured = self._ensured.setdefault((meta["namespace"], meta["name"]), set())
        key = (meta.get("uid"), "UserServiceAccount", name)
        if key in ensured:
            return []
        try:
            exists = await self._call(self.api.service_account_exists, meta["namespace"], name)
        except ApiException as err:
            log.warning("could not check service account %s: %s", name, err.reason)
            return []
        if exists:
            ensured.add(key)
            return []
        pod_spec = cluster["spec"]["headGroupSpec"]["template"].get("spec") or {}
        field = "serviceAccountName" if pod_spec.get("serviceAccountName") else "serviceAccount"
        return [
            Problem(
                "ServiceAccountNotFound",
                f"spec.headGroupSpec.template.spec.{field}",
                f"service account {name!r} does not exist in namespace {meta['namespace']!r}: "
                "the head pod cannot be created until it does, and Ray's autoscaler runs as "
                "it; create it and grant it what the autoscaler uses (pods get, list, "
                "watch, patch; pods/resize patch; rayclusters get, patch)",
            )
        ]

    async def _create(
        self, cluster: dict[str, Any], create: PodCreate, done: list[PodWrite]
    ) -> Failure | None:
        kind = "HeadPod" if create.group == c.HEAD_GROUP else "WorkerPod"
        namespace = cluster["metadata"]["namespace"]
        try:
            name = await self._call(self.api.create_pod, namespace, create.body)
        except ApiException as err:
            what = f"{create.group} (pod template {create.template_path})"
            return self._failed(cluster, f"FailedCreate{kind}", what, err)
        metrics.PODS_CREATED.labels(kind[:-3].lower()).inc()
        done.append(PodWrite(f"Created{kind}", create.group, "", name))
        return None

    async def _delete(
        self, cluster: dict[str, Any], delete: PodDelete, done: list[PodWrite]
    ) -> Failure | None:
        kind = "HeadPod" if delete.group == c.HEAD_GROUP else "WorkerPod"
        namespace = cluster["metadata"]["namespace"]
        try:
            deleted = await self._call(self.api.delete_pod, namespace, delete.name)
        except ApiException as err:
            return self._failed(cluster, f"FailedDelete{kind}", delete.name, err)
        if deleted:
            metrics.PODS_DELETED.labels(kind[:-3].lower(), delete.reason).inc()
            done.append(PodWrite(f"Deleted{kind}", delete.group, delete.reason, delete.name))
        return None

    def _summarize(self, cluster: dict[str, Any], done: list[PodWrite]) -> None:
        """One Normal event per (reason, group, detail) and pass, not one per pod: the
        API server pays for every event, and a 200-pod scale-up is one fact to a reader.
        (client-go's recorder, which KubeRay uses, lets only a burst of 25 through.)"""
        names: dict[tuple[str, str, str], list[str]] = {}
        for write in done:
            names.setdefault((write.reason, write.group, write.detail), []).append(write.name)
        for (reason, group, detail), pods in names.items():
            self._event(cluster, "Normal", reason, pod_summary(reason, group, detail, pods))

    def _failed(
        self, cluster: dict[str, Any], reason: str, what: str, err: ApiException
    ) -> Failure:
        message = f"{reason} {what}: {_api_message(err)}"
        metrics.API_FAILURES.labels(reason).inc()
        log.warning(
            "%s/%s: %s", cluster["metadata"]["namespace"], cluster["metadata"]["name"], message
        )
        self._event(cluster, "Warning", reason, message)
        return Failure(reason, message)

    def _event(self, cluster: dict[str, Any], type_: str, reason: str, msg: str) -> None:
        """Best effort and off the critical path: a pass never waits for its events
        (a new cluster's first pass is a chain of round trips; these were three)."""
        self._pool.submit(self.api.post_event, cluster, type_, reason, msg).add_done_callback(
            _log_failure
        )

    def _warn_on_new_problems(
        self,
        cluster: dict[str, Any],
        previous: dict[str, Any],
        status: dict[str, Any],
        todo: Plan,
    ) -> None:
        """One Warning event per new spec problem (not one per resync)."""
        old = _replica_failure(previous)
        for problem in todo.problems:
            text = f"{problem.field}: {problem.message}"
            if text not in old:
                self._event(cluster, "Warning", problem.reason, text)

    async def _finalize(self, cluster: dict[str, Any]) -> float | None:
        """Ray's autoscaler deletes an idle cluster (policy Delete) behind the finalizer
        `ray.io/idle-termination-cleanup-finalizer`: remove the pods, then the finalizer."""
        meta = cluster["metadata"]
        if c.IDLE_TERMINATION_FINALIZER not in (meta.get("finalizers") or []):
            return None
        pods = await self._call(self.api.list_cluster_pods, meta["namespace"], meta["name"])
        if pods:
            done: list[PodWrite] = []
            await asyncio.gather(
                *(
                    self._delete(cluster, PodDelete(p.name, p.group, "ClusterDeleted"), done)
                    for p in pods
                    if not p.terminating
                )
            )
            self._summarize(cluster, done)
            return 1.0
        await self._call(self.api.remove_finalizer, cluster, c.IDLE_TERMINATION_FINALIZER)
        return None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True, slots=True)
class PodWrite:
    """A pod this pass created or deleted, for the event that sums the pass up."""

    reason: str  # CreatedHeadPod, DeletedWorkerPod, ...
    group: str
    detail: str  # why it was deleted; "" for creates
    name: str


MAX_NAMES_IN_EVENT = 10


def pod_summary(reason: str, group: str, detail: str, names: list[str]) -> str:
    """'Created 3 worker pods (group cpu): a, b, c'; 'Deleted head pod h (Failed)'."""
    verb = "Created" if reason.startswith("Created") else "Deleted"
    what = "head pod" if reason.endswith("HeadPod") else "worker pod"
    context = ", ".join(x for x in (f"group {group}" if what == "worker pod" else "", detail) if x)
    context = f" ({context})" if context else ""
    if len(names) == 1:
        return f"{verb} {what} {names[0]}{context}"
    shown = ", ".join(names[:MAX_NAMES_IN_EVENT])
    if len(names) > MAX_NAMES_IN_EVENT:
        shown += f" and {len(names) - MAX_NAMES_IN_EVENT} more"
    return f"{verb} {len(names)} {what}s{context}: {shown}"


def _log_failure(future: Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("could not post an event: %r", future.exception())


def _replica_failure(status: dict[str, Any]) -> str:
    for condition in status.get("conditions") or []:
        if condition.get("type") == c.COND_REPLICA_FAILURE:
            return condition.get("message", "")
    return ""


def _api_message(err: ApiException) -> str:
    import json

    try:
        return json.loads(err.body).get("message") or err.reason
    except (TypeError, ValueError):
        return f"{err.status} {err.reason}"
