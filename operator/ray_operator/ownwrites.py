"""Which RayCluster watch events are the echo of our own status writes.

A status write produces a new resourceVersion, and the watch then delivers it like
any other change. The pass that wrote it already saw everything that version holds,
so that event needs no pass of its own (KubeRay filters status-only updates with a
generation predicate; this is narrower: only our own write is skipped, a user's or
the autoscaler's change to the status still wakes the cluster).

An event can arrive before the write returns its version: such events are held until
the write ends, and the writer learns whether any of them was someone else's.
Everything here runs on the event loop, so it needs no lock.
"""

from __future__ import annotations

Key = tuple[str, str]


class OwnStatusWrites:
    def __init__(self) -> None:
        self._last: dict[Key, str] = {}  # the version our last write produced
        self._pending: dict[Key, list[str | None]] = {}  # events seen during a write
        self._unseen: set[Key] = set()  # last write made, its echo not arrived yet

    def begin(self, key: Key) -> None:
        self._pending[key] = []

    def end(self, key: Key, version: str | None) -> bool:
        """The write finished (version None: it failed). True if an event of another
        writer arrived meanwhile, which then needs a pass of its own."""
        seen = self._pending.pop(key, [])
        if version is None:
            return bool(seen)
        self._last[key] = version
        if version not in seen:
            self._unseen.add(key)
        return any(other != version for other in seen)

    def unseen(self, key: Key) -> bool:
        """True while the watch has not yet delivered our last write: a body it
        delivered before lacks what we wrote."""
        return key in self._unseen

    def is_own(self, key: Key, resource_version: str | None) -> bool:
        """True for the echo of our own write, or an event that arrived while a write
        was in flight (the writer decides about those when it ends)."""
        if key in self._pending:
            self._pending[key].append(resource_version)
            return True
        own = resource_version is not None and self._last.get(key) == resource_version
        if own:
            self._unseen.discard(key)
        return own

    def forget(self, key: Key) -> None:
        self._last.pop(key, None)
        self._unseen.discard(key)
