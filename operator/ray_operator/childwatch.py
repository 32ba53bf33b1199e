"""Watches Ray pods, Services and cleanup Jobs: which RayCluster to reconcile next, and
slim views of the pods and Services themselves.

Every watch is filtered server-side by the `ray.io/cluster` label. Jobs come as
metadata only (PartialObjectMetadata) and nothing of them is kept: an event only has
to name the cluster. Pods and Services come whole when a cache of them is given
(childcache.py), which keeps a slim view of each for the reconciler and is fed before
the cluster is woken; without one, as metadata only. kopf did this job
before and spent half the operator's CPU on it: full bodies decoded, copied and queued
per object for a one-line enqueue (bench/RESULTS.md).

A child wakes the cluster its `ray.io/cluster` label names, and the RayCluster that
controls it (its ownerReference) when that is another one: a pod relabelled into
another cluster wakes both, so the one that lost it replaces it at once. Each wake
carries the child's controller uid, so that wakes for a deleted RayCluster (garbage
collection deleting its children) can be dropped without a GET.

One daemon thread per (resource, namespace): list once for a resourceVersion, then
watch from it; when the version has expired (410 Gone) list again and wake every
cluster seen, since events may have been missed meanwhile.

No wait is unbounded: a watch request ends server-side after `timeout` seconds (the
API server sends a bookmark 2 s before), and a connection silent for longer than
`timeout + READ_SLACK` is abandoned and the watch resumes on a new one. Every answer
from the API server is reported to `health`, which fails /healthz when a watch has
heard nothing for longer than its bound.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from kubernetes.client.rest import ApiException

from . import constants as c
from .childcache import ChildCache
from .health import Health
from .kube import KubeApi
from .observed import cluster_key

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, RayCluster name)
Wake = tuple[Key, str | None]  # the cluster to reconcile, the child's controller uid
# (API prefix, resource): Ray pods and Services, and the Redis cleanup Jobs of GCS
# fault-tolerant clusters being deleted (their end removes the finalizer).
WATCHED = (("/api/v1", "pods"), ("/api/v1", "services"), ("/apis/batch/v1", "jobs"))
DEFAULT_TIMEOUT = 30.0  # seconds one watch request lasts (server side)
READ_SLACK = 15.0  # a live watch is never silent longer than its timeout


def silence_bound(timeout: float) -> float:
    """How long a watch with this server timeout may go without hearing anything
    before it counts as stalled: two full read timeouts (one reconnect allowed)."""
    return 2 * (timeout + READ_SLACK)


class WatchExpired(Exception):
    """The resourceVersion we watch from is too old: list again."""


def wakes(obj: dict[str, Any]) -> list[Wake]:
    """The clusters a change of this child concerns: the one its label names and the
    RayCluster that controls it, each with the child's controller uid."""
    meta = obj.get("metadata") or {}
    owner = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")), None)
    uid = owner.get("uid") if owner else None
    found: list[Wake] = []
    if (labelled := cluster_key(obj)) is not None:
        found.append((labelled, uid))
    if owner and owner.get("kind") == c.KIND and meta.get("namespace"):
        owned = (meta["namespace"], owner.get("name", ""))
        if owned != labelled:
            found.append((owned, uid))
    return found


def handle_event(event: dict[str, Any]) -> tuple[str | None, list[Wake]]:
    """(resourceVersion to resume from, clusters to wake) for one watch event."""
    kind, obj = event.get("type"), event.get("object") or {}
    if kind == "ERROR":
        if obj.get("code") == 410:
            raise WatchExpired(obj.get("message", "resource version expired"))
        raise ApiException(status=obj.get("code"), reason=obj.get("message"))
    version = (obj.get("metadata") or {}).get("resourceVersion")
    return version, [] if kind == "BOOKMARK" else wakes(obj)


class Collection(NamedTuple):
    """One watched collection: a resource in one namespace, or in all (None)."""

    api: str  # "/api/v1", "/apis/batch/v1"
    resource: str
    namespace: str | None

    @property
    def path(self) -> str:
        scope = f"/namespaces/{self.namespace}" if self.namespace else ""
        return f"{self.api}{scope}/{self.resource}"


def collections(namespaces: Iterable[str]) -> list[Collection]:
    """What to watch: every namespace at once, or each namespace given."""
    scopes: list[str | None] = [*namespaces] or [None]
    return [Collection(api, resource, ns) for ns in scopes for api, resource in WATCHED]


