"""Wiring: every watch event becomes a key in the work queue. Nothing else here.

- RayCluster events, through kopf (including its initial listing at start-up, so a
  restart reconciles everything), enqueue that cluster; a deletion only drops what
  was kept about it;
- Ray pod and Service events, through `childwatch` (server-side label selector; they
  feed the slim caches the passes read, childcache.py), enqueue the clusters they
  concern. The operator never receives, let alone keeps, pods that are not Ray pods;
- every `resync_seconds`, every RayCluster is enqueued again, so that a missed event
  (a dropped connection, a bug, a hand edit no watch reports to the right cluster)
  leaves a cluster wrong for one interval at most. A converged cluster costs a GET
  of itself and no write: its pods and head Service come from the watch-fed caches,
  which a watch keeps whole (a lost watch lists again).

Only `on.event` handlers are used: they need no state stored on the objects, so kopf
never writes annotations or finalizers of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import kopf
from kubernetes import client

from . import constants as c
from . import metrics
from .childcache import ChildCache
from .childwatch import DEFAULT_TIMEOUT as DEFAULT_WATCH_TIMEOUT
from .childwatch import READ_SLACK, ChildWatcher, Wake
from .credentials import TokenFile
from .health import Health
from .kube import DEFAULT_TIMEOUT, KubeApi
from .observed import ObservedService
from .podcache import PodCache
from .rayjob.reconciler import RayJobConfig, RayJobReconciler
from .reconciler import Reconciler, ReconcilerConfig
from .workqueue import WorkQueue

log = logging.getLogger(__name__)

LOOP_BOUND = 30.0  # seconds the event loop may go without running its heartbeat
LOGIN_WAIT = 60.0  # after a 401, how long a new login waits for a rotated token file


@dataclass
class OperatorConfig:
    api_client_factory: Callable[[], client.ApiClient]
    reconciler: ReconcilerConfig = field(default_factory=ReconcilerConfig)
    rayjobs: RayJobConfig = field(default_factory=RayJobConfig)
    workers: int = 4
    # The namespaces watched; none means all. With a list, kopf's scanning (which lists
    # cluster-wide namespaces, a permission a namespaced install does not grant) is
    # off: the CLI checks for the CRD instead.
    namespaces: list[str] = field(default_factory=list)
    api_timeout: tuple[float, float] = DEFAULT_TIMEOUT  # (connect, read) per API call
    watch_timeout: float = DEFAULT_WATCH_TIMEOUT  # one watch request, server side
    resync_seconds: float = 300.0  # 0: no periodic resync
    pass_timeout: float = 120.0  # one reconcile, then it is abandoned and retried
    health: Health = field(default_factory=Health)
    fence: Callable[[], None] | None = None  # raises when no longer the leader
    tokens: TokenFile | None = None  # where the bearer token comes from, if a file
    on_shutdown: Callable[[], None] = lambda: None


class _NoDiffBase(kopf.DiffBaseStorage):
    """Only `on.event` handlers are used and they compare nothing: without this, kopf
    deep-copies every watched body twice per event (a diff base and a copy without
    progress fields) for a change detection no handler asks for. Measured: a fifth
    of the operator's CPU during a 200-pod scale-up (bench/RESULTS.md)."""

    def build(self, *, body: Any, extra_fields: Any = None) -> Any:
        return None

    def fetch(self, *, body: Any) -> Any:
        return None

    def store(self, *, body: Any, patch: Any, essence: Any) -> None:
        pass


