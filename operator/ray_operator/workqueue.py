"""A coalescing work queue of RayCluster keys (namespace, name).

Any number of events for one cluster while it waits collapse into one reconcile; a key
is never reconciled by two workers at once; an event that arrives during a reconcile
makes the key run once more afterwards. Failed reconciles come back with exponential
backoff. Clusters are served in arrival order, so one huge cluster cannot starve the
others: each reconcile does a bounded amount of work and re-queues itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

log = logging.getLogger(__name__)

Key = tuple[str, str]
# A worker returns how many seconds until the key should run again (None: only on events).
Worker = Callable[[Key], Awaitable[float | None]]


class WorkQueue:
    def __init__(
        self,
        worker: Worker,
        concurrency: int = 4,
        backoff_base: float = 1.0,
        backoff_max: float = 300.0,
    ) -> None:
        self._worker = worker
        self._concurrency = concurrency
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._active: set[Key] = set()
        self._dirty: set[Key] = set()
        self._failures: dict[Key, int] = {}
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self.processed = 0

    def add(self, key: Key) -> None:
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def add_all(self, keys: Iterable[Key]) -> None:
        for key in keys:
            self.add(key)

    def add_after(self, key: Key, delay: float) -> None:
        """Run `key` after `delay` seconds (an earlier timer for it wins)."""
        if key in self._timers:
            return
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(delay, self._fire, key)

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def __len__(self) -> int:
        return len(self._queued) + len(self._active)

    async def run(self) -> None:
        workers = [asyncio.create_task(self._work()) for _ in range(self._concurrency)]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
            for timer in self._timers.values():
                timer.cancel()

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._active.add(key)
            retry: float | None = None
            try:
                retry = await self._worker(key)
                self._failures.pop(key, None)
            except asyncio.CancelledError:
                raise
            except Exception:
                failures = self._failures[key] = self._failures.get(key, 0) + 1
                retry = min(self._backoff_max, self._backoff_base * 2 ** (failures - 1))
                log.exception("reconcile of %s/%s failed (retry in %.0fs)", *key, retry)
            finally:
                self._active.discard(key)
                self.processed += 1
            if key in self._dirty:
                self._dirty.discard(key)
                self.add(key)
            elif retry is not None:
                self.add_after(key, retry)
