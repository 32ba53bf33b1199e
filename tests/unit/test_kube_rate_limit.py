"""The client-side request limit (`--qps`, `--burst`): a token bucket shared by every
KubeApi of the process."""

from __future__ import annotations

import pytest

from ray_operator import kube


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_burst_then_qps() -> None:
    t = FakeTime()
    limiter = kube.RateLimiter(qps=10, burst=3, clock=t.clock, sleep=t.sleep)
    waits = [limiter.acquire() for _ in range(6)]
    assert waits[:3] == [0, 0, 0]  # the burst goes at once
    assert waits[3:] == pytest.approx([0.1, 0.1, 0.1])  # then one per 1/qps
    assert t.now == pytest.approx(0.3)


def test_idle_time_refills_up_to_burst_only() -> None:
    t = FakeTime()
    limiter = kube.RateLimiter(qps=2, burst=2, clock=t.clock, sleep=t.sleep)
    limiter.acquire(), limiter.acquire()
    t.now += 100  # a long pause refills two tokens, not two hundred
    assert [limiter.acquire() for _ in range(3)] == pytest.approx([0, 0, 0.5])


def test_concurrent_callers_queue_without_exceeding_the_rate() -> None:
    """Reserved tokens go negative: the second waiter waits twice as long (the sleeps
    happen outside the lock, as with threads)."""
    t = FakeTime()
    limiter = kube.RateLimiter(qps=4, burst=1, clock=t.clock, sleep=lambda s: t.slept.append(s))
    assert [limiter.acquire() for _ in range(3)] == pytest.approx([0, 0.25, 0.5])


def test_requests_go_through_the_process_limiter(monkeypatch) -> None:
    calls: list[str] = []

    class Counting:
        def acquire(self) -> float:
            calls.append("acquire")
            return 0.0

    monkeypatch.setattr(kube, "_rate_limiter", Counting())
    api = kube.KubeApi.__new__(kube.KubeApi)
    api.fence = None

    class Stop(Exception):
        pass

    def serialize(**_: object):
        raise Stop

    api.api_client = type("C", (), {"param_serialize": staticmethod(serialize)})()
    with pytest.raises(Stop):
        api._send("GET", "/api/v1/namespaces/x/pods")
    assert calls == ["acquire"]


def test_set_rate_limit() -> None:
    kube.set_rate_limit(5, 10)
    try:
        assert (kube._rate_limiter.qps, kube._rate_limiter.burst) == (5, 10)
    finally:
        kube.set_rate_limit(0, 0)
    assert kube._rate_limiter is None
    with pytest.raises(ValueError):
        kube.RateLimiter(0, 1)