def build_registry(config: OperatorConfig) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    health = config.health
    state: dict[str, Any] = {}  # reconciler, queue, watcher, tasks: made at start-up
    tasks: list[asyncio.Task[Any]] = []
    logged_in: list[str] = []  # the token the last login returned

    # A custom registry gets none of kopf's default login handlers: name ours. The
    # official client finds in-cluster credentials or KUBECONFIG, as our own calls do.
    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        tokens = config.tokens
        if tokens is not None and logged_in:
            # kopf logs in again after a 401: give the kubelet (or whoever rotates the
            # file) time to write a new token rather than retry the refused one.
            deadline = time.monotonic() + LOGIN_WAIT
            while tokens.current() == logged_in[0] and time.monotonic() < deadline:
                time.sleep(1.0)
        info = kopf.login_via_client(**kwargs)
        if tokens is not None:
            logged_in[:] = [tokens.current()]
        log.info("API credentials loaded for kopf's watches")
        return info

    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.peering.standalone = True
        settings.scanning.disabled = bool(config.namespaces)
        settings.posting.enabled = False  # we post our own, specific events
        settings.persistence.diffbase_storage = _NoDiffBase()
        # A restart lists every watched object: page the listing, and let kopf's
        # per-object workers (each holding its object's last body) exit soon after.
        settings.watching.chunk_size = 500
        settings.queueing.idle_timeout = 0.5
        # No wait without an end: the RayCluster watch is bounded like the child
        # watches, and so is every other request kopf makes.
        connect, read = config.api_timeout
        settings.watching.server_timeout = round(config.watch_timeout)  # an integer in the URL
        settings.watching.client_timeout = config.watch_timeout + READ_SLACK
        settings.watching.inactivity_timeout = config.watch_timeout + READ_SLACK
        settings.watching.connect_timeout = connect
        settings.networking.connect_timeout = connect
        settings.networking.request_timeout = read
        # kopf logs every handler call at INFO; ours are one-line enqueues.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)

        def api() -> KubeApi:
            return KubeApi(
                config.api_client_factory(), config.api_timeout, config.fence, config.tokens
            )

        # fed by the child watch, read by the passes
        pods = PodCache()
        services = ChildCache("services", ObservedService.from_dict)
        reconciler = Reconciler(api(), config.reconciler, pods=pods, services=services)
        queue = WorkQueue(
            reconciler.reconcile, concurrency=config.workers, pass_timeout=config.pass_timeout
        )
        # RayJobs have their own queue and threads: a RayJob pass waiting on a slow
        # dashboard never holds a RayCluster's slot, nor the other way round.
        jobs = RayJobReconciler(api(), config.rayjobs)
        job_queue = WorkQueue(
            jobs.reconcile,
            concurrency=max(config.workers, config.rayjobs.api_threads),
            pass_timeout=config.pass_timeout,
        )
        loop = asyncio.get_running_loop()

        def wake_children(found: Iterable[Wake]) -> None:  # on the loop
            queue.add_all(key for key, uid in found if not reconciler.is_gone(uid))

        def services_changed(found: Iterable[Wake], version: str | None) -> None:  # on the loop
            reconciler.service_changed((key for key, _ in found), version)

        # Its own client: watch requests hold their connections for a while.
        watcher = ChildWatcher(
            api(),
            config.namespaces,
            lambda found: loop.call_soon_threadsafe(wake_children, tuple(found)),
            timeout=config.watch_timeout,
            health=health,
            # the same queue of callbacks as the wakes: the copy is dropped first
            services_changed=lambda found, version: loop.call_soon_threadsafe(
                services_changed, tuple(found), version
            ),
            # kopf's listing of every RayCluster reconciles each at start-up anyway
            wake_on_first_list=False,
            caches=(pods, services),
        )
        state.update(reconciler=reconciler, queue=queue, watcher=watcher)
        state.update(jobs=jobs, job_queue=job_queue)
        _watch_health(health, queue, config.pass_timeout)
        tasks.append(asyncio.create_task(queue.run(), name="workqueue"))
        tasks.append(asyncio.create_task(job_queue.run(), name="rayjob-workqueue"))
        tasks.append(asyncio.create_task(_heartbeat(health), name="heartbeat"))
        if config.resync_seconds > 0:
            health.expect("resync", 2 * config.resync_seconds + 2 * read)
            tasks.append(asyncio.create_task(_resync(reconciler, config, queue, job_queue)))
        watcher.start()

    @kopf.on.cleanup(registry=registry)
    async def shutdown(**_: Any) -> None:
        if "watcher" in state:
            state["watcher"].stop()
        for task in tasks:
            task.cancel()
        if "reconciler" in state:
            state["reconciler"].close()
        if "jobs" in state:
            state["jobs"].close()
        config.on_shutdown()

    # Handlers are coroutines: kopf runs plain functions in threads, and the queue (like
    # the reconciler's own-write check) belongs to the event loop.
    @kopf.on.event(c.GROUP, c.VERSION, c.PLURAL, registry=registry)
    async def raycluster_event(
        type: str | None,
        namespace: str | None,
        name: str | None,
        meta: kopf.Meta,
        event: kopf.RawEvent,
        **_: Any,
    ) -> None:
        reconciler: Reconciler | None = state.get("reconciler")
        if reconciler is None or not namespace or not name:
            return
        key = (namespace, name)
        # A RayJob's cluster changing (ready, deleted) moves the RayJob on.
        for ref in meta.get("ownerReferences") or []:
            if ref.get("kind") == c.JOB_KIND and ref.get("controller"):
                state["job_queue"].add((namespace, ref.get("name")))
        if type == "DELETED":
            reconciler.forget(key, meta.get("uid"))
            return
        raw = event.get("object") if isinstance(event, dict) else None
        if isinstance(raw, dict):  # the pass starts from this body, no GET
            reconciler.observe(key, raw)
        if not reconciler.own_writes.is_own(key, meta.get("resourceVersion")):
            state["queue"].add(key)

    @kopf.on.event(c.GROUP, c.VERSION, c.JOB_PLURAL, registry=registry)
    async def rayjob_event(
        type: str | None, namespace: str | None, name: str | None, meta: kopf.Meta, **_: Any
    ) -> None:
        jobs: RayJobReconciler | None = state.get("jobs")
        if jobs is None or not namespace or not name:
            return
        key = (namespace, name)
        if type == "DELETED":
            jobs.forget(key)
        elif not jobs.is_own_write(key, meta.get("resourceVersion")):
            state["job_queue"].add(key)

    return registry


