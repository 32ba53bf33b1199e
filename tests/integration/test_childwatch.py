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
    watcher._stream_lists = False  # paged lists here; streamed ones: the next test
    watcher.start()
    try:
        wait_for(lambda: api.watches >= 2, what="watching again after the 410")
        # Both lists (before and after the expiry) woke the cluster of the Service.
        assert woken.count((namespace, "old")) == 2
        core.delete_namespaced_service("old-head-svc", namespace)
        wait_for(lambda: woken.count((namespace, "old")) > 2, what="the new watch works")
    finally:
        watcher.stop()


class Requests(RecordingApi):
    """The real API layer, counting lists and watch requests."""

    def __init__(self, api_client: client.ApiClient) -> None:
        super().__init__(api_client)
        self.lists = self.watches = 0
        self.first_query: list[tuple[str, str]] = []

    def list_collection(self, *args: Any, **kwargs: Any):
        self.lists += 1
        return super().list_collection(*args, **kwargs)

    def watch_collection(self, path: str, query: list[tuple[str, str]], *args: Any, **kwargs: Any):
        self.watches += 1
        self.first_query = self.first_query or query
        return super().watch_collection(path, query, *args, **kwargs)


def test_services_come_as_one_streamed_list_that_goes_on_as_the_watch(api_client, core, namespace):
    from ray_operator.childcache import ChildCache
    from ray_operator.observed import ObservedService

    def service(name: str, cluster: str) -> dict[str, Any]:
        return {
            "metadata": {"name": name, "labels": {c.LABEL_CLUSTER: cluster}},
            "spec": {"clusterIP": "None", "ports": [{"name": "gcs", "port": 6379}]},
        }

    core.create_namespaced_service(namespace, service("a-head-svc", "a"))
    api, woken = Requests(api_client), Woken()
    cache = ChildCache("services", ObservedService.from_dict)
    # wake_on_first_list: the listed Service wakes its cluster, the sign the list ended
    watcher = ChildWatcher(api, [namespace], woken, caches=(cache,))
    watcher.collections = [Collection("/api/v1", "services", namespace)]
    watcher.start()
    try:
        wait_for(lambda: woken.count((namespace, "a")) == 1, what="the streamed list")
        assert cache.get((namespace, "a"), "a-head-svc") is not None
        core.create_namespaced_service(namespace, service("b-head-svc", "b"))
        wait_for(lambda: woken.count((namespace, "b")) == 1, what="the event after it")
        assert cache.get((namespace, "b"), "b-head-svc") is not None
    finally:
        watcher.stop()
    # One request (its server-side timeout is 30 s): the list and then the watch.
    assert (api.lists, api.watches) == (0, 1)
    assert ("sendInitialEvents", "true") in api.first_query


def test_an_api_server_that_cannot_stream_lists_gets_paged_ones():
    """Kubernetes 1.30, 1.31 and 1.33 have streamed lists off by default: such an API
    server refuses `sendInitialEvents` (422), and the watcher pages from then on."""
    from kubernetes import config

    from ray_operator_dev.devcluster import ControlPlane

    cp = ControlPlane.in_temp_dir(apiserver_feature_gates=("WatchList=false",)).start()
    watcher = None
    try:
        api_client = config.new_client_from_config(config_file=str(cp.kubeconfig))
        core = client.CoreV1Api(api_client)
        core.create_namespace({"metadata": {"name": "old"}})
        service = {
            "metadata": {"name": "a-head-svc", "labels": {c.LABEL_CLUSTER: "a"}},
            "spec": {"clusterIP": "None", "ports": [{"name": "gcs", "port": 6379}]},
        }
        core.create_namespaced_service("old", service)
        api, woken = Requests(api_client), Woken()
        watcher = ChildWatcher(api, ["old"], woken)
        watcher.collections = [Collection("/api/v1", "services", "old")]
        watcher.start()
        wait_for(lambda: woken.count(("old", "a")) == 1, what="the paged list")
        assert not watcher._stream_lists and api.lists == 1
        service["metadata"] = {"name": "b-head-svc", "labels": {c.LABEL_CLUSTER: "b"}}
        core.create_namespaced_service("old", service)
        wait_for(lambda: woken.count(("old", "b")) == 1, what="the watch after it")
    finally:
        if watcher is not None:
            watcher.stop()
        cp.cleanup()


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
