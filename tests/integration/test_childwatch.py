"""The child watch on the real API server: which Ray pods and Services wake which
RayCluster, and recovery from an expired resourceVersion."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from kubernetes import client

from ray_operator import constants as c
from ray_operator.childwatch import ChildWatcher, Collection
from ray_operator.kube import KubeApi
from tests.kubehelpers import wait_for


class RecordingApi(KubeApi):
    """The real API layer, remembering every watch event the server sent."""

    def __init__(self, api_client: client.ApiClient) -> None:
        super().__init__(api_client)
        self.events: list[dict[str, Any]] = []

    def watch(self, *args: Any, **kwargs: Any):
        for event in super().watch(*args, **kwargs):
            self.events.append(event)
            yield event


class Woken:
    def __init__(self) -> None:
        self.keys: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, found) -> None:  # (cluster key, controller uid) pairs
        with self.lock:
            self.keys.extend(key for key, _ in found)

    def count(self, key: tuple[str, str]) -> int:
        with self.lock:
            return self.keys.count(key)


def _pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }


@pytest.fixture
def core(api_client) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


def test_ray_pods_wake_their_cluster_and_nothing_else_is_sent(api_client, core, namespace):
    api, woken = RecordingApi(api_client), Woken()
    watcher = ChildWatcher(api, [namespace], woken)
    watcher.start()
    try:
        core.create_namespaced_pod(namespace, _pod("plain", {"app": "not-ray"}))
        core.create_namespaced_pod(namespace, _pod("ray", {c.LABEL_CLUSTER: "rc"}))
        wait_for(lambda: woken.count((namespace, "rc")) >= 1, what="woken by the create")
        core.delete_namespaced_pod("ray", namespace, grace_period_seconds=0)
        wait_for(lambda: _seen(api, "DELETED", "ray"), what="the delete event")
        wait_for(lambda: woken.count((namespace, "rc")) >= _changes(api), what="a wake per event")
    finally:
        watcher.stop()
    names = {e["object"]["metadata"].get("name") for e in api.events}
    assert "plain" not in names  # filtered by the API server, not by us
    # Metadata only: no spec or status crossed the wire.
    assert all(set(e["object"]) <= {"kind", "apiVersion", "metadata"} for e in api.events)


def _seen(api: RecordingApi, kind: str, name: str) -> bool:
    return any(e["type"] == kind and e["object"]["metadata"]["name"] == name for e in api.events)


def _changes(api: RecordingApi) -> int:
    return sum(e["type"] != "BOOKMARK" for e in api.events)


class ExpiresOnce(KubeApi):
    """The real API layer, except that the first watch answers 410 Gone, as the API
    server does once the version has left its watch cache. Injected: a real expiry
    takes a compaction or a full cache, not reproducible in a test's time."""

    watches = 0

    def watch(self, *args: Any, **kwargs: Any):
        self.watches += 1
        if self.watches == 1:
            yield {
                "type": "ERROR",
                "object": {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "message": "too old resource version: 1 (283)",
                    "reason": "Expired",
                    "code": 410,
                },
            }
            return
        yield from super().watch(*args, **kwargs)


def test_an_expired_version_lists_again_and_wakes_every_cluster(api_client, core, namespace):
    # A Service: unlike a pod, nothing updates it after its creation.
    service = {
        "metadata": {"name": "old-head-svc", "labels": {c.LABEL_CLUSTER: "old"}},
        "spec": {"clusterIP": "None", "ports": [{"name": "gcs", "port": 6379}]},
    }
    core.create_namespaced_service(namespace, service)
    api, woken = ExpiresOnce(api_client), Woken()
    watcher = ChildWatcher(api, [namespace], woken)
    watcher.collections = [Collection("/api/v1", "services", namespace)]
    watcher.start()
    try:
        wait_for(lambda: api.watches >= 2, what="watching again after the 410")
        # Both lists (before and after the expiry) woke the cluster of the Service.
        assert woken.count((namespace, "old")) == 2
        core.delete_namespaced_service("old-head-svc", namespace)
        wait_for(lambda: woken.count((namespace, "old")) > 2, what="the new watch works")
    finally:
        watcher.stop()


def test_a_big_list_comes_compressed_and_is_decoded_item_by_item(api_client, core, namespace):
    """Above 128 KiB the API server gzips a list when asked to: 60 pods of ~4 KiB each."""
    from ray_operator.childcache import ChildCache
    from ray_operator.observed import ObservedPod

    for i in range(60):
        body = _pod(f"p{i}", {c.LABEL_CLUSTER: "rc", c.LABEL_GROUP: "cpu"})
        body["metadata"]["annotations"] = {"filler": "x" * 4096}
        core.create_namespaced_pod(namespace, body)
    api, sizes = KubeApi(api_client), []
    send = api._send

    def recording(*args: Any, **kwargs: Any):
        response = send(*args, **kwargs)
        sizes.append(response.response.headers.get("Content-Encoding"))
        return response

    api._send = recording  # type: ignore[method-assign]
    cache = ChildCache("pods", ObservedPod.from_dict)
    watcher = ChildWatcher(api, [namespace], lambda found: None, caches=(cache,))
    version = watcher._list(Collection("/api/v1", "pods", namespace), first=True)
    assert int(version) > 0 and sizes == ["gzip"]
    assert len(cache) == 60 and cache.get((namespace, "rc"), "p7").group == "cpu"
