"""What a watch event of a Ray pod or Service means to the operator (pure parts)."""

import pytest

from ray_operator import constants as c
from ray_operator.childwatch import ChildWatcher, cluster_key, collections, wakes
from ray_operator.listwatch import Collection


def _meta(labels=None, namespace="ns", rv="42", owner=None):
    meta = {"name": "p", "namespace": namespace, "labels": labels, "resourceVersion": rv}
    if owner:
        meta["ownerReferences"] = [
            {"apiVersion": "ray.io/v1", "kind": "RayCluster", "name": owner, "uid": f"uid-{owner}",
             "controller": True}
        ]  # fmt: skip
    return {"metadata": meta}


def test_the_cluster_label_names_the_key():
    assert cluster_key(_meta({c.LABEL_CLUSTER: "rc"})) == ("ns", "rc")


@pytest.mark.parametrize(
    "obj", [_meta(None), _meta({"app": "x"}), _meta({c.LABEL_CLUSTER: ""}), {}]
)
def test_objects_without_a_cluster_wake_nothing(obj):
    assert cluster_key(obj) is None


class Api:
    """Answers one list, then one watch request with the given events."""

    def __init__(self, items=(), events=()):
        self.items, self.events = list(items), list(events)

    def list_collection(self, path, query, metadata_only=True):
        yield {"metadata": {"resourceVersion": "11"}, "items": self.items}

    def watch_collection(self, path, query, read_timeout, metadata_only=True):
        yield from self.events


@pytest.mark.parametrize("kind", ["ADDED", "MODIFIED", "DELETED"])
def test_changes_wake_their_cluster_and_advance_the_version(kind):
    event = {"type": kind, "object": _meta({c.LABEL_CLUSTER: "rc"}, rv="7", owner="rc")}
    woken = []
    watcher = ChildWatcher(Api(events=[event]), [], woken.append)  # type: ignore[arg-type]
    assert watcher._watch(Collection("/api/v1", "pods", None), "5") == "7"
    assert woken == [[(("ns", "rc"), "uid-rc")]]


def test_a_child_relabelled_into_another_cluster_wakes_both():
    """The cluster that lost it must replace it now, not at the next resync."""
    moved = _meta({c.LABEL_CLUSTER: "b"}, owner="a")
    assert wakes(moved) == [(("ns", "b"), "uid-a"), (("ns", "a"), "uid-a")]


def test_a_stranger_wakes_its_label_with_no_owner():
    assert wakes(_meta({c.LABEL_CLUSTER: "rc"})) == [(("ns", "rc"), None)]


def test_bookmarks_only_advance_the_version():
    woken = []
    bookmark = {"type": "BOOKMARK", "object": _meta(rv="99")}
    watcher = ChildWatcher(Api(events=[bookmark]), [], woken.append)  # type: ignore[arg-type]
    assert watcher._watch(Collection("/api/v1", "pods", None), "5") == "99" and woken == []


def test_all_namespaces_or_each_given_one():
    paths = [watched.path for watched in collections([])]
    assert paths == ["/api/v1/pods", "/api/v1/services", "/apis/batch/v1/jobs"]
    assert [(watched.path, watched.namespace) for watched in collections(["a"])] == [
        ("/api/v1/namespaces/a/pods", "a"),
        ("/api/v1/namespaces/a/services", "a"),
        ("/apis/batch/v1/namespaces/a/jobs", "a"),
    ]
    assert [watched.path for watched in collections(["a", "b"])] == [
        "/api/v1/namespaces/a/pods",
        "/api/v1/namespaces/a/services",
        "/apis/batch/v1/namespaces/a/jobs",
        "/api/v1/namespaces/b/pods",
        "/api/v1/namespaces/b/services",
        "/apis/batch/v1/namespaces/b/jobs",
    ]


def test_service_events_are_reported_as_such_before_the_wake():
    """The reconciler drops its copy of a head Service before the pass it wakes."""
    calls = []
    watcher = ChildWatcher(
        None,  # type: ignore[arg-type]  # no request is made
        [],
        lambda found: calls.append(("wake", tuple(found))),
        services_changed=lambda found, v: calls.append(("services", tuple(found), v)),
    )
    wake = ((("ns", "rc"), "uid-rc"),)
    watcher._wake("services", wake, "7")
    watcher._wake("pods", wake, "8")
    assert calls == [("services", wake, "7"), ("wake", wake), ("wake", wake)]


def test_the_start_up_list_can_leave_the_wakes_to_the_rayclusters_own_listing():
    api = Api(items=[_meta({c.LABEL_CLUSTER: "rc"}, owner="rc")])
    woken = []
    watcher = ChildWatcher(api, [], woken.append, wake_on_first_list=False)  # type: ignore[arg-type]
    pods = Collection("/api/v1", "pods", None)
    assert watcher._list(pods, first=True) == "11" and woken == []
    assert watcher._list(pods) == "11"  # after an expired watch: every cluster
    assert woken == [{(("ns", "rc"), "uid-rc")}]
