"""Wiring: every watch event becomes a key in the work queue. Nothing else here.

- RayCluster events, through kopf (including its initial listing at start-up, so a
  restart reconciles everything), enqueue that cluster;
- Ray pod and Service events, through `childwatch` (metadata only, server-side label
  selector), enqueue the cluster named by their `ray.io/cluster` label. The operator
  never receives, let alone keeps, pods that are not Ray pods.

Only `on.event` handlers are used: they need no state stored on the objects, so kopf
never writes annotations or finalizers of its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import kopf
from kubernetes import client

from . import constants as c
from .childwatch import ChildWatcher
from .kube import KubeApi
from .reconciler import Reconciler, ReconcilerConfig
from .workqueue import WorkQueue

log = logging.getLogger(__name__)


@dataclass
class OperatorConfig:
    api_client_factory: Any  # () -> kubernetes.client.ApiClient
    reconciler: ReconcilerConfig = field(default_factory=ReconcilerConfig)
    workers: int = 4
    # The namespaces watched; none means all. With a list, kopf's scanning (which lists
    # cluster-wide namespaces, a permission a namespaced install does not grant) is
    # off: the CLI checks for the CRD instead.
    namespaces: list[str] = field(default_factory=list)


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


@dataclass
class Runtime:
    queue: WorkQueue | None = None
    reconciler: Reconciler | None = None
    task: asyncio.Task | None = None
    watcher: ChildWatcher | None = None


def build_registry(config: OperatorConfig) -> tuple[kopf.OperatorRegistry, Runtime]:
    registry = kopf.OperatorRegistry()
    runtime = Runtime()

    def enqueue(namespace: str | None, name: str | None) -> None:
        if runtime.queue is not None and namespace and name:
            runtime.queue.add((namespace, name))

    # A custom registry gets none of kopf's default login handlers: name ours. The
    # official client finds in-cluster credentials or KUBECONFIG, as our own calls do.
    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

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
        settings.watching.server_timeout = 600
        # kopf logs every handler call at INFO; ours are one-line enqueues.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        api_client: client.ApiClient = config.api_client_factory()
        runtime.reconciler = Reconciler(KubeApi(api_client), config.reconciler)
        runtime.queue = WorkQueue(runtime.reconciler.reconcile, concurrency=config.workers)
        runtime.task = asyncio.create_task(runtime.queue.run(), name="ray-operator-workqueue")
        loop, queue = asyncio.get_running_loop(), runtime.queue

        def wake(keys: Iterable[tuple[str, str]]) -> None:  # called from watch threads
            loop.call_soon_threadsafe(queue.add_all, tuple(keys))

        # Its own client: watch requests hold their connections for minutes.
        runtime.watcher = ChildWatcher(
            KubeApi(config.api_client_factory()), config.namespaces, wake
        )
        runtime.watcher.start()

    @kopf.on.cleanup(registry=registry)
    async def shutdown(**_: Any) -> None:
        if runtime.watcher is not None:
            runtime.watcher.stop()
        if runtime.task is not None:
            runtime.task.cancel()
        if runtime.reconciler is not None:
            runtime.reconciler.close()

    # Handlers are coroutines: kopf runs plain functions in threads, and the queue (like
    # the reconciler's own-write check) belongs to the event loop.
    @kopf.on.event(c.GROUP, c.VERSION, c.PLURAL, registry=registry)
    async def raycluster_event(
        namespace: str | None, name: str | None, meta: kopf.Meta, **_: Any
    ) -> None:
        own = runtime.reconciler is not None and runtime.reconciler.is_own_write(
            (namespace or "", name or ""), meta.get("resourceVersion")
        )
        if not own:
            enqueue(namespace, name)

    @kopf.on.probe(id="queue", registry=registry)
    def queue_depth(**_: Any) -> int:
        return len(runtime.queue) if runtime.queue is not None else -1

    return registry, runtime