class ChildWatcher:
    def __init__(
        self,
        api: KubeApi,
        namespaces: Iterable[str],
        wake: Callable[[Iterable[Wake]], None],
        retry_seconds: float = 2.0,
        timeout: float = DEFAULT_TIMEOUT,
        health: Health | None = None,
        services_changed: Callable[[Iterable[Wake], str | None], None] | None = None,
        wake_on_first_list: bool = True,
        caches: Iterable[ChildCache[Any]] = (),
    ) -> None:
        self.api = api
        self.collections = collections(namespaces)
        self.wake = wake
        # told first of the clusters a Service event concerns (the reconciler's copy
        # of their head Service is stale), then `wake` as for any child
        self.services_changed = services_changed
        # False when something else reconciles every cluster at start-up (the operator:
        # kopf's listing of the RayClusters): the first list then only yields the
        # version to watch from; a list after an expired watch always wakes.
        self.wake_on_first_list = wake_on_first_list
        # fed with every event of their resource, before the wake
        self.caches = {cache.resource: cache for cache in caches}
        for watched in self.collections:
            if (cache := self.caches.get(watched.resource)) is not None:
                cache.track(watched.namespace)
        self.retry_seconds = retry_seconds
        self.timeout = timeout
        self.health = health or Health()
        self._stop = threading.Event()

    def start(self) -> None:
        for watched in self.collections:
            self.health.expect(f"watch {watched.path}", silence_bound(self.timeout))
            threading.Thread(
                target=self._run, args=(watched,), name=f"watch {watched.path}", daemon=True
            ).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self, watched: Collection) -> None:
        path = watched.path
        version: str | None = None
        first = True
        while not self._stop.is_set():
            try:
                if version is None:
                    version = self._list(watched, wake=self.wake_on_first_list or not first)
                    first = False
                version = self._watch(watched, version)
            except WatchExpired as err:
                log.info("watch %s expired (%s): listing again", path, err)
                version = None
            except ApiException as err:  # RBAC, API server overloaded or restarting
                log.warning("watch %s failed: %s %s; retrying", path, err.status, err.reason)
                if err.status == 410:  # a paged list's continue token expired
                    version = None
                self._stop.wait(self.retry_seconds)
            except Exception as err:  # connection refused, reset, timed out
                log.warning("watch %s failed: %r; retrying", path, err)
                self._stop.wait(self.retry_seconds)

    def _list(self, watched: Collection, wake: bool = True) -> str:
        """Wake every cluster with a child (paged), return the list's resourceVersion."""
        found: set[Wake] = set()
        slims: list[Any] = []
        path, query = watched.path, [("labelSelector", c.LABEL_CLUSTER)]
        cache = self.caches.get(watched.resource)
        for page in self.api.list_children(path, query, metadata_only=cache is None):
            self.health.beat(f"watch {path}")
            for item in page.get("items") or []:
                found.update(wakes(item))
                if cache is not None:
                    slims.append(cache.slim(item))
        version = page["metadata"]["resourceVersion"]
        if cache is not None:
            cache.replace(watched.namespace, slims, version)
        if found and wake:
            self._wake(watched.resource, found)
        return version

    def _wake(self, resource: str, found: Iterable[Wake], version: str | None = None) -> None:
        """`version`: the child's resourceVersion (one event), None after a list."""
        if self.services_changed is not None and resource == "services":
            found = tuple(found)
            self.services_changed(found, version)
        self.wake(found)

    def _watch(self, watched: Collection, version: str) -> str:
        query = [
            ("labelSelector", c.LABEL_CLUSTER),
            ("resourceVersion", version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(round(self.timeout))),
        ]
        path = watched.path
        part = f"watch {path}"
        cache = self.caches.get(watched.resource)
        events = self.api.watch_children(
            path, query, self.timeout + READ_SLACK, metadata_only=cache is None
        )
        for event in events:
            self.health.beat(part)
            seen, found = handle_event(event)
            if cache is not None:
                cache.apply(watched.namespace, event["type"], event["object"])
            version = seen or version
            if found:
                self._wake(watched.resource, found, seen)
            if self._stop.is_set():
                break
        self.health.beat(part)  # the server ended the request: it is alive
        return version
