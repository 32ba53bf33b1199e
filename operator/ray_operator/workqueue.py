"""A coalescing work queue of RayCluster keys (namespace, name).

Any number of events for one cluster while it waits collapse into one reconcile; a key
is never reconciled by two workers at once; an event that arrives during a reconcile
makes the key run once more afterwards. Failed reconciles come back with exponential
backoff. Clusters are served in arrival order, so one huge cluster cannot starve the
others: each reconcile does a bounded amount of work and re-queues itself. A reconcile
that runs past `pass_timeout` is abandoned and retried like a failed one, so one hung
call can never hold a worker, or its cluster, forever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from . import metrics

log = logging.getLogger(__name__)

Key = tuple[str, str]
# A worker returns how many seconds until the key should run again (None: only on events).
Worker = Callable[[Key], Awaitable[float | None]]


class Timer(Protocol):
    def cancel(self) -> None: ...


# (delay, callback, key) -> a cancellable timer: the event loop's call_later, or a fake
# clock in tests.
Schedule = Callable[[float, Callable[[Key], None], Key], Timer]


class WorkQueue:
    def __init__(
        self,
        worker: Worker,
        concurrency: int = 4,
        backoff_base: float = 1.0,
        backoff_max: float = 300.0,
        pass_timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        schedule: Schedule | None = None,
    ) -> None:
        self._worker = worker
        self._concurrency = concurrency
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._active: dict[Key, float] = {}  # key -> when its reconcile started
        self._dirty: set[Key] = set()
        self._failures: dict[Key, int] = {}
        self._timers: dict[Key, Timer] = {}
        self._soon: dict[Key, Timer] = {}  # add_soon's
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._pass_timeout = pass_timeout
        self._clock = clock
        self._schedule = schedule

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
        schedule = self._schedule or asyncio.get_running_loop().call_later
        self._timers[key] = schedule(delay, self._fire, key)

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def add_soon(self, key: Key, delay: float) -> None:
        """`add` in `delay` seconds, unless the key waits in the queue already (its
        pass has not read anything yet): the events of a burst, such as a cluster's
        pods starting, then make one pass instead of one each."""
        if key in self._queued or key in self._soon:
            return
        schedule = self._schedule or asyncio.get_running_loop().call_later
        self._soon[key] = schedule(delay, self._fire_soon, key)

    def _fire_soon(self, key: Key) -> None:
        self._soon.pop(key, None)
        self.add(key)

    def __len__(self) -> int:
        return len(self._queued) + len(self._active)

    @property
    def idle(self) -> bool:
        """Nothing queued, running or waiting on a timer."""
        return not (self._queued or self._active or self._timers or self._soon)

    def longest_running(self) -> float:
        """Seconds the oldest reconcile still running has taken (0 if none runs)."""
        now = self._clock()
        return max((now - started for started in self._active.values()), default=0.0)

    async def run(self) -> None:
        workers = [asyncio.create_task(self._work()) for _ in range(self._concurrency)]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
            for timer in [*self._timers.values(), *self._soon.values()]:
                timer.cancel()

    def _backoff(self, key: Key) -> float:
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        return min(self._backoff_max, self._backoff_base * 2 ** (failures - 1))

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._active[key] = self._clock()
            retry: float | None = None
            try:
                retry = await asyncio.wait_for(self._worker(key), self._pass_timeout)
                self._failures.pop(key, None)
            except TimeoutError:
                metrics.PASS_TIMEOUTS.inc()
                retry = self._backoff(key)
                log.error(
                    "reconcile of %s/%s ran past %.0fs: abandoned (retry in %.0fs)",
                    *key, self._pass_timeout, retry,
                )  # fmt: skip
            except asyncio.CancelledError:
                raise
            except Exception:
                retry = self._backoff(key)
                log.exception("reconcile of %s/%s failed (retry in %.0fs)", *key, retry)
            finally:
                self._active.pop(key, None)
            if key in self._dirty:
                self._dirty.discard(key)
                self.add(key)
            elif retry is not None:
                self.add_after(key, retry)