def _watch_health(health: Health, queue: WorkQueue, pass_timeout: float) -> None:
    health.expect("event loop", LOOP_BOUND)

    def passes() -> list[str]:
        longest = queue.longest_running()
        # An abandoned pass ends at pass_timeout; one still running well past it means
        # the loop cannot even cancel it.
        if longest > pass_timeout + LOOP_BOUND:
            return [f"a reconcile has been running for {longest:.0f}s"]
        return []

    health.add_check(passes)
    metrics.STALLED.set_function(lambda: 1.0 if health.problems() else 0.0)
    metrics.QUEUE_DEPTH.set_function(lambda: float(len(queue)))


async def _heartbeat(health: Health) -> None:
    while True:
        health.beat("event loop")
        await asyncio.sleep(1.0)


async def _resync(
    reconciler: Reconciler, config: OperatorConfig, queue: WorkQueue, job_queue: WorkQueue
) -> None:
    api, scopes = reconciler.api, list[str | None](config.namespaces) or [None]
    while True:
        await asyncio.sleep(config.resync_seconds)
        try:
            keys = [
                key
                for scope in scopes
                for key in await asyncio.to_thread(api.list_cluster_keys, scope)
            ]
        except Exception as err:  # the next round tries again; /healthz counts rounds
            log.warning("resync: could not list RayClusters: %r", err)
            continue
        config.health.beat("resync")
        metrics.RESYNCS.inc()
        reconciler.recheck_children()
        queue.add_all(keys)
        try:
            job_queue.add_all(
                [
                    key
                    for scope in scopes
                    for key in await asyncio.to_thread(api.list_rayjob_keys, scope)
                ]
            )
        except Exception as err:
            log.warning("resync: could not list RayJobs: %r", err)
