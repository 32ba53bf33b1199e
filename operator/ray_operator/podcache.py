"""The Ray pods the child watch delivered (childcache.py), and when a pass may trust them.

A pass plans from this cache instead of listing its cluster's pods on every pass: a
200-pod cluster was listed (and decoded) 8 to 12 times while its pods started, more
than half of the operator's CPU (bench/RESULTS.md). The watch delivers each change of
a Ray pod once, and only `ObservedPod`s are kept, never whole pods.

A cache lags the API server, and planning from a cache that has not yet seen our own
creates would create those pods again. So a cluster's view is trusted only when every
write the operator made to its pods has come back through the watch (client-go calls
these "expectations"):
- a pod create or a consistent list returned a resourceVersion: the watch must have
  reached it (resourceVersions of one resource grow with etcd's revision; the watch
  delivers changes in that order);
- a pod delete: the pod must be gone from the cache or terminating;
- anything whose outcome is unknown (a failed or abandoned pass, a failed write, a
  write that returned no version): passes list the pods (a consistent read) until
  the watch has reached the version of such a list.
A pass that finds its own writes unseen does nothing: the watch event it waits for
wakes the cluster again. After `EXPECTATION_TIMEOUT` it lists instead, so a watch
that stalls can delay a cluster, never stop it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .childcache import ChildCache, Key, version_number
from .observed import ObservedPod

EXPECTATION_TIMEOUT = 10.0  # seconds a pass waits for the watch before it lists


@dataclass
class _Expected:
    since: float  # when the oldest write still unseen was made
    version: int | None = None  # our creates: the watch must reach this version
    gone: set[str] = field(default_factory=set)  # pods deleted, still listed running
    listed: int | None = None  # list until the watch reaches this list's version
    distrusted: bool = False  # an outcome is unknown: list on the next pass


@dataclass(frozen=True)
class PodView:
    """What a pass may plan from: `pods` when the cache is trusted; else `list_now`
    (list the pods) or neither (wait for the watch). `unsynced`: the watch has not
    delivered its first list yet."""

    pods: tuple[ObservedPod, ...] | None = None
    list_now: bool = False
    unsynced: bool = False


class PodCache(ChildCache[ObservedPod]):
    """The Ray pods, and per cluster the pod writes of ours not yet seen."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = EXPECTATION_TIMEOUT,
    ) -> None:
        super().__init__("pods", ObservedPod.from_dict)
        self._clock = clock
        self._timeout = timeout
        self._expected: dict[Key, _Expected] = {}

    # -- the reconciler's side ---------------------------------------------------------

    def view(self, key: Key) -> PodView:
        with self._lock:
            scope = self._scope(key[0])
            synced = self._synced.get(scope)
            if synced is None or not synced.is_set():
                return PodView(list_now=True, unsynced=synced is not None)
            expected = self._expected.get(key)
            if expected is not None and not self._met(key, scope, expected):
                if (
                    expected.distrusted
                    or (expected.version is None and not expected.gone)  # only `listed`
                    or self._clock() - expected.since > self._timeout
                ):
                    return PodView(list_now=True)
                return PodView()
            self._expected.pop(key, None)
            return PodView(pods=tuple((self._by_cluster.get(key) or {}).values()))

    def _met(self, key: Key, scope: str | None, expected: _Expected) -> bool:
        reached = self._reached.get(scope, -1)
        if expected.version is not None and reached >= expected.version:
            expected.version = None
        if expected.listed is not None and reached >= expected.listed:
            expected.listed = None
        pods = self._by_cluster.get(key) or {}
        expected.gone = {n for n in expected.gone if n in pods and not pods[n].terminating}
        return not (
            expected.distrusted
            or expected.version is not None
            or expected.gone
            or expected.listed is not None
        )

    def recheck_in(self, key: Key) -> float:
        """Seconds until a waiting cluster should be looked at even if the watch stays
        silent: when its wait times out (the event it waits for usually comes first)."""
        with self._lock:
            expected = self._expected.get(key)
            since = expected.since if expected is not None else self._clock()
            return max(0.1, since + self._timeout - self._clock())

    def listed(self, key: Key, version: str | None) -> None:
        """A pass listed the cluster's pods at `version`: what the watch must reach
        before the cache is trusted again (it covers every write made before)."""
        number = version_number(version)
        with self._lock:
            if number is None:
                self._expected[key] = _Expected(self._clock(), distrusted=True)
            else:
                self._expected[key] = _Expected(self._clock(), listed=number)

    def created(self, key: Key, version: str | None) -> None:
        """A pod create returned this resourceVersion."""
        number = version_number(version)
        with self._lock:
            expected = self._expecting(key)
            if number is None:
                expected.distrusted = True
            else:
                expected.version = max(expected.version or number, number)

    def deleted(self, key: Key, name: str) -> None:
        with self._lock:
            self._expecting(key).gone.add(name)

    def distrust(self, key: Key) -> None:
        """An outcome is unknown (a failed or abandoned pass): list on the next pass."""
        with self._lock:
            self._expecting(key).distrusted = True

    def forget(self, key: Key) -> None:
        with self._lock:
            self._expected.pop(key, None)

    def _expecting(self, key: Key) -> _Expected:
        expected = self._expected.get(key)
        if expected is None:
            expected = self._expected[key] = _Expected(self._clock())
        return expected
