"""Wiring: every watch event becomes a key in the work queue. Nothing else here.

- RayCluster and RayJob events, through `raywatch` (including the first list at
  start-up, so a restart reconciles everything), enqueue that object; a deletion
  only drops what was kept about it;
- Ray pod and Service events, through `childwatch` (server-side label selector; they
  feed the slim caches the passes read, childcache.py), enqueue the clusters they
  concern. The operator never receives, let alone keeps, pods that are not Ray pods;
- every `resync_seconds`, every RayCluster is enqueued again, so that a missed event
  (a dropped connection, a bug, a hand edit no watch reports to the right cluster)
  leaves a cluster wrong for one interval at most. A converged cluster costs a GET
  of itself and no write: its pods and head Service come from the watch-fed caches,
  which a watch keeps whole (a lost watch lists again).

The watches run in threads; what they report is handed to the event loop, which owns
the queues and the reconcilers' bookkeeping. `run` serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from . import constants as c
from . import metrics
from .childcache import ChildCache
from .childwatch import ChildWatcher, Wake
from .credentials import TokenFile
from .health import Health
from .kube import DEFAULT_TIMEOUT, KubeApi
from .listwatch import DEFAULT_TIMEOUT as DEFAULT_WATCH_TIMEOUT
from .observed import ObservedService
from .podcache import PodCache
from .rayjob.reconciler import RayJobConfig, RayJobReconciler
from .raywatch import Key, RayWatcher
from .reconciler import Reconciler, ReconcilerConfig
from .workqueue import WorkQueue

log = logging.getLogger(__name__)

LOOP_BOUND = 30.0  # seconds the event loop may go without running its heartbeat
CHILD_WAKE_DELAY = 0.2  # seconds; see OperatorConfig.child_wake_delay


@dataclass
class OperatorConfig:
    api_client_factory: Callable[[], client.ApiClient]
    reconciler: ReconcilerConfig = field(default_factory=ReconcilerConfig)
    rayjobs: RayJobConfig = field(default_factory=RayJobConfig)
    workers: int = 4
    namespaces: list[str] = field(default_factory=list)  # the namespaces watched; none: all
    api_timeout: tuple[float, float] = DEFAULT_TIMEOUT  # (connect, read) per API call
    watch_timeout: float = DEFAULT_WATCH_TIMEOUT  # one watch request, server side
    resync_seconds: float = 300.0  # 0: no periodic resync
    pass_timeout: float = 120.0  # one reconcile, then it is abandoned and retried
    # A child's event wakes its cluster this much later: the events of pods starting
    # together make one pass, not one each (bench/RESULTS.md).
    child_wake_delay: float = CHILD_WAKE_DELAY
    health: Health = field(default_factory=Health)
    fence: Callable[[], None] | None = None  # raises when no longer the leader
    tokens: TokenFile | None = None  # where the bearer token comes from, if a file
    on_shutdown: Callable[[], None] = lambda: None


async def run(config: OperatorConfig) -> None:
    """Watch, reconcile, and on SIGTERM or SIGINT stop: the watches end, the passes
    are cancelled, `on_shutdown` runs (the Lease is released)."""
    health = config.health

    def api() -> KubeApi:
        return KubeApi(config.api_client_factory(), config.api_timeout, config.fence, config.tokens)

    # fed by the child watch, read by the passes
    pods = PodCache()
    services = ChildCache("services", ObservedService.from_dict)
    reconciler = Reconciler(
        api(), config.reconciler, pods=pods, services=services, namespaces=config.namespaces
    )
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

    def cluster_changed(kind: str, key: Key, body: dict[str, Any]) -> None:  # on the loop
        meta = body.get("metadata") or {}
        # A RayJob's cluster changing (ready, deleted) moves the RayJob on.
        for ref in meta.get("ownerReferences") or []:
            if ref.get("kind") == c.JOB_KIND and ref.get("controller"):
                job_queue.add((key[0], ref.get("name")))
        if kind == "DELETED":
            reconciler.forget(key, meta.get("uid"))
            return
        reconciler.observe(key, body)  # the pass starts from this body, no GET
        if not reconciler.own_writes.is_own(key, meta.get("resourceVersion")):
            queue.add(key)

    def rayjob_changed(kind: str, key: Key, obj: dict[str, Any]) -> None:  # on the loop
        if kind == "DELETED":
            jobs.forget(key)
        elif not jobs.is_own_write(key, (obj.get("metadata") or {}).get("resourceVersion")):
            job_queue.add(key)

    def wake_children(found: Iterable[Wake]) -> None:  # on the loop
        for key, uid in found:
            if not reconciler.is_gone(uid):
                queue.add_soon(key, config.child_wake_delay)

    def services_changed(found: Iterable[Wake], version: str | None) -> None:  # on the loop
        reconciler.service_changed((key for key, _ in found), version)

    # Each its own client: watch requests hold their connections for a while.
    ray_watcher = RayWatcher(
        api(),
        config.namespaces,
        lambda kind, key, body: loop.call_soon_threadsafe(cluster_changed, kind, key, body),
        lambda kind, key, obj: loop.call_soon_threadsafe(rayjob_changed, kind, key, obj),
        timeout=config.watch_timeout,
        health=health,
    )
    child_watcher = ChildWatcher(
        api(),
        config.namespaces,
        lambda found: loop.call_soon_threadsafe(wake_children, tuple(found)),
        timeout=config.watch_timeout,
        health=health,
        # the same queue of callbacks as the wakes: the copy is dropped first
        services_changed=lambda found, version: loop.call_soon_threadsafe(
            services_changed, tuple(found), version
        ),
        # the RayCluster watch's first list reconciles every cluster anyway
        wake_on_first_list=False,
        caches=(pods, services),
    )
    _watch_health(health, queue, config.pass_timeout)
    tasks = [
        asyncio.create_task(queue.run(), name="workqueue"),
        asyncio.create_task(job_queue.run(), name="rayjob-workqueue"),
        asyncio.create_task(_heartbeat(health), name="heartbeat"),
    ]
    if config.resync_seconds > 0:
        health.expect("resync", 2 * config.resync_seconds + 2 * config.api_timeout[1])
        tasks.append(asyncio.create_task(_resync(reconciler, config, queue, job_queue)))

    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    ray_watcher.start()
    child_watcher.start()
    try:
        await stopping.wait()
        log.info("stopping: signal received")
    finally:
        ray_watcher.stop()
        child_watcher.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        reconciler.close()
        jobs.close()
        config.on_shutdown()


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
            listed = [
                body
                for scope in scopes
                for body in await asyncio.to_thread(api.list_clusters, scope)
            ]
        except Exception as err:  # the next round tries again; /healthz counts rounds
            log.warning("resync: could not list RayClusters: %r", err)
            continue
        config.health.beat("resync")
        metrics.RESYNCS.inc()
        queue.add_all(reconciler.resync(listed))
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
