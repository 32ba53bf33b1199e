"""The list-then-watch loop every watch of the operator runs (listwatch.py), against a
scripted API: what ends a watch, what makes it list again."""

from __future__ import annotations

import threading

import pytest
from kubernetes.client.rest import ApiException

from ray_operator.listwatch import Collection, ListWatch, WatchExpired, raise_error

PODS = Collection("/api/v1", "pods", None)


def test_an_expired_version_asks_for_a_new_list():
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}
    with pytest.raises(WatchExpired, match="too old"):
        raise_error(gone)


def test_other_errors_are_api_errors():
    with pytest.raises(ApiException) as err:
        raise_error({"type": "ERROR", "object": {"code": 500, "message": "etcd down"}})
    assert err.value.status == 500


def test_changes_are_not_errors():
    raise_error({"type": "MODIFIED", "object": {"metadata": {"resourceVersion": "3"}}})


class Recorder(ListWatch):
    """Lists and events, as they reach a subclass."""

    selector = "ray.io/cluster"

    def __init__(self, api) -> None:
        super().__init__(api, [PODS], retry_seconds=0)
        self.seen: list[tuple] = []

    def _list(self, watched, first):
        listed: dict[str, str] = {}
        names = [item["metadata"]["name"] for item in self._items(watched, listed)]
        self.seen.append(("list", first, names, listed["version"]))
        return listed["version"]

    def _event(self, watched, kind, obj, version):
        self.seen.append((kind, obj["metadata"]["name"], version))


class Api:
    def __init__(self, watches: list[list[dict]], recorder: list) -> None:
        self.watches, self.requests = watches, recorder

    def list_collection(self, path, query, metadata_only=True):
        self.requests.append(("list", path, tuple(query)))
        yield {"metadata": {"resourceVersion": "10", "continue": "x"},
               "items": [{"metadata": {"name": "a"}}]}  # fmt: skip
        yield {"metadata": {"resourceVersion": "10"}, "items": [{"metadata": {"name": "b"}}]}

    def watch_collection(self, path, query, read_timeout, metadata_only=True):
        self.requests.append(("watch", path, tuple(query)))
        yield from self.watches.pop(0) if self.watches else ()


def _event(kind: str, name: str, rv: str) -> dict:
    return {"type": kind, "object": {"metadata": {"name": name, "resourceVersion": rv}}}


def _run_stopping_at(loop: ListWatch, api: Api, method: str, when=lambda: True) -> None:
    """`_run` in a thread, stopped at the first call of `api.<method>` for which
    `when()` holds (that call still answers)."""
    original = getattr(api, method)

    def stopping(*args, **kwargs):
        if when():
            loop.stop()
        yield from original(*args, **kwargs)

    setattr(api, method, stopping)
    thread = threading.Thread(target=loop._run, args=(PODS,))
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_a_watch_resumes_from_the_last_version_and_a_410_lists_again():
    requests: list = []
    gone = {"type": "ERROR", "object": {"code": 410, "message": "too old"}}
    bookmark = {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}}
    api = Api(
        [[_event("ADDED", "c", "12"), bookmark], [_event("DELETED", "a", "16"), gone], []],
        requests,
    )
    loop = Recorder(api)
    # stopped once the scripted watches are spent
    _run_stopping_at(loop, api, "watch_collection", when=lambda: not api.watches)
    assert loop.seen == [
        ("list", True, ["a", "b"], "10"),  # both pages, the last one's version
        ("ADDED", "c", "12"),
        ("DELETED", "a", "16"),
        ("list", False, ["a", "b"], "10"),  # after the 410: a list that is not the first
    ]
    watch_versions = [dict(q)["resourceVersion"] for kind, _, q in requests if kind == "watch"]
    assert watch_versions[:3] == ["10", "15", "10"]  # the bookmark moved it on
    assert all(dict(q)["labelSelector"] == "ray.io/cluster" for _, _, q in requests)


class Streams(Recorder):
    def streams(self, watched):
        return True


class StreamingApi(Api):
    """Answers a streamed list as the API server does, or as one that cannot."""

    def __init__(self, stream: list[dict] | ApiException, recorder: list) -> None:
        super().__init__([], recorder)
        self.stream = stream

    def watch_collection(self, path, query, read_timeout, metadata_only=True):
        self.requests.append(("watch", path, tuple(query)))
        if ("sendInitialEvents", "true") not in query:
            return
        if isinstance(self.stream, ApiException):
            raise self.stream
        yield from self.stream


END = {
    "type": "BOOKMARK",
    "object": {"metadata": {"resourceVersion": "20",
                            "annotations": {"k8s.io/initial-events-end": "true"}}},
}  # fmt: skip


def test_a_streamed_list_ends_at_its_bookmark_and_goes_on_as_the_watch():
    requests: list = []
    api = StreamingApi([_event("ADDED", "a", "5"), END, _event("MODIFIED", "a", "21")], requests)
    loop = Streams(api)
    assert loop._list(PODS, True) == "20"
    assert loop.seen == [("list", True, ["a"], "20")]
    assert loop._watch(PODS, "20") == "21"  # the same request, no new one
    assert loop.seen[-1] == ("MODIFIED", "a", "21")
    assert [kind for kind, _, _ in requests] == ["watch"]


@pytest.mark.parametrize(
    "stream",
    [
        ApiException(status=422, reason="sendInitialEvents is forbidden"),
        [_event("ADDED", "a", "5")],
    ],
    ids=["refused", "no bookmark"],
)
def test_a_server_that_does_not_stream_lists_gets_paged_lists(stream):
    requests: list = []
    api = StreamingApi(stream, requests)
    loop = Streams(api)
    _run_stopping_at(loop, api, "list_collection")  # the paged list is the last step
    assert loop.seen == [("list", True, ["a", "b"], "10")]  # the paged list
    assert [kind for kind, _, _ in requests][:2] == ["watch", "list"]
    assert not loop._stream_lists
