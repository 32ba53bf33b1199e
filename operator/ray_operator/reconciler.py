"""One reconcile of one RayCluster: observe, plan, act, report.

The imperative shell around the pure planner and status calculation. Level-triggered:
whatever event woke it, it reads the current RayCluster and its pods and converges.
The pods come from the pod cache the child watch feeds, trusted only once it has seen
every pod write of ours (podcache.py), else from a consistent list: a pass never
plans from a view that could lack a pod it created, so a crash or a slow watch never
makes a pod twice.

Only children the RayCluster controls (a controller ownerReference with its uid) are
its children; a stranger that merely carries its labels is reported and left alone.
The autoscaler's ServiceAccount, Role and RoleBinding are created in that order and
each must be controlled by the RayCluster before the next is made, so the operator
never grants the autoscaler's rights to an account it did not create.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import dataclasses
import json
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from kubernetes.client.rest import ApiException

from . import constants as c
from . import metrics
from .builders import auth
from .builders.autoscaler import gets_autoscaler_rbac, head_service_account
from .builders.redis_cleanup import cleanup_job_selector
from .childcache import ChildCache, version_number
from .events import EventRecorder, PodWrite
from .kube import RBAC_KINDS, KubeApi, LostLeadership, now_rfc3339
from .model import Failure, Plan, PodCreate, PodDelete, PodStamp, Problem
from .observed import ObservedPod, ObservedService, controller_uid, owned_by
from .ownwrites import OwnStatusWrites
from .planner import Builders, default_builders, head_service_taken, plan
from .podcache import PodCache
from .spec import (
    autoscaling_enabled,
    head_service_name,
    managed_by,
    managed_by_us,
)
from .status import compute_status, status_changed
from .teardown import Teardown, plan_teardown

log = logging.getLogger(__name__)
T = TypeVar("T")
Key = tuple[str, str]
# A restart or resync checks each autoscaling cluster's RBAC objects once: with at
# least this many such clusters in a watch scope, one list per kind replaces 3 GETs
# per cluster (below that, the GETs are as few).
LIST_RBAC_FROM = 2
# Problems about objects no watch sees (a user's Secret): the cluster is looked at
# again soon rather than at the next resync.
RECHECKED_PROBLEMS = frozenset({"AuthSecretNotFound", "AuthSecretKeyMissing"})
FORGOTTEN_UIDS = 10_000  # deleted RayClusters remembered, to drop their children's wakes
SYNC_WAIT = 10.0  # seconds a pass at start-up waits for the pod watch's first list
# While a cluster's pods start (no `state` yet), status changes at a known observed
# generation (a worker Running, one more ready) are written at most this often: each
# is a write and a watch event for every RayCluster watcher (see _status_pace).
STATUS_PACE = 2.0

# The cluster a pass works on, so that API calls it leaves running when it is
# abandoned (pass timeout) are awaited by the next pass of the same cluster.
_current: contextvars.ContextVar[Key | None] = contextvars.ContextVar("cluster", default=None)


@dataclass
class ReconcilerConfig:
    api_threads: int = 16  # concurrent API calls per operator
    max_creates_per_pass: int = 250  # bounded work per pass keeps clusters fair
    max_pods_per_cluster: int = 10_000
    retry_after_failure: float = 5.0
    # GCS fault tolerance: keep a finalizer on FT clusters and delete their keys from
    # Redis with a Job on delete (KubeRay's ENABLE_GCS_FT_REDIS_CLEANUP).
    redis_cleanup: bool = True


class Reconciler:
    def __init__(
        self,
        api: KubeApi,
        config: ReconcilerConfig | None = None,
        builders: Builders | None = None,
        pods: PodCache | None = None,
        services: ChildCache[ObservedService] | None = None,
        namespaces: Iterable[str] = (),
    ) -> None:
        self.api = api
        self.namespaces = tuple(namespaces)  # the watched ones; none: all
        # Without a watch feeding it (no path tracked), every pass lists its pods.
        self.pods = pods if pods is not None else PodCache()  # (an empty one is falsy)
        self.services = services  # None: the head Service is read with a GET
        self.config = config or ReconcilerConfig()
        self.builders = builders or default_builders()
        self.states: dict[str, str] = {}  # "ns/name" -> status.state, for the metrics
        # Per cluster, (uid, kind, name) of children known to exist and be ours: each
        # is checked once per process, not on every reconcile.
        self._ensured: dict[Key, set[tuple[str, str, str]]] = {}
        self._uids: dict[Key, str] = {}
        self._gone: OrderedDict[str, None] = OrderedDict()  # uids of deleted clusters
        self._strangers_reported: dict[Key, set[str]] = {}
        self._warned: dict[Key, set[str]] = {}  # Warnings posted once (_warn_once)
        self._pool = ThreadPoolExecutor(self.config.api_threads, thread_name_prefix="kube")
        self._inflight: dict[Key, set[Future[Any]]] = {}
        self.events = EventRecorder(api, self._pool)
        self.own_writes = OwnStatusWrites()
        # The newest body of each RayCluster its watch delivered: a pass starts from it
        # instead of a GET. Not while our last status write has not come back through
        # the watch (the body would lack it), nor after a resync cleared it.
        self._watched: dict[Key, dict[str, Any]] = {}
        # The head Service as last read, until a Service event of the cluster arrives
        # (the child watch sees every change of it, ours included) or a resync. The
        # epoch counts those events, so a GET that overlapped one is not kept.
        self._services: dict[Key, ObservedService] = {}
        self._service_epoch: dict[Key, int] = {}
        self._service_event: dict[Key, str | None] = {}  # version of the last event
        self._last_write: dict[Key, float] = {}  # when pods or the status were written
        # The clusters the watch delivered that get the autoscaler's RBAC objects, and
        # the watch scopes (a namespace, or None) whose RBAC objects were listed since
        # the last resync (_list_rbac).
        self._rbac_wanted: set[Key] = set()
        self._rbac_listed: set[str | None] = set()
        self._rbac_listing: dict[str | None, asyncio.Lock] = {}
        self._resyncs = 0

    # -- what the watches ask ----------------------------------------------------------

    def observe(self, key: Key, body: dict[str, Any]) -> None:
        """The RayCluster watch delivered this body (on the event loop, before
        own_writes.is_own). The pass copies it: nothing here is ever modified."""
        self._watched[key] = body
        if gets_autoscaler_rbac(body):
            self._rbac_wanted.add(key)
        else:
            self._rbac_wanted.discard(key)

    def service_changed(self, keys: Iterable[Key], version: str | None = None) -> None:
        """A Service labelled for these clusters changed (on the event loop); `version`,
        its resourceVersion if known. The event of the very version we hold (our own
        create) is no news."""
        for key in keys:
            kept = self._services.get(key)
            if kept is not None and version is not None and kept.resource_version == version:
                continue
            self._services.pop(key, None)
            self._service_epoch[key] = self._service_epoch.get(key, 0) + 1
            self._service_event[key] = version

    def _keep_service(self, key: Key, service: ObservedService, epoch: int) -> None:
        """Keep what a read or our create returned, unless an event of another version
        of the Service arrived since it was sent."""
        now = self._service_epoch.get(key, 0)
        if now == epoch or (
            now == epoch + 1
            and service.resource_version is not None
            and self._service_event.get(key) == service.resource_version
        ):
            self._services[key] = service

    def is_gone(self, uid: str | None) -> bool:
        """True if the RayCluster with this uid was deleted: its children's events
        (garbage collection at work) need no pass."""
        return uid is not None and uid in self._gone

    def forget(self, key: Key, uid: str | None = None) -> None:
        """The RayCluster is gone: drop what we kept about it."""
        uid = uid or self._uids.get(key)
        for kept in (
            self._ensured, self._uids, self._strangers_reported, self._warned, self._watched,
            self._services, self._service_epoch, self._service_event, self._last_write,
        ):  # fmt: skip
            kept.pop(key, None)
        self._rbac_wanted.discard(key)
        self.own_writes.forget(key)
        self.pods.forget(key)
        self.states.pop(f"{key[0]}/{key[1]}", None)
        if uid:
            self._gone[uid] = None
            while len(self._gone) > FORGOTTEN_UIDS:
                self._gone.popitem(last=False)

    def resync(self, listed: Iterable[dict[str, Any]]) -> list[Key]:
        """The periodic resync listed every RayCluster: check every child again, and
        start each next pass from the listed body (the watch may have missed an event),
        or from the watch's if that is newer: delivered while the list was on its way,
        its pass may be queued already. Returns the clusters to reconcile."""
        watched = self._watched
        self.recheck_children()
        keys = []
        for body in listed:
            key = (body["metadata"]["namespace"], body["metadata"]["name"])
            kept = watched.get(key)
            self.observe(key, kept if kept is not None and _newer(kept, body) else body)
            keys.append(key)
        return keys

    def recheck_children(self) -> None:
        """Check every child again on the next pass (the periodic resync): nothing
        watches the autoscaler's RBAC objects, so one deleted by hand comes back only
        through this. RayClusters are read again too (a GET), unless `resync` hands
        over a listed body."""
        self._ensured.clear()
        self._watched = {}
        self._services.clear()
        self._rbac_listed.clear()
        self._resyncs += 1

    # -- the pass ----------------------------------------------------------------------

    async def reconcile(self, key: Key) -> float | None:
        """Returns seconds until this cluster should be looked at again, or None."""
        started = time.monotonic()
        metrics.RECONCILES.inc()
        _current.set(key)
        try:
            await self._settle(key)
            return await self._reconcile(*key)
        except LostLeadership as err:  # the process is on its way out (leader.py)
            log.warning("%s/%s: %s", *key, err)
            return None
        except BaseException as err:  # failed, or abandoned (pass timeout): a write of
            self.pods.distrust(key)  # it may have landed unseen; the next pass lists
            if isinstance(err, Exception):
                metrics.RECONCILE_ERRORS.inc()
            raise
        finally:
            metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
            metrics.publish_states(self.states)

    async def _settle(self, key: Key) -> None:
        """Wait for the API calls an abandoned pass of this cluster left running (each
        has its own timeout): observing before they end could create a pod twice."""
        leftovers = list(self._inflight.get(key) or ())
        if leftovers:
            await asyncio.wait([asyncio.wrap_future(f) for f in leftovers])

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        future = self._pool.submit(fn, *args)
        key = _current.get()
        if key is not None:
            inflight = self._inflight.setdefault(key, set())
            inflight.add(future)
            future.add_done_callback(inflight.discard)
        return await asyncio.wrap_future(future)

    async def _reconcile(self, namespace: str, name: str) -> float | None:
        key = (namespace, name)
        cluster = await self._read_cluster(key)
        if cluster is None:
            self.forget(key)
            return None  # deleted: garbage collection removes the children
        if not managed_by_us(cluster):
            log.debug("%s/%s is managed by %s: hands off", *key, managed_by(cluster))
            return None
        if cluster["metadata"].get("deletionTimestamp"):
            return await self._finalize(cluster)
        uid = cluster["metadata"]["uid"]
        self._uids[key] = uid

        pods, service = await asyncio.gather(
            self._observe_pods(key),
            self._head_service(key, head_service_name(cluster), uid, not cluster.get("status")),
        )
        if pods is None:  # our own pod writes are still on their way through the watch
            return self.pods.recheck_in(key)
        # The head Service is found by name, then must be ours (owned_by).
        observed, strangers = owned_by(uid, pods, service)
        self._report_strangers(cluster, strangers)
        observed = dataclasses.replace(
            observed,
            head_service_account_exists=await self._head_service_account_exists(cluster),
        )
        found, keys = await self._auth_secret_keys(cluster)
        observed = dataclasses.replace(observed, auth_secret_found=found, auth_secret_keys=keys)
        todo = plan(
            cluster,
            observed,
            self.builders,
            self.config.max_pods_per_cluster,
            self.config.redis_cleanup,
        )
        finalizer_failure = await self._add_finalizer(cluster, todo.add_finalizer)
        look_again = any(p.reason in RECHECKED_PROBLEMS for p in todo.problems)
        more_to_create = len(todo.creates) > self.config.max_creates_per_pass
        todo.creates = _first_creates(todo.creates, self.config.max_creates_per_pass)
        failures, pods_written = await self._execute(cluster, todo)
        if failures:
            self.pods.distrust(key)  # a failed write may still have landed (5xx, timeout)
        if finalizer_failure is not None:
            failures.append(finalizer_failure)

        previous = cluster.get("status") or {}
        status = compute_status(cluster, observed, previous, todo.problems, failures, now_rfc3339())
        self.states[f"{namespace}/{name}"] = status.get("state", "")
        changed_meanwhile = False
        write = status_changed(previous, status)
        paced = 0.0  # seconds the write is held back (see _status_pace)
        if pods_written and not failures and not todo.problems:
            # The watch events of the pods this pass created or deleted bring another
            # pass, which writes the status then: one write instead of two per change.
            self._last_write[key] = time.monotonic()
            write = False
        elif write:
            paced = self._status_pace(key, previous, status, failures, todo.problems)
        if write and not paced:
            try:
                changed_meanwhile = await self._write_status(key, status)
            except ApiException as err:
                if err.status != 404:
                    raise
                log.info("%s/%s was deleted during its reconcile", namespace, name)
                self.forget(key, uid)
                return None
            self.events.new_problems(cluster, _replica_failure(previous), todo.problems)
        if more_to_create or changed_meanwhile:
            return 0.0
        if paced:
            return paced
        # No watch sees Secrets: look again soon for the one that was missing.
        return self.config.retry_after_failure if failures or look_again else None

    async def _read_cluster(self, key: Key) -> dict[str, Any] | None:
        """The RayCluster as its watch last delivered it, else from a GET (kept for the
        next passes unless the watch delivered a body meanwhile). Pods are always
        listed afresh: only they decide what to create, so a stale RayCluster can
        delay a change until its event's pass, never create a pod twice. A cluster
        being deleted is always read afresh: its teardown (finalizers, the Redis cleanup
        Job) must not act on a body that predates our own finalizer removal."""
        watched = self._watched.get(key)
        deleting = watched is not None and (watched.get("metadata") or {}).get("deletionTimestamp")
        if watched is not None and not deleting and not self.own_writes.unseen(key):
            return copy.deepcopy(watched)
        cluster = await self._call(self.api.get_cluster, *key)
        if cluster is not None and key not in self._watched and not self.own_writes.unseen(key):
            self._watched[key] = copy.deepcopy(cluster)
        return cluster

    async def _observe_pods(self, key: Key) -> list[ObservedPod] | None:
        """The cluster's pods, from the pod cache when it can be trusted, else from a
        consistent list; None when the pass should wait for the watch instead."""
        view = self.pods.view(key)
        if view.unsynced:  # start-up: the watch's first list is on its way
            await asyncio.to_thread(self.pods.wait_synced, key[0], SYNC_WAIT)
            view = self.pods.view(key)
        if view.pods is not None:
            metrics.POD_OBSERVATIONS.labels("cache").inc()
            return list(view.pods)
        if not view.list_now:
            metrics.POD_OBSERVATIONS.labels("wait").inc()
            return None
        metrics.POD_OBSERVATIONS.labels("list").inc()
        pods, version = await self._call(self.api.list_cluster_pods, *key)
        self.pods.listed(key, version)
        return pods

    async def _head_service(
        self, key: Key, name: str, uid: str, new: bool
    ) -> ObservedService | None:
        """The head Service (ownership is checked by the caller): our copy while no
        event of it arrived (a create's answer comes before its watch event), else the
        watch-fed Service cache, else a GET; none for a cluster never reconciled (no
        status yet), whose create finds an existing one all the same (409, then a
        GET), as it does one the cache lacks (another's, without our labels). Only a
        copy of this very cluster's own Service is used (a same-named cluster deleted
        and created again gets a new uid)."""
        kept = self._services.get(key)
        if kept is not None and kept.name == name and kept.owner_uid == uid:
            return kept
        if self.services is not None and (
            self.services.synced(key[0])  # else start-up: its first list is coming
            or await asyncio.to_thread(self.services.wait_synced, key[0], SYNC_WAIT)
        ):
            return self.services.get(key, name)
        if new:
            return None
        epoch = self._service_epoch.get(key, 0)
        service = await self._call(self.api.get_service, key[0], name)
        if service is not None:
            self._keep_service(key, service, epoch)
        return service

    def _status_pace(
        self,
        key: Key,
        previous: dict[str, Any],
        status: dict[str, Any],
        failures: list[Failure],
        problems: list[Problem],
    ) -> float:
        """Seconds to hold this status write back (0: write now). Held: a change while
        pods start (no `state` before or after), at a known observedGeneration, without
        a failure or problem, less than STATUS_PACE after this cluster's last pod or
        status write. The move to `ready`, a spec change, every problem and anything
        that corrects a settled cluster's status are written at once."""
        if failures or problems or previous.get("state") or status.get("state"):
            return 0.0
        seen = previous.get("observedGeneration")
        if seen is not None and seen != status.get("observedGeneration"):
            return 0.0
        last = self._last_write.get(key)
        return 0.0 if last is None else max(0.0, last + STATUS_PACE - time.monotonic())

    async def _write_status(self, key: Key, status: dict[str, Any]) -> bool:
        """Write the status; True if another writer's event arrived meanwhile."""
        self._last_write[key] = time.monotonic()
        self.own_writes.begin(key)
        version = None
        try:
            version = await self._call(self.api.replace_status, *key, status)
        finally:
            changed_meanwhile = self.own_writes.end(key, version)
        return changed_meanwhile

    def _report_strangers(self, cluster: dict[str, Any], strangers: list[ObservedPod]) -> None:
        """One Warning per pod (per process) that carries the cluster's labels without
        being its child."""
        meta = cluster["metadata"]
        reported = self._strangers_reported.setdefault((meta["namespace"], meta["name"]), set())
        for pod in strangers:
            if pod.name in reported:
                continue
            reported.add(pod.name)
            self.events.post(
                cluster,
                "Warning",
                "ForeignPodIgnored",
                f"pod {pod.name} carries the labels of this RayCluster but is not controlled "
                "by it (no controller ownerReference to it): it is not counted, deleted or "
                f"replaced; remove its {c.LABEL_CLUSTER} label or delete it",
            )

    # -- acting on the plan ------------------------------------------------------------

    async def _execute(self, cluster: dict[str, Any], todo: Plan) -> tuple[list[Failure], int]:
        """Act on the plan: (failures, how many pods were created or deleted)."""
        failures: list[Failure] = []
        rbac_blocked = False
        for obj in todo.ensure:
            if obj["kind"] in RBAC_KINDS and rbac_blocked:
                continue  # never bind to an account or role we could not vouch for
            try:
                ours = await self._ensure(cluster, obj, todo)
            except ApiException as err:
                kind, name = obj["kind"], obj["metadata"]["name"]
                failures.append(self._failed(cluster, f"FailedCreate{kind}", name, err))
                ours = False
            # Only the head Service and the RBAC chain gate the autoscaler's RBAC; the
            # auth Secret and the headless worker Service grant nothing to anyone.
            if obj["kind"] in RBAC_KINDS or obj["metadata"]["name"] == head_service_name(cluster):
                rbac_blocked |= not ours
        done: list[PodWrite] = []
        replica_names = _new_replica_names(todo.creates)
        results = await asyncio.gather(
            *(self._delete(cluster, d, done) for d in todo.deletes),
            *(self._create(cluster, _labelled(p, replica_names), done) for p in todo.creates),
        )
        failures += [f for f in results if f is not None]
        self.events.pods_written(cluster, done)
        failures += await self._stamp(cluster, todo.stamps)
        return failures, len(done)

    async def _stamp(self, cluster: dict[str, Any], stamps: list[PodStamp]) -> list[Failure]:
        """Adopt pods that lack our template hash (KubeRay's, after a migration) by
        writing the current one on them: the pods, and the Ray cluster, keep running."""
        if not stamps:
            return []
        namespace = cluster["metadata"]["namespace"]
        self.pods.distrust((namespace, cluster["metadata"]["name"]))  # rare: a migration
        calls = [
            self._call(
                self.api.annotate_pod,
                namespace,
                s.name,
                {c.ANNOTATION_TEMPLATE_HASH: s.template_hash},
            )
            for s in stamps
        ]
        results = await asyncio.gather(*calls, return_exceptions=True)
        failures = []
        for stamp, result in zip(stamps, results, strict=True):
            if isinstance(result, ApiException):
                failures.append(self._failed(cluster, "FailedAdoptPod", stamp.name, result))
            elif isinstance(result, BaseException):
                raise result
        adopted = [s.name for s, r in zip(stamps, results, strict=True) if r is True]
        if adopted:
            self.events.post(
                cluster, "Normal", "AdoptedPods",
                f"Stamped {len(adopted)} pod(s) without a {c.ANNOTATION_TEMPLATE_HASH} with "
                f"the current one instead of recreating them: {', '.join(adopted[:10])}",
            )  # fmt: skip
        return failures

    async def _ensure(self, cluster: dict[str, Any], obj: dict[str, Any], todo: Plan) -> bool:
        """Make sure the child exists and is this cluster's; False (and a Problem) if
        another object holds its name."""
        meta = cluster["metadata"]
        kind, name = obj["kind"], obj["metadata"]["name"]
        ensured = self._ensured.setdefault((meta["namespace"], meta["name"]), set())
        if (meta["uid"], kind, name) in ensured:
            return True
        if kind in RBAC_KINDS:
            await self._list_rbac(meta["namespace"])
            ensured = self._ensured.setdefault((meta["namespace"], meta["name"]), set())
            if (meta["uid"], kind, name) in ensured:
                return True
        if kind == "Secret":
            # A fresh token per attempt; only sent if the Secret is missing (GET first),
            # so an existing token is never replaced under running pods.
            obj = auth.with_token(obj, secrets.token_bytes(auth.TOKEN_BYTES))
        # The planner asks for the head Service only when it saw none: no GET first.
        head_service = kind == "Service" and name == head_service_name(cluster)
        key = (meta["namespace"], meta["name"])
        epoch = self._service_epoch.get(key, 0)
        created, found = await self._call(self.api.create_or_get, obj, not head_service)
        if controller_uid(found.get("metadata") or {}) != meta["uid"]:
            todo.problems.append(_name_taken(kind, name))
            return False
        if created and kind != "Service":  # a Service is nothing a user acts on
            self.events.post(cluster, "Normal", f"Created{kind}", f"Created {kind} {name}")
        if head_service:  # observed on every pass: from here on, our copy
            self._keep_service(key, ObservedService.from_dict(found), epoch)
        else:
            ensured.add((meta["uid"], kind, name))
        return True

    async def _list_rbac(self, namespace: str) -> None:
        """Once per watch scope and resync, when enough clusters there get the
        autoscaler's RBAC objects: list each kind (metadata, by label) and count those a
        RayCluster controls as checked. An object missing from the list (made since,
        or the list failed) is then checked alone, as without it."""
        scope = namespace if self.namespaces else None
        if scope in self._rbac_listed:
            return
        if sum(1 for key in self._rbac_wanted if scope in (None, key[0])) < LIST_RBAC_FROM:
            return
        # One list per scope at a time: the passes of a restart all get here at once.
        # (Dropped once done: a lock is bound to the event loop that first awaits it.)
        lock = self._rbac_listing.setdefault(scope, asyncio.Lock())
        try:
            await self._list_rbac_once(scope, lock)
        finally:
            if self._rbac_listing.get(scope) is lock:
                del self._rbac_listing[scope]

    async def _list_rbac_once(self, scope: str | None, lock: asyncio.Lock) -> None:
        async with lock:
            if scope in self._rbac_listed:
                return
            resyncs = self._resyncs
            try:
                found = await asyncio.gather(
                    *(self._call(self.api.list_labelled_children, k, scope) for k in RBAC_KINDS)
                )
            except ApiException as err:  # e.g. no `list` granted: one GET per object
                log.warning("could not list the autoscalers' RBAC objects: %s", err.reason)
                self._rbac_listed.add(scope)
                return
            if resyncs != self._resyncs:
                return  # a resync began meanwhile: it wants everything checked anew
            for kind, children in zip(RBAC_KINDS, found, strict=True):
                for child_namespace, cluster, name, uid in children:
                    key = (child_namespace, cluster)
                    if uid is not None and key in self._rbac_wanted:
                        self._ensured.setdefault(key, set()).add((uid, kind, name))
            self._rbac_listed.add(scope)

    async def _head_service_account_exists(self, cluster: dict[str, Any]) -> bool | None:
        """With in-tree autoscaling, the service account the head template names (the
        operator then creates no RBAC) must exist. Looked up until it is seen once per
        cluster and process; None when there is nothing to look up or the lookup
        failed (no Problem is made from a guess)."""
        name = head_service_account(cluster)
        if not name or not autoscaling_enabled(cluster):
            return None
        meta = cluster["metadata"]
        ensured = self._ensured.setdefault((meta["namespace"], meta["name"]), set())
        key = (meta["uid"], "UserServiceAccount", name)
        if key in ensured:
            return True
        try:
            exists = await self._call(self.api.service_account_exists, meta["namespace"], name)
        except ApiException as err:
            log.warning("could not check service account %s: %s", name, err.reason)
            return None
        if exists:
            ensured.add(key)
        return exists

    async def _auth_secret_keys(
        self, cluster: dict[str, Any]
    ) -> tuple[bool | None, frozenset[str]]:
        """Whether `authOptions.secretName` exists, and its keys (never the values).
        Looked up until it holds the token once per cluster and process; (None, {})
        when there is nothing to look up or the lookup failed."""
        name = auth.user_secret(cluster)
        if not name or not auth.token_auth(cluster) or auth.k8s_token_auth(cluster):
            return None, frozenset()
        meta = cluster["metadata"]
        ensured = self._ensured.setdefault((meta["namespace"], meta["name"]), set())
        key = (meta["uid"], "UserSecret", name)
        if key in ensured:
            return True, frozenset({auth.TOKEN_KEY})
        try:
            keys = await self._call(self.api.secret_keys, meta["namespace"], name)
        except ApiException as err:
            log.warning("could not check secret %s: %s", name, err.reason)
            return None, frozenset()
        if keys is None:
            return False, frozenset()
        if auth.TOKEN_KEY in keys:
            ensured.add(key)
        return True, frozenset(keys)

    async def _create(
        self, cluster: dict[str, Any], create: PodCreate, done: list[PodWrite]
    ) -> Failure | None:
        kind = "HeadPod" if create.group == c.HEAD_GROUP else "WorkerPod"
        namespace = cluster["metadata"]["namespace"]
        try:
            name, version = await self._call(self.api.create_pod, namespace, create.body)
        except ApiException as err:
            what = f"{create.group} (pod template {create.template_path})"
            return self._failed(cluster, f"FailedCreate{kind}", what, err)
        self.pods.created((namespace, cluster["metadata"]["name"]), version)
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
        self.pods.deleted((namespace, cluster["metadata"]["name"]), delete.name)
        if deleted:
            metrics.PODS_DELETED.labels(kind[:-3].lower(), delete.reason).inc()
            done.append(PodWrite(f"Deleted{kind}", delete.group, delete.reason, delete.name))
        return None

    def _failed(
        self, cluster: dict[str, Any], reason: str, what: str, err: ApiException
    ) -> Failure:
        message = f"{reason} {what}: {_api_message(err)}"
        metrics.API_FAILURES.labels(reason).inc()
        log.warning(
            "%s/%s: %s", cluster["metadata"]["namespace"], cluster["metadata"]["name"], message
        )
        self.events.post(cluster, "Warning", reason, message)
        return Failure(reason, message)

    async def _add_finalizer(
        self, cluster: dict[str, Any], finalizer: str | None
    ) -> Failure | None:
        """Put the finalizer the plan asks for on the RayCluster before anything else is
        done; a failure is reported and the next pass tries again."""
        if finalizer is None:
            return None
        # Tracked as our own write: until its echo arrives, passes read the cluster
        # afresh (a body the watch delivered before lacks the finalizer).
        key = (cluster["metadata"]["namespace"], cluster["metadata"]["name"])
        self.own_writes.begin(key)
        version: str | None = None
        try:
            version = await self._call(self.api.add_finalizer, cluster, finalizer)
        except ApiException as err:
            if err.status in (409, 422):  # changed since our read: its event brings a pass
                log.info("%s/%s changed meanwhile; finalizer %s on the next pass",
                         cluster["metadata"]["namespace"], cluster["metadata"]["name"],
                         finalizer)  # fmt: skip
                return None
            return self._failed(cluster, "FailedAddFinalizer", finalizer, err)
        finally:
            self.own_writes.end(key, version)
        log.info("%s/%s: added finalizer %s", cluster["metadata"]["namespace"],
                 cluster["metadata"]["name"], finalizer)  # fmt: skip
        return None

    async def _finalize(self, cluster: dict[str, Any]) -> float | None:
        """A RayCluster being deleted behind one of the finalizers we honour (Ray's
        autoscaler's idle-termination one, the GCS FT Redis cleanup one): act on
        teardown.plan_teardown."""
        meta = cluster["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        finalizers = meta.get("finalizers") or []
        gcs = c.GCS_FT_REDIS_CLEANUP_FINALIZER in finalizers
        if not gcs and c.IDLE_TERMINATION_FINALIZER not in finalizers:
            return None
        pods, _ = await self._call(self.api.list_cluster_pods, namespace, name)
        jobs = (
            await self._call(self.api.list_jobs, namespace, cleanup_job_selector(name))
            if gcs
            else []
        )
        observed, _ = owned_by(meta["uid"], pods, None)
        todo = plan_teardown(
            cluster,
            observed.pods,
            [j for j in jobs if j.owner_uid == meta["uid"]],
            time.time(),
            self.config.redis_cleanup,
            self.builders.redis_cleanup_job,
        )
        if todo.deletes:
            done: list[PodWrite] = []
            await asyncio.gather(*(self._delete(cluster, d, done) for d in todo.deletes))
            self.events.pods_written(cluster, done)
        if todo.create_job is not None:
            retry = await self._create_cleanup_job(cluster, todo.create_job)
            if retry is not None:
                return retry
        return await self._remove_finalizers(cluster, todo)

    async def _create_cleanup_job(
        self, cluster: dict[str, Any], job: dict[str, Any]
    ) -> float | None:
        """Create the Redis cleanup Job; a retry delay if that failed."""
        where = f"{job['metadata']['namespace']}/{job['metadata']['name']}"
        try:
            created = await self._call(self.api.create_job, job)
        except ApiException as err:
            # Retried every few seconds until the deletion timeout: one Warning per
            # distinct error, not one per attempt.
            message = f"Failed to create Redis cleanup Job {where}: {_api_message(err)}"
            metrics.API_FAILURES.labels("FailedToCreateRedisCleanupJob").inc()
            log.warning("%s/%s: %s", cluster["metadata"]["namespace"],
                        cluster["metadata"]["name"], message)  # fmt: skip
            self._warn_once(cluster, "FailedToCreateRedisCleanupJob", message)
            return self.config.retry_after_failure
        if created:
            self.events.post(
                cluster, "Normal", "CreatedRedisCleanupJob", f"Created Redis cleanup Job {where}"
            )
        else:  # one of that name exists but was not listed as ours: a stranger, or a race
            self._warn_once(
                cluster, "FailedToCreateRedisCleanupJob",
                f"Failed to create Redis cleanup Job {where}: a Job of that name exists and "
                "is not controlled by this RayCluster; delete it, or the finalizer is "
                f"removed when {c.ANNOTATION_GCS_FT_DELETION_TIMEOUT} has passed",
            )  # fmt: skip
            return self.config.retry_after_failure
        return None

    async def _remove_finalizers(self, cluster: dict[str, Any], todo: Teardown) -> float | None:
        if not todo.removals:
            return todo.requeue
        try:
            await self._call(
                self.api.remove_finalizers, cluster, [r.finalizer for r in todo.removals]
            )
        except ApiException as err:
            if err.status == 404:
                return None  # gone already
            if err.status in (409, 422):  # the finalizers changed meanwhile: read again
                return 0.0
            raise
        for removal in todo.removals:
            log.info("%s/%s: removed finalizer %s", cluster["metadata"]["namespace"],
                     cluster["metadata"]["name"], removal.finalizer)  # fmt: skip
            if removal.note is not None:
                note = removal.note
                self.events.post(cluster, note.type, note.reason, note.message)
        return todo.requeue  # None once nothing is left to wait for

    def _warn_once(self, cluster: dict[str, Any], reason: str, message: str) -> None:
        """A Warning posted once per cluster, message and process (a condition that
        persists across passes)."""
        meta = cluster["metadata"]
        warned = self._warned.setdefault((meta["namespace"], meta["name"]), set())
        if message not in warned:
            warned.add(message)
            self.events.post(cluster, "Warning", reason, message)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


REPLICA_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # as Kubernetes' random names


def _new_replica_names(creates: list[PodCreate]) -> dict[tuple[str, int], str]:
    """`<group>-<5 random characters>` for each new multi-host replica of the plan."""
    keys = {(p.group, p.new_replica) for p in creates if p.new_replica is not None}
    return {
        key: f"{key[0]}-{''.join(secrets.choice(REPLICA_NAME_ALPHABET) for _ in range(5))}"
        for key in keys
    }


def _labelled(create: PodCreate, replica_names: dict[tuple[str, int], str]) -> PodCreate:
    """The create with its planned labels (and replica name) written into its body."""
    labels = dict(create.labels)
    if create.new_replica is not None:
        labels[c.LABEL_REPLICA_NAME] = replica_names[(create.group, create.new_replica)]
    if not labels:
        return create
    body = {**create.body, "metadata": dict(create.body["metadata"])}
    body["metadata"]["labels"] = {**(body["metadata"].get("labels") or {}), **labels}
    return dataclasses.replace(create, body=body)


def _first_creates(creates: list[PodCreate], limit: int) -> list[PodCreate]:
    """At most `limit` creates, never splitting a multi-host replica across passes (a
    replica missing a host would be deleted by the next pass)."""
    if len(creates) <= limit:
        return creates
    cut = limit
    last = creates[cut - 1]
    while (
        cut < len(creates)
        and last.new_replica is not None
        and (creates[cut].group, creates[cut].new_replica) == (last.group, last.new_replica)
    ):
        cut += 1
    return creates[:cut]


def _name_taken(kind: str, name: str) -> Problem:
    if kind == "Service" and name.endswith("-headless"):
        return Problem(
            "HeadlessServiceConflict",
            "spec.workerGroupSpecs",
            f"Service {name!r} exists but is not controlled by this RayCluster, so the "
            "hosts of multi-host replicas cannot find each other through it: delete it",
        )
    if kind == "Service":
        return head_service_taken(name)
    if kind == "Ingress":
        return Problem(
            "IngressConflict",
            "spec.headGroupSpec.enableIngress",
            f"Ingress {name!r} already exists and is not controlled by this RayCluster; it "
            "is left as it is. Delete it to have the cluster's own made, or set "
            "enableIngress to false",
        )
    if kind == "Secret":
        return Problem(
            "AuthSecretConflict",
            "spec.authOptions.secretName",
            f"Secret {name!r} already exists and is not controlled by this RayCluster; "
            "the Ray pods read their token from it as it is. Set authOptions.secretName "
            f"to {name!r} to use it on purpose, or delete it to get a generated one",
        )
    return Problem(
        "AutoscalerRBACConflict",
        "metadata.name",
        f"{kind} {name!r} already exists and is not controlled by this RayCluster, so the "
        "operator grants the autoscaler nothing through it: give the RayCluster another "
        "name, or set spec.headGroupSpec.template.spec.serviceAccountName to an account "
        "you grant the autoscaler's rights yourself",
    )


def _replica_failure(status: dict[str, Any]) -> str:
    for condition in status.get("conditions") or []:
        if condition.get("type") == c.COND_REPLICA_FAILURE:
            return condition.get("message", "")
    return ""


def _api_message(err: ApiException) -> str:
    try:
        return json.loads(err.body).get("message") or err.reason
    except (TypeError, ValueError):
        return f"{err.status} {err.reason}"


def _newer(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether `a` is a later version of the object than `b` (resourceVersions of one
    resource grow with etcd's revision; if either is not a number: no)."""
    va = version_number((a.get("metadata") or {}).get("resourceVersion"))
    vb = version_number((b.get("metadata") or {}).get("resourceVersion"))
    return va is not None and vb is not None and va > vb
