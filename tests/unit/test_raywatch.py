"""What the RayCluster and RayJob watches hand on (raywatch.py): every listed object,
every change, and after a list that replaces an expired watch, the deletions missed."""

from __future__ import annotations

from ray_operator import constants as c
from ray_operator.raywatch import API, RayWatcher, collections

CLUSTERS = collections([])[0]


def _obj(name: str, namespace: str = "ns") -> dict:
    return {"metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"}}


class Api:
    def __init__(self, *lists: list[dict]) -> None:
        self.lists = list(lists)
        self.asked: list[tuple[str, bool]] = []

    def list_collection(self, path, query, metadata_only=True):
        self.asked.append((path, metadata_only))
        yield {"metadata": {"resourceVersion": "9"}, "items": self.lists.pop(0)}


def _watcher(api: Api, namespaces=()) -> tuple[RayWatcher, list, list]:
    clusters: list = []
    rayjobs: list = []
    watcher = RayWatcher(
        api,  # type: ignore[arg-type]
        namespaces,
        lambda kind, key, obj: clusters.append((kind, key[1])),
        lambda kind, key, obj: rayjobs.append((kind, key[1])),
    )
    return watcher, clusters, rayjobs


def test_rayclusters_and_rayjobs_in_every_watched_namespace():
    assert [w.path for w in collections([])] == [f"{API}/rayclusters", f"{API}/rayjobs"]
    assert [w.path for w in collections(["a", "b"])] == [
        f"{API}/namespaces/a/rayclusters", f"{API}/namespaces/a/rayjobs",
        f"{API}/namespaces/b/rayclusters", f"{API}/namespaces/b/rayjobs",
    ]  # fmt: skip


def test_rayclusters_come_whole_and_rayjobs_as_metadata():
    watcher, _, _ = _watcher(Api())
    assert [watcher.metadata_only(w) for w in watcher.collections] == [False, True]
    assert watcher.selector is None  # every RayCluster is ours


def test_every_listed_cluster_is_handed_on_and_a_later_list_reports_the_deleted():
    api = Api([_obj("a"), _obj("b")], [_obj("b"), _obj("c")])
    watcher, clusters, rayjobs = _watcher(api)
    assert watcher._list(CLUSTERS, first=True) == "9"
    assert clusters == [("ADDED", "a"), ("ADDED", "b")]
    watcher._event(CLUSTERS, "ADDED", _obj("d"), "10")
    watcher._event(CLUSTERS, "DELETED", _obj("b"), "11")
    # the watch expired; meanwhile a and d were deleted, b came back, c was created
    clusters.clear()
    watcher._list(CLUSTERS)
    assert clusters[:2] == [("ADDED", "b"), ("ADDED", "c")]
    assert sorted(clusters[2:]) == [("DELETED", "a"), ("DELETED", "d")]
    assert rayjobs == [] and api.asked == [(CLUSTERS.path, False)] * 2


def test_rayjob_events_go_to_the_rayjobs():
    watcher, clusters, rayjobs = _watcher(Api())
    rayjob_collection = watcher.collections[1]
    assert rayjob_collection.resource == c.JOB_PLURAL
    watcher._event(rayjob_collection, "MODIFIED", _obj("j"), "4")
    assert rayjobs == [("MODIFIED", "j")] and clusters == []
