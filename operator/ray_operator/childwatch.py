"""Watches Ray pods, Services and cleanup Jobs: which RayCluster to reconcile next, and
slim views of the pods and Services themselves.

Every watch is filtered server-side by the `ray.io/cluster` label. Jobs come as
metadata only (PartialObjectMetadata) and nothing of them is kept: an event only has
to name the cluster. Pods and Services come whole when a cache of them is given
(childcache.py), which keeps a slim view of each for the reconciler and is fed before
the cluster is woken; without one, as metadata only. kopf did this job
once and spent half the operator's CPU on it: full bodies decoded, copied and queued
per object for a one-line enqueue (bench/RESULTS.md).

A child wakes the cluster its `ray.io/cluster` label names, and the RayCluster that
controls it (its ownerReference) when that is another one: a pod relabelled into
another cluster wakes both, so the one that lost it replaces it at once. Each wake
carries the child's controller uid, so that wakes for a deleted RayCluster (garbage
collection deleting its children) can be dropped without a GET.

The list-then-watch loop itself, its bounds and its health reports: listwatch.py. A
list after an expired watch wakes every cluster seen, since events may have been
missed meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from . import constants as c
from .childcache import ChildCache
from .health import Health
from .kube import KubeApi
from .listwatch import DEFAULT_TIMEOUT, Collection, ListWatch
from .observed import cluster_key

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, RayCluster name)
Wake = tuple[Key, str | None]  # the cluster to reconcile, the child's controller uid
# (API prefix, resource): Ray pods and Services, and the Redis cleanup Jobs of GCS
# fault-tolerant clusters being deleted (their end removes the finalizer).
WATCHED = (("/api/v1", "pods"), ("/api/v1", "services"), ("/apis/batch/v1", "jobs"))


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


def collections(namespaces: Iterable[str]) -> list[Collection]:
    """What to watch: every namespace at once, or each namespace given."""
    scopes: list[str | None] = [*namespaces] or [None]
    return [Collection(api, resource, ns) for ns in scopes for api, resource in WATCHED]


class ChildWatcher(ListWatch):
    selector = c.LABEL_CLUSTER

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
        super().__init__(api, collections(namespaces), retry_seconds, timeout, health)
        self.wake = wake
        # told first of the clusters a Service event concerns (the reconciler's copy
        # of their head Service is stale), then `wake` as for any child
        self.services_changed = services_changed
        # False when something else reconciles every cluster at start-up (the operator:
        # the RayCluster watch's first list): the first list then only yields the
        # version to watch from; a list after an expired watch always wakes.
        self.wake_on_first_list = wake_on_first_list
        # fed with every event of their resource, before the wake
        self.caches = {cache.resource: cache for cache in caches}
        for watched in self.collections:
            if (cache := self.caches.get(watched.resource)) is not None:
                cache.track(watched.namespace)

    def metadata_only(self, watched: Collection) -> bool:
        return watched.resource not in self.caches

    def streams(self, watched: Collection) -> bool:
        """Pods are most of the bytes: their lists are paged and gzipped. Services
        (one per cluster) and metadata are few: their lists stream, one request."""
        return watched.resource != "pods"

    def _list(self, watched: Collection, first: bool = False) -> str:
        """Wake every cluster with a child (not after the first list unless
        `wake_on_first_list`), return the list's resourceVersion."""
        found: set[Wake] = set()
        slims: list[Any] = []
        cache = self.caches.get(watched.resource)
        listed: dict[str, str] = {}
        for item in self._items(watched, listed):
            found.update(wakes(item))
            if cache is not None:
                slims.append(cache.slim(item))
        version = listed["version"]
        if cache is not None:
            cache.replace(watched.namespace, slims, version)
        if found and (self.wake_on_first_list or not first):
            self._wake(watched.resource, found)
        return version

    def _wake(self, resource: str, found: Iterable[Wake], version: str | None = None) -> None:
        """`version`: the child's resourceVersion (one event), None after a list."""
        if self.services_changed is not None and resource == "services":
            found = tuple(found)
            self.services_changed(found, version)
        self.wake(found)

    def _event(self, watched: Collection, kind: str, obj: dict[str, Any], version: str) -> None:
        if (cache := self.caches.get(watched.resource)) is not None:
            cache.apply(watched.namespace, kind, obj)
        if found := wakes(obj):
            self._wake(watched.resource, found, version)
