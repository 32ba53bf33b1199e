"""Watches Ray pods and Services for one fact: which RayCluster to reconcile next.

The reconciler reads a cluster's pods itself (a consistent list), so a watch event only
has to name the cluster. The API server sends metadata only (PartialObjectMetadata),
filtered server-side by the `ray.io/cluster` label, and nothing is kept. kopf did this
job before and spent half the operator's CPU on it: full bodies decoded, copied and
queued per object for a one-line enqueue (bench/RESULTS.md).

One daemon thread per (resource, namespace): list once for a resourceVersion, then
watch from it; when the version has expired (410 Gone) list again and wake every
cluster seen, since events may have been missed meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from kubernetes.client.rest import ApiException

from . import constants as c
from .kube import KubeApi

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, RayCluster name)
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
WATCHED = ("pods", "services")
SERVER_TIMEOUT = 600  # seconds a watch request lasts, as kopf's were
LIST_PAGE = 500


class WatchExpired(Exception):
    """The resourceVersion we watch from is too old: list again."""


def cluster_key(obj: dict[str, Any]) -> Key | None:
    """The RayCluster a child belongs to, from its `ray.io/cluster` label."""
    meta = obj.get("metadata") or {}
    name = (meta.get("labels") or {}).get(c.LABEL_CLUSTER)
    namespace = meta.get("namespace")
    return (namespace, name) if namespace and name else None


def handle_event(event: dict[str, Any]) -> tuple[str | None, Key | None]:
    """(resourceVersion to resume from, cluster to wake) for one watch event."""
    kind, obj = event.get("type"), event.get("object") or {}
    if kind == "ERROR":
        if obj.get("code") == 410:
            raise WatchExpired(obj.get("message", "resource version expired"))
        raise ApiException(status=obj.get("code"), reason=obj.get("message"))
    version = (obj.get("metadata") or {}).get("resourceVersion")
    return version, None if kind == "BOOKMARK" else cluster_key(obj)


def collection_paths(namespaces: Iterable[str]) -> list[str]:
    """The paths to watch: every namespace at once, or each namespace given."""
    scopes = [f"/api/v1/namespaces/{ns}" for ns in namespaces] or ["/api/v1"]
    return [f"{scope}/{resource}" for scope in scopes for resource in WATCHED]


class ChildWatcher:
    def __init__(
        self,
        api: KubeApi,
        namespaces: Iterable[str],
        wake: Callable[[Iterable[Key]], None],
        retry_seconds: float = 2.0,
    ) -> None:
        self.api = api
        self.paths = collection_paths(namespaces)
        self.wake = wake
        self.retry_seconds = retry_seconds
        self._stop = threading.Event()

    def start(self) -> None:
        for path in self.paths:
            threading.Thread(
                target=self._run, args=(path,), name=f"watch {path}", daemon=True
            ).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self, path: str) -> None:
        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    version = self._list(path)
                version = self._watch(path, version)
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

    def _list(self, path: str) -> str:
        """Wake every cluster with a child (paged), return the list's resourceVersion."""
        keys: set[Key] = set()
        token = ""
        while True:
            query = [("labelSelector", c.LABEL_CLUSTER), ("limit", str(LIST_PAGE))]
            if token:
                query.append(("continue", token))
            page = self.api.request("GET", path, query=query, accept=METADATA_LIST)
            keys.update(k for k in map(cluster_key, page.get("items") or []) if k)
            token = page["metadata"].get("continue") or ""
            if not token:
                break
        if keys:
            self.wake(keys)
        return page["metadata"]["resourceVersion"]

    def _watch(self, path: str, version: str) -> str:
        query = [
            ("labelSelector", c.LABEL_CLUSTER),
            ("resourceVersion", version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(SERVER_TIMEOUT)),
        ]
        for event in self.api.watch(path, query, METADATA_ONLY, SERVER_TIMEOUT + 60):
            seen, key = handle_event(event)
            version = seen or version
            if key is not None:
                self.wake((key,))
            if self._stop.is_set():
                break
        return version
