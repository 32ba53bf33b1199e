"""The coalescing work queue: dedup, per-key serialisation, re-run after a mid-flight
event, backoff after failures."""

from __future__ import annotations

import asyncio

from ray_operator.workqueue import WorkQueue


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=10))


class FakeTimers:
    """The queue's timers on a fake clock: recorded, fired by the test."""

    def __init__(self) -> None:
        self.pending: list[tuple[float, object, tuple[str, str]]] = []
        self.delays: list[float] = []

    def __call__(self, delay, callback, key):
        self.delays.append(delay)
        self.pending.append((delay, callback, key))
        return self

    def cancel(self) -> None:
        self.pending.clear()

    def fire_all(self) -> None:
        due, self.pending = self.pending, []
        for _, callback, key in due:
            callback(key)


async def until_idle(q: WorkQueue) -> None:
    """Yield to the loop (no wall-clock wait) until the queue has nothing to do."""
    while not q.idle:
        await asyncio.sleep(0)


async def until(predicate) -> None:
    while not predicate():
        await asyncio.sleep(0)


def test_events_for_a_waiting_key_collapse_into_one_run():
    async def scenario():
        seen: list = []

        async def worker(key):
            seen.append(key)

        q = WorkQueue(worker, concurrency=2)
        for _ in range(50):
            q.add(("ns", "a"))
        q.add(("ns", "b"))
        task = asyncio.create_task(q.run())
        await until_idle(q)
        task.cancel()
        return seen

    assert sorted(run(scenario())) == [("ns", "a"), ("ns", "b")]


def test_a_key_never_runs_twice_at_once_and_reruns_after_a_mid_flight_event():
    async def scenario():
        running, overlaps, runs = set(), [], []
        proceed = asyncio.Event()

        async def worker(key):
            if key in running:
                overlaps.append(key)
            running.add(key)
            runs.append(key)
            await proceed.wait()  # "working" until the test has sent its events
            running.discard(key)

        q = WorkQueue(worker, concurrency=4)
        q.add(("ns", "a"))
        task = asyncio.create_task(q.run())
        await until(lambda: runs)
        q.add(("ns", "a"))  # two events while reconciling
        q.add(("ns", "a"))
        proceed.set()
        await until_idle(q)
        task.cancel()
        return overlaps, runs

    overlaps, runs = run(scenario())
    assert overlaps == []
    assert runs == [("ns", "a"), ("ns", "a")]  # exactly one re-run for both events


def test_failures_retry_with_growing_backoff_then_stop_after_success():
    async def scenario():
        runs = 0
        timers = FakeTimers()

        async def worker(key):
            nonlocal runs
            runs += 1
            if runs < 3:
                raise RuntimeError("API server hiccup")

        q = WorkQueue(worker, concurrency=1, backoff_base=0.05, schedule=timers)
        q.add(("ns", "a"))
        task = asyncio.create_task(q.run())
        for _ in range(2):
            await until(lambda: timers.pending)  # a failure schedules the retry
            timers.fire_all()
        await until_idle(q)
        task.cancel()
        return runs, timers.delays

    runs, delays = run(scenario())
    assert runs == 3
    assert delays == [0.05, 0.1]  # doubling; nothing scheduled after the success


def test_worker_can_ask_to_come_back_later():
    async def scenario():
        runs = []
        timers = FakeTimers()

        async def worker(key):
            runs.append(key)
            return 0.05 if len(runs) == 1 else None

        q = WorkQueue(worker, schedule=timers)
        q.add(("ns", "a"))
        task = asyncio.create_task(q.run())
        await until(lambda: timers.pending)
        timers.fire_all()
        await until_idle(q)
        task.cancel()
        return runs, timers.delays

    runs, delays = run(scenario())
    assert len(runs) == 2 and delays == [0.05]


def test_a_pass_past_its_timeout_is_abandoned_and_retried():
    """A hung call must not hold a worker, or its cluster, forever."""

    async def scenario():
        started = []
        second = asyncio.Event()

        async def worker(key):
            started.append(key)
            if len(started) == 1:
                await asyncio.Event().wait()  # hangs: only the timeout ends it
            second.set()

        q = WorkQueue(worker, concurrency=1, backoff_base=0.01, pass_timeout=0.05)
        q.add(("ns", "a"))
        task = asyncio.create_task(q.run())
        await second.wait()
        task.cancel()
        return started

    assert run(scenario()) == [("ns", "a"), ("ns", "a")]


def test_longest_running_reports_the_oldest_active_pass():
    class Clock:
        now = 100.0

        def __call__(self):
            return self.now

    async def scenario():
        clock = Clock()
        entered, release = asyncio.Event(), asyncio.Event()

        async def worker(key):
            entered.set()
            await release.wait()

        q = WorkQueue(worker, concurrency=1, clock=clock)
        assert q.longest_running() == 0.0
        q.add(("ns", "a"))
        task = asyncio.create_task(q.run())
        await entered.wait()
        clock.now = 142.0
        longest = q.longest_running()
        release.set()
        task.cancel()
        return longest

    assert run(scenario()) == 42.0


def test_a_burst_of_child_events_makes_one_pass_after_the_delay():
    async def scenario():
        runs: list = []

        async def worker(key):
            runs.append(key)

        timers = FakeTimers()
        q = WorkQueue(worker, schedule=timers)
        task = asyncio.create_task(q.run())
        for _ in range(30):  # 30 pods of one cluster change within the delay
            q.add_soon(("ns", "a"), 0.05)
        assert timers.delays == [0.05] and not q.idle and runs == []
        timers.fire_all()
        await until_idle(q)
        assert runs == [("ns", "a")]

        q.add(("ns", "b"))  # queued, its pass not started: it will see the change
        q.add_soon(("ns", "b"), 0.05)
        assert timers.delays == [0.05]  # no second timer
        await until_idle(q)
        task.cancel()
        return runs

    assert run(scenario()) == [("ns", "a"), ("ns", "b")]
