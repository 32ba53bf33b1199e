"""The pod cache: what it keeps, and when a pass may trust it (podcache.py)."""

from __future__ import annotations

from typing import Any

from ray_operator import constants as c
from ray_operator.podcache import PodCache, version_number

ALL = None  # the watch of all namespaces
KEY = ("ns", "rc")


def _pod(name: str, version: str, cluster: str = "rc", deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "ns",
        "resourceVersion": version,
        "labels": {c.LABEL_CLUSTER: cluster, c.LABEL_GROUP: "cpu"},
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"phase": "Running"}}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _synced(clock: Clock | None = None) -> PodCache:
    cache = PodCache(clock=clock or Clock(), timeout=10.0)
    cache.track(ALL)
    cache.replace(
        ALL, [cache.slim(_pod("a", "5")), cache.slim(_pod("x", "6", cluster="other"))], "10"
    )
    return cache


def _names(cache: PodCache, key=KEY) -> set[str] | None:
    view = cache.view(key)
    return None if view.pods is None else {p.name for p in view.pods}


def test_before_its_first_list_the_cache_sends_the_pass_to_list_pods():
    cache = PodCache()
    cache.track(ALL)
    view = cache.view(KEY)
    assert view.pods is None and view.list_now and view.unsynced
    assert not cache.wait_synced("ns", 0.01)


def test_pods_are_filed_under_the_cluster_their_label_names():
    cache = _synced()
    assert _names(cache) == {"a"} and _names(cache, ("ns", "other")) == {"x"}
    cache.apply(ALL, "MODIFIED", _pod("a", "11", cluster="other"))  # relabelled
    assert _names(cache) == set() and _names(cache, ("ns", "other")) == {"a", "x"}
    cache.apply(ALL, "DELETED", _pod("x", "12", cluster="other"))
    assert _names(cache, ("ns", "other")) == {"a"} and len(cache) == 1


def test_a_pass_waits_until_the_watch_brings_its_own_creates():
    cache = _synced()
    cache.created(KEY, "20")
    view = cache.view(KEY)
    assert view.pods is None and not view.list_now  # wait: the event wakes the cluster
    cache.apply(ALL, "ADDED", _pod("b", "20"))
    assert _names(cache) == {"a", "b"}


def test_a_create_seen_before_its_answer_needs_no_wait():
    cache = _synced()
    cache.apply(ALL, "ADDED", _pod("b", "20"))
    cache.apply(ALL, "DELETED", _pod("b", "21"))  # and already gone again
    cache.created(KEY, "20")
    assert _names(cache) == {"a"}


def test_a_bookmark_past_the_create_counts_as_reached():
    cache = _synced()
    cache.created(KEY, "20")
    cache.apply(ALL, "BOOKMARK", {"metadata": {"resourceVersion": "25"}})
    assert _names(cache) == {"a"}


def test_a_deleted_pod_must_be_seen_terminating_or_gone():
    cache = _synced()
    cache.deleted(KEY, "a")
    assert cache.view(KEY).pods is None  # still listed running: could be deleted twice
    cache.apply(ALL, "MODIFIED", _pod("a", "30", deleting=True))
    view = cache.view(KEY)
    assert view.pods is not None and view.pods[0].terminating


def test_an_unknown_outcome_makes_the_pass_list_until_the_watch_reaches_that_list():
    cache = _synced()
    cache.distrust(KEY)
    assert cache.view(KEY).list_now
    cache.listed(KEY, "40")
    assert cache.view(KEY).list_now  # the watch is behind the list: list again
    cache.apply(ALL, "MODIFIED", _pod("x", "41", cluster="other"))  # any event past it
    assert _names(cache) == {"a"}


def test_a_watch_that_lags_too_long_makes_the_pass_list():
    clock = Clock()
    cache = _synced(clock)
    cache.created(KEY, "50")
    assert not cache.view(KEY).list_now
    assert cache.recheck_in(KEY) == 10.0
    clock.now += 10.5
    assert cache.view(KEY).list_now and cache.recheck_in(KEY) == 0.1


def test_a_version_that_is_not_a_number_is_never_waited_on():
    assert version_number("abc") is None and version_number("12") == 12
    cache = _synced()
    cache.created(KEY, "abc")
    assert cache.view(KEY).list_now
    cache.listed(KEY, None)
    assert cache.view(KEY).list_now


def test_a_new_list_replaces_the_namespace_it_covers_only():
    cache = PodCache()
    one, two = "ns", "b"
    cache.track(one)
    cache.track(two)
    cache.replace(one, [cache.slim(_pod("a", "5"))], "10")
    other = _pod("z", "6")
    other["metadata"]["namespace"] = "b"
    cache.replace(two, [cache.slim(other)], "10")
    cache.replace(one, [cache.slim(_pod("c", "15"))], "16")  # after an expired watch
    assert _names(cache) == {"c"} and _names(cache, ("b", "rc")) == {"z"}


def test_a_forgotten_cluster_waits_on_nothing():
    cache = _synced()
    cache.created(KEY, "99")
    cache.forget(KEY)
    assert _names(cache) == {"a"}
