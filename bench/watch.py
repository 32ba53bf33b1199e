"""Timelines from watches: when each pod was created, Running and Ready, deleted; when
each RayCluster reached a status. One raw watch per resource and label selector, read in
a background thread (one long-running request: it costs the API server nothing per
event), with O(1) counters so a waiter never scans thousands of pods."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from ray_operator import constants as c


@dataclass(slots=True)
class PodState:
    group: str
    cluster: str
    alive: bool = False  # exists and not being deleted
    ready: bool = False  # alive, Running and Ready
    added: float | None = None  # None: existed before the watch started
    became_ready: float | None = None
    deleting: float | None = None
    gone: float | None = None


def _pod_flags(pod: dict[str, Any]) -> tuple[bool, bool]:
    meta, status = pod.get("metadata", {}), pod.get("status") or {}
    alive = meta.get("deletionTimestamp") is None
    ready = (
        alive
        and status.get("phase") == "Running"
        and any(
            x.get("type") == "Ready" and x.get("status") == "True"
            for x in status.get("conditions") or []
        )
    )
    return alive, ready


class _RawWatch(threading.Thread):
    """LIST then WATCH from its resourceVersion, raw JSON, until stopped."""

    def __init__(self, list_fn: Callable[..., Any], what: str, **params: Any) -> None:
        super().__init__(daemon=True, name=f"watch-{what}")
        self._list_fn, self._params = list_fn, params
        self.lock = threading.Condition()
        self.last_event = time.monotonic()
        self.events = 0
        self._halt = threading.Event()
        self._response: Any = None
        self.synced = threading.Event()
        self.error: BaseException | None = None

    # subclasses: handle(type, obj, now) under self.lock; reset() before a relist
    def handle(self, type_: str, obj: dict[str, Any], now: float, initial: bool) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        pass

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                rv = self._relist()
                self.synced.set()
                while not self._halt.is_set() and rv is not None:
                    rv = self._watch(rv)
        except BaseException as err:  # surfaced by wait()
            if not self._halt.is_set():
                self.error = err
                with self.lock:
                    self.lock.notify_all()

    def _relist(self) -> str:
        response = self._list_fn(**self._params, _preload_content=False)
        body = json.loads(response.data)
        now = time.monotonic()
        with self.lock:
            self.reset()
            for obj in body.get("items", []):
                self.handle("ADDED", obj, now, initial=True)
            self.lock.notify_all()
        return body["metadata"]["resourceVersion"]

    def _watch(self, rv: str) -> str | None:
        """Returns the resourceVersion to go on from, or None to relist (410 Gone)."""
        try:
            response = self._list_fn(
                **self._params,
                watch=True,
                resource_version=rv,
                allow_watch_bookmarks=True,
                timeout_seconds=3600,
                _preload_content=False,
            )
        except ApiException as err:
            if err.status == 410:
                return None
            raise
        self._response = response
        buffer = b""
        for chunk in response.stream(1 << 16):
            buffer += chunk
            if b"\n" not in buffer:
                continue
            *lines, buffer = buffer.split(b"\n")
            now = time.monotonic()
            with self.lock:
                for line in lines:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        if obj.get("code") == 410:
                            return None
                        raise RuntimeError(f"watch error: {obj}")
                    rv = obj["metadata"].get("resourceVersion", rv)
                    if event["type"] == "BOOKMARK":
                        continue
                    self.handle(event["type"], obj, now, initial=False)
                    self.events += 1
                self.last_event = now
                self.lock.notify_all()
        return rv

    def stop(self) -> None:
        self._halt.set()
        if self._response is not None:
            try:
                self._response.shutdown()
            except Exception:
                with contextlib.suppress(Exception):
                    self._response.release_conn()

    def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> float:
        """Block until predicate() holds; return the monotonic time of the event that
        made it hold (the last event seen when it was checked)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                if self.error is not None:
                    raise RuntimeError(f"watch failed while waiting for {what}") from self.error
                if predicate():
                    return self.last_event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
                self.lock.wait(min(left, 0.5))


