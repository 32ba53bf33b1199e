"""kopf wiring: every watch event becomes a key in the work queue. Nothing else here.

- RayCluster events (including the initial listing at start-up, so a restart
  reconciles everything) enqueue that cluster;
- pod and Service events enqueue the cluster named by their `ray.io/cluster` label.
Pods and Services are watched with a server-side label selector: the operator never
receives, let alone keeps, pods that are not Ray pods.

Only `on.event` handlers are used: they need no state stored on the objects, so kopf
never writes annotations or finalizers of its own.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import kopf
from kubernetes import client

from . import constants as c
from .kube import KubeApi
from .reconciler import Reconciler, ReconcilerConfig
from .workqueue import WorkQueue

log = logging.getLogger(__name__)


@dataclass
class OperatorConfig:
    api_client_factory: Any  # () -> kubernetes.client.ApiClient
    reconciler: ReconcilerConfig = field(default_factory=ReconcilerConfig)
    workers: int = 4
    # Watching a list of namespaces: kopf's scanning would list cluster-wide namespaces,
    # a permission a namespaced install does not grant (the CLI checks the CRD instead).
    namespaced: bool = False


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
        settings.scanning.disabled = config.namespaced
        settings.posting.enabled = False  # we post our own, specific events
        settings.persistence.diffbase_storage = _NoDiffBase()
        # A restart lists every watched object: page the listing, and let kopf's
        # per-object workers (each holding its object's last body) exit soon after.
        settings.watching.chunk_size = 500
        settings.queueing.idle_timeout = 0.5
        settings.watching.label_selectors["pods"] = c.LABEL_CLUSTER
        settings.watching.label_selectors["services"] = c.LABEL_CLUSTER
        settings.watching.server_timeout = 600
        # kopf logs every handler call at INFO; ours are one-line enqueues.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        api_client: client.ApiClient = config.api_client_factory()
        runtime.reconciler = Reconciler(KubeApi(api_client), config.reconciler)
        runtime.queue = WorkQueue(runtime.reconciler.reconcile, concurrency=config.workers)
        runtime.task = asyncio.create_task(runtime.queue.run(), name="ray-operator-workqueue")

    @kopf.on.cleanup(registry=registry)
    async def shutdown(**_: Any) -> None:
        if runtime.task is not None:
            runtime.task.cancel()
        if runtime.reconciler is not None:
            runtime.reconciler.close()

    @kopf.on.event(c.GROUP, c.VERSION, c.PLURAL, registry=registry)
    def raycluster_event(namespace: str | None, name: str | None, **_: Any) -> None:
        enqueue(namespace, name)

    @kopf.on.event("", "v1", "pods", registry=registry)
    def pod_event(namespace: str | None, labels: dict[str, str], **_: Any) -> None:
        enqueue(namespace, labels.get(c.LABEL_CLUSTER))

    @kopf.on.event("", "v1", "services", registry=registry)
    def service_event(namespace: str | None, labels: dict[str, str], **_: Any) -> None:
        enqueue(namespace, labels.get(c.LABEL_CLUSTER))

    @kopf.on.probe(id="queue", registry=registry)
    def queue_depth(**_: Any) -> int:
        return len(runtime.queue) if runtime.queue is not None else -1

    return registry, runtime
