"""The children a watch delivered (Ray pods, Services), kept slim, by cluster.

Filled by the child watch threads and read by the reconciler on the event loop: every
access holds the lock, and none does I/O. Children are filed under the cluster their
`ray.io/cluster` label names, as a label-selected list would find them; the reconciler
keeps only those the RayCluster controls (`observed.owned_by`). Only the slim view
(`ObservedPod`, `ObservedService`) of each is kept, never the object.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from .observed import cluster_key

Key = tuple[str, str]  # (namespace, RayCluster name)
T = TypeVar("T")


def version_number(version: str | None) -> int | None:
    """A resourceVersion as the number it is on every API server backed by etcd; None
    if it is not one (then nothing waits on it: the pass lists instead)."""
    try:
        return int(version) if version else None
    except ValueError:
        return None


class ChildCache(Generic[T]):
    def __init__(self, resource: str, view: Callable[[dict[str, Any]], T]) -> None:
        self.resource = resource  # "pods", "services": the resource its watch delivers
        self._view = view
        self._lock = threading.Lock()
        self._where: dict[tuple[str, str], Key] = {}  # (namespace, child) -> its cluster
        self._by_cluster: dict[Key, dict[str, T]] = {}
        # Per watch scope (a namespace, or None for all of them): the resourceVersion
        # reached, and whether its first list is in.
        self._reached: dict[str | None, int] = {}
        self._synced: dict[str | None, threading.Event] = {}

    # -- the watch's side ----------------------------------------------------------------

    def track(self, scope: str | None) -> None:
        """The children in namespace `scope` (None: all) will be fed by a watch."""
        with self._lock:
            self._synced.setdefault(scope, threading.Event())

    def slim(self, obj: dict[str, Any]) -> tuple[Key, str, T] | None:
        """What `replace` keeps of one listed child (made page by page, so that a
        restart never holds every child whole at once)."""
        key = cluster_key(obj)
        return None if key is None else (key, obj["metadata"]["name"], self._view(obj))

    def replace(
        self, scope: str | None, found: Iterable[tuple[Key, str, T] | None], version: str
    ) -> None:
        """A complete (paged) list of the scope's children at `version`, slimmed."""
        with self._lock:
            for where in [w for w in self._where if scope in (None, w[0])]:
                self._drop(where)
            for item in found:
                if item is not None:
                    self._file(*item)
            self._reach(scope, version)
            self._synced.setdefault(scope, threading.Event()).set()

    def apply(self, scope: str | None, kind: str, obj: dict[str, Any]) -> None:
        """One watch event (ADDED, MODIFIED, DELETED, or BOOKMARK)."""
        meta = obj.get("metadata") or {}
        key = cluster_key(obj) if kind in ("ADDED", "MODIFIED") else None
        child = self._view(obj) if key is not None else None
        with self._lock:
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                self._drop((meta.get("namespace", ""), meta.get("name", "")))
            if key is not None:
                self._file(key, meta["name"], child)  # type: ignore[arg-type]
            self._reach(scope, meta.get("resourceVersion"))

    def _file(self, key: Key, name: str, child: T) -> None:
        self._where[(key[0], name)] = key
        self._by_cluster.setdefault(key, {})[name] = child

    def _drop(self, where: tuple[str, str]) -> None:
        key = self._where.pop(where, None)
        if key is not None:
            children = self._by_cluster.get(key, {})
            children.pop(where[1], None)
            if not children:
                self._by_cluster.pop(key, None)

    def _reach(self, scope: str | None, version: str | None) -> None:
        number = version_number(version)
        if number is not None and number > self._reached.get(scope, -1):
            self._reached[scope] = number

    # -- the reconciler's side ---------------------------------------------------------

    def synced(self, namespace: str) -> bool:
        """True once the watch of `namespace` has delivered its first list."""
        with self._lock:
            event = self._synced.get(self._scope(namespace))
        return event is not None and event.is_set()

    def wait_synced(self, namespace: str, timeout: float) -> bool:
        """Block (in a thread) until the watch of `namespace` has its first list in."""
        with self._lock:
            event = self._synced.get(self._scope(namespace))
        return event is not None and event.wait(timeout)

    def get(self, key: Key, name: str) -> T | None:
        with self._lock:
            return (self._by_cluster.get(key) or {}).get(name)

    def _scope(self, namespace: str) -> str | None:
        """The watch that covers `namespace`: its own, or the cluster-wide one."""
        return namespace if namespace in self._synced else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._where)