class PodWatch(_RawWatch):
    """Pods matching a label selector, in all namespaces (or one)."""

    def __init__(
        self, api: client.ApiClient, label_selector: str, namespace: str | None = None
    ) -> None:
        core = client.CoreV1Api(api)
        if namespace:
            super().__init__(
                core.list_namespaced_pod,
                "pods",
                namespace=namespace,
                label_selector=label_selector,
            )
        else:
            super().__init__(
                core.list_pod_for_all_namespaces, "pods", label_selector=label_selector
            )
        self.pods: dict[tuple[str, str], PodState] = {}
        self.reset()

    def reset(self) -> None:
        self.pods.clear()
        self.created = 0  # distinct pods ever seen (including ones deleted since)
        self.present = Counter()  # (cluster, group) -> pods in the API (incl. terminating)
        self.alive = Counter()  # (cluster, group) -> not terminating
        self.ready = Counter()  # (cluster, group) -> alive, Running and Ready

    def handle(self, type_: str, obj: dict[str, Any], now: float, initial: bool) -> None:
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        state = self.pods.get(key)
        if state is None:
            labels = meta.get("labels") or {}
            state = PodState(
                group=labels.get(c.LABEL_GROUP, ""),
                cluster=f"{key[0]}/{labels.get(c.LABEL_CLUSTER, '')}",
                added=None if initial else now,
            )
            self.pods[key] = state
            self.created += 1
            self.present[state.cluster, state.group] += 1
        elif state.gone is not None:
            return  # a late event for a deleted pod
        gk = (state.cluster, state.group)
        if type_ == "DELETED":
            alive, ready = False, False
            state.gone = now
            self.present[gk] -= 1
        else:
            alive, ready = _pod_flags(obj)
        if alive != state.alive:
            self.alive[gk] += 1 if alive else -1
            state.alive = alive
        if ready != state.ready:
            self.ready[gk] += 1 if ready else -1
            state.ready = ready
            if ready and state.became_ready is None:
                state.became_ready = now
        if not alive and state.deleting is None and type_ != "DELETED":
            state.deleting = now

    def first_added(self) -> float:
        return min((st.added for st in self.pods.values() if st.added is not None), default=0.0)

    # -- counts over a cluster (namespace/name) or everything, optionally one group --

    def _sum(self, counter: Counter, cluster: str | None, group: str | None) -> int:
        return sum(
            n
            for (cl, gr), n in counter.items()
            if (cluster is None or cl == cluster) and (group is None or gr == group)
        )

    def n_present(self, cluster: str | None = None, group: str | None = None) -> int:
        return self._sum(self.present, cluster, group)

    def n_alive(self, cluster: str | None = None, group: str | None = None) -> int:
        return self._sum(self.alive, cluster, group)

    def n_ready(self, cluster: str | None = None, group: str | None = None) -> int:
        return self._sum(self.ready, cluster, group)


@dataclass(slots=True)
class ClusterState:
    generation: int = 0
    observed_generation: int = 0
    state: str = ""
    desired_workers: int = -1
    ready_workers: int = -1
    became_ready: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class RayClusterWatch(_RawWatch):
    """Every RayCluster in the cluster: its status, and when it first became `ready`."""

    def __init__(self, api: client.ApiClient) -> None:
        custom = client.CustomObjectsApi(api)

        def list_fn(**kw: Any) -> Any:
            return custom.list_cluster_custom_object(c.GROUP, c.VERSION, c.PLURAL, **kw)

        super().__init__(list_fn, "rayclusters")
        self.clusters: dict[str, ClusterState] = {}

    def reset(self) -> None:
        self.clusters.clear()

    def handle(self, type_: str, obj: dict[str, Any], now: float, initial: bool) -> None:
        meta = obj["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        if type_ == "DELETED":
            self.clusters.pop(key, None)
            return
        status = obj.get("status") or {}
        state = self.clusters.setdefault(key, ClusterState())
        state.generation = meta.get("generation", 0)
        state.observed_generation = status.get("observedGeneration", 0)
        state.state = status.get("state", "")
        state.desired_workers = status.get("desiredWorkerReplicas", -1)
        state.ready_workers = status.get("readyWorkerReplicas", -1)
        if state.state == c.STATE_READY and state.became_ready is None:
            state.became_ready = now

    def converged(self, key: str, workers: int | None = None) -> bool:
        """`ready`, status of the current generation, with `workers` ready workers."""
        state = self.clusters.get(key)
        if state is None or state.state != c.STATE_READY:
            return False
        if state.observed_generation != state.generation:
            return False
        return workers is None or (
            state.desired_workers == workers and state.ready_workers == workers
        )
