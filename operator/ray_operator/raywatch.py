"""Watches RayClusters and RayJobs: every change is handed on, and so is every object
of a list (the one at start-up reconciles everything; one after an expired watch
catches up on what was missed, deletions included).

RayClusters come whole: a pass starts from the body the watch brought, with no GET.
RayJobs come as metadata only: an event only has to name the RayJob, whose pass
reads it. No label selector: every RayCluster and RayJob in the watched namespaces
is ours. The loop itself: listwatch.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from . import constants as c
from .health import Health
from .kube import KubeApi
from .listwatch import DEFAULT_TIMEOUT, Collection, ListWatch

Key = tuple[str, str]  # (namespace, name)
# ("ADDED" | "MODIFIED" | "DELETED", its key, the object or its metadata), on the
# watch's thread
Changed = Callable[[str, Key, dict[str, Any]], None]
API = f"/apis/{c.GROUP}/{c.VERSION}"


def collections(namespaces: Iterable[str]) -> list[Collection]:
    scopes: list[str | None] = [*namespaces] or [None]
    return [Collection(API, res, ns) for ns in scopes for res in (c.PLURAL, c.JOB_PLURAL)]


def _key(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return meta.get("namespace", ""), meta.get("name", "")


class RayWatcher(ListWatch):
    def __init__(
        self,
        api: KubeApi,
        namespaces: Iterable[str],
        clusters: Changed,
        rayjobs: Changed,
        retry_seconds: float = 2.0,
        timeout: float = DEFAULT_TIMEOUT,
        health: Health | None = None,
    ) -> None:
        super().__init__(api, collections(namespaces), retry_seconds, timeout, health)
        self._changed = {c.PLURAL: clusters, c.JOB_PLURAL: rayjobs}
        # The keys each collection holds: a list after an expired watch reports the
        # ones that are gone. Two short strings per object.
        self._known: dict[Collection, set[Key]] = {watched: set() for watched in self.collections}

    def metadata_only(self, watched: Collection) -> bool:
        return watched.resource != c.PLURAL

    def streams(self, watched: Collection) -> bool:
        """RayClusters whole are the bigger list: paged and gzipped. RayJobs' metadata
        streams (listwatch.py)."""
        return watched.resource != c.PLURAL

    def _list(self, watched: Collection, first: bool = False) -> str:
        changed, listed = self._changed[watched.resource], {}
        known, seen = self._known[watched], set[Key]()
        for item in self._items(watched, listed):
            key = _key(item)
            seen.add(key)
            changed("ADDED", key, item)
        for namespace, name in known - seen:  # deleted while no watch was running
            changed(
                "DELETED", (namespace, name), {"metadata": {"namespace": namespace, "name": name}}
            )
        self._known[watched] = seen
        return listed["version"]

    def _event(self, watched: Collection, kind: str, obj: dict[str, Any], version: str) -> None:
        known, key = self._known[watched], _key(obj)
        if kind == "DELETED":
            known.discard(key)
        else:
            known.add(key)
        self._changed[watched.resource](kind, key, obj)
