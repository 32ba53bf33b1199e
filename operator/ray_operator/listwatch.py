"""List, then watch: the loop behind every watch the operator holds (RayClusters and
RayJobs in raywatch.py; Ray pods, Services and cleanup Jobs in childwatch.py).

One daemon thread per collection (a resource in one namespace, or in all): list once
for a resourceVersion, then watch from it; when that version has expired (410 Gone)
list again, since events may have been missed meanwhile. What a list or an event
means is the subclass's business.

A list is one of two kinds, the subclass chooses per collection (`streams`):
- a paged GET, gzipped (big collections of whole objects: pods, RayClusters);
- a streaming list (a watch with `sendInitialEvents`): the objects come as ADDED
  events up to a bookmark that marks their end, and the same request goes on as the
  watch. One request instead of two, but a watch is never compressed: for small
  collections. An API server that does not stream lists (the WatchList feature is
  off by default in Kubernetes 1.30, 1.31 and 1.33) refuses the parameter (422), or
  never sends that bookmark; the watcher then pages its lists from then on.

No wait is unbounded: a watch request ends server-side after `timeout` seconds (the
API server sends a bookmark 2 s before), and a connection silent for longer than
`timeout + READ_SLACK` is abandoned and the watch resumes on a new one. Every answer
from the API server is reported to `health`, which fails /healthz when a watch has
heard nothing for longer than its bound.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any, NamedTuple

from kubernetes.client.rest import ApiException

from .health import Health
from .kube import KubeApi

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0  # seconds one watch request lasts (server side)
INITIAL_EVENTS_END = "k8s.io/initial-events-end"  # the annotation of a streamed list's end
READ_SLACK = 15.0  # a live watch is never silent longer than its timeout


def silence_bound(timeout: float) -> float:
    """How long a watch with this server timeout may go without hearing anything
    before it counts as stalled: two full read timeouts (one reconnect allowed)."""
    return 2 * (timeout + READ_SLACK)


class WatchExpired(Exception):
    """The resourceVersion we watch from is too old: list again."""


class NoStreamedLists(Exception):
    """The API server does not stream lists: page them."""


def raise_error(event: dict[str, Any]) -> None:
    """An ERROR event ends the watch: 410 asks for a new list, anything else retries."""
    if event.get("type") == "ERROR":
        obj = event.get("object") or {}
        if obj.get("code") == 410:
            raise WatchExpired(obj.get("message", "resource version expired"))
        raise ApiException(status=obj.get("code"), reason=obj.get("message"))


class Collection(NamedTuple):
    """One watched collection: a resource in one namespace, or in all (None)."""

    api: str  # "/api/v1", "/apis/batch/v1", "/apis/ray.io/v1"
    resource: str
    namespace: str | None

    @property
    def path(self) -> str:
        scope = f"/namespaces/{self.namespace}" if self.namespace else ""
        return f"{self.api}{scope}/{self.resource}"


class ListWatch:
    """Subclasses say what to ask for (`selector`, `metadata_only`) and what a list
    (`_list`, through `_items`) and an event (`_event`) mean."""

    selector: str | None = None  # server-side label selector of every request

    def __init__(
        self,
        api: KubeApi,
        collections: list[Collection],
        retry_seconds: float = 2.0,
        timeout: float = DEFAULT_TIMEOUT,
        health: Health | None = None,
    ) -> None:
        self.api = api
        self.collections = collections
        self.retry_seconds = retry_seconds
        self.timeout = timeout
        self.health = health or Health()
        self._stop = threading.Event()
        self._stream_lists = True  # until the API server shows it cannot
        # A streamed list's request, left open after its initial events: the watch.
        self._streams: dict[Collection, Iterator[dict[str, Any]]] = {}

    # -- what subclasses say ------------------------------------------------------------

    def metadata_only(self, watched: Collection) -> bool:
        return True

    def streams(self, watched: Collection) -> bool:
        """List this collection as a stream (see the module's docstring)?"""
        return False

    def _list(self, watched: Collection, first: bool) -> str:
        """Take in a whole list (`first`: the one at start-up); return its version."""
        raise NotImplementedError

    def _event(self, watched: Collection, kind: str, obj: dict[str, Any], version: str) -> None:
        """One ADDED, MODIFIED or DELETED event."""
        raise NotImplementedError

    # -- the loop -----------------------------------------------------------------------

    def start(self) -> None:
        for watched in self.collections:
            self.health.expect(f"watch {watched.path}", silence_bound(self.timeout))
            threading.Thread(
                target=self._run, args=(watched,), name=f"watch {watched.path}", daemon=True
            ).start()

    def stop(self) -> None:
        self._stop.set()

    def _query(self) -> list[tuple[str, str]]:
        return [("labelSelector", self.selector)] if self.selector else []

    def _run(self, watched: Collection) -> None:
        path = watched.path
        version: str | None = None
        first = True
        while not self._stop.is_set():
            try:
                if version is None:
                    version = self._list(watched, first)
                    first = False
                version = self._watch(watched, version)
            except WatchExpired as err:
                log.info("watch %s expired (%s): listing again", path, err)
                version = None
            except NoStreamedLists as err:
                log.info("%s: paging lists instead", err)
                self._stream_lists = False
                version = None
            except ApiException as err:  # RBAC, API server overloaded or restarting
                log.warning("watch %s failed: %s %s; retrying", path, err.status, err.reason)
                if err.status == 410:  # a paged list's continue token expired
                    version = None
                self._stop.wait(self.retry_seconds)
            except Exception as err:  # connection refused, reset, timed out
                log.warning("watch %s failed: %r; retrying", path, err)
                self._stop.wait(self.retry_seconds)

    def _items(self, watched: Collection, listed: dict[str, str]) -> Iterator[dict[str, Any]]:
        """Every item of a list; once they are all taken, `listed["version"]` is the
        list's resourceVersion."""
        if self._stream_lists and self.streams(watched):
            yield from self._initial_events(watched, listed)
            return
        path, metadata_only = watched.path, self.metadata_only(watched)
        for page in self.api.list_collection(path, self._query(), metadata_only=metadata_only):
            self.health.beat(f"watch {path}")
            yield from page.get("items") or []
            listed["version"] = page["metadata"]["resourceVersion"]

    def _request(self, watched: Collection, query: list[tuple[str, str]]) -> Iterator[dict]:
        query = [
            *self._query(),
            *query,
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(round(self.timeout))),
        ]
        return self.api.watch_collection(
            watched.path, query, self.timeout + READ_SLACK, self.metadata_only(watched)
        )

    def _initial_events(
        self, watched: Collection, listed: dict[str, str]
    ) -> Iterator[dict[str, Any]]:
        """A streamed list: the objects, up to the bookmark that ends them. The rest of
        the request is kept for `_watch`."""
        part = f"watch {watched.path}"
        try:
            events = iter(
                self._request(
                    watched,
                    [("sendInitialEvents", "true"), ("resourceVersionMatch", "NotOlderThan")],
                )
            )
            for event in events:
                self.health.beat(part)
                raise_error(event)
                obj = event.get("object") or {}
                meta = obj.get("metadata") or {}
                if event.get("type") != "BOOKMARK":
                    yield obj
                elif (meta.get("annotations") or {}).get(INITIAL_EVENTS_END) == "true":
                    listed["version"] = meta["resourceVersion"]
                    self._streams[watched] = events
                    return
        except ApiException as err:
            if err.status in (400, 422):  # sendInitialEvents refused
                raise NoStreamedLists(f"{watched.path}: {err.status} {err.reason}") from err
            raise
        raise NoStreamedLists(f"{watched.path}: a streamed list ended without its bookmark")

    def _watch(self, watched: Collection, version: str) -> str:
        path = watched.path
        part = f"watch {path}"
        events = self._streams.pop(watched, None) or self._request(
            watched, [("resourceVersion", version)]
        )
        for event in events:
            self.health.beat(part)
            raise_error(event)
            obj = event.get("object") or {}
            version = (obj.get("metadata") or {}).get("resourceVersion") or version
            if event.get("type") != "BOOKMARK":
                self._event(watched, event["type"], obj, version)
            if self._stop.is_set():
                break
        self.health.beat(part)  # the server ended the request: it is alive
        return version
