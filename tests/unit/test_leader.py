"""Leader election timing and the write fence, on a fake clock and an in-memory Lease
store with the API server's compare-and-swap (resourceVersion) semantics. The real
API server and the chart's RBAC are in tests/integration/test_faults_leader.py."""

from __future__ import annotations

import copy
import threading
from typing import Any

import pytest
from kubernetes.leaderelection.electionconfig import Config as ElectionConfig
from kubernetes.leaderelection.leaderelection import LeaderElection
from kubernetes.leaderelection.leaderelectionrecord import LeaderElectionRecord

from ray_operator import metrics
from ray_operator.kube import LostLeadership
from ray_operator.leader import RENEW_DEADLINE, LeaderElector


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class LeaseStore:
    """get/create/update of one Lease, as KubeApi offers them; counts writes."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.writes = 0

    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.lease)

    def create_lease(self, namespace: str, name: str, spec: dict[str, Any]) -> bool:
        if self.lease is not None:
            return False
        self._store(namespace, name, spec)
        return True

    def update_lease(self, lease: dict[str, Any], spec: dict[str, Any]) -> bool:
        if lease["metadata"]["resourceVersion"] != str(self.version):
            return False  # 409: someone wrote it since it was read
        self._store(lease["metadata"]["namespace"], lease["metadata"]["name"], spec)
        return True

    def _store(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        self.version += 1
        self.writes += 1
        meta = {"name": name, "namespace": namespace, "resourceVersion": str(self.version)}
        self.lease = {"metadata": meta, "spec": copy.deepcopy(spec)}

    @property
    def holder(self) -> str | None:
        return (self.lease or {}).get("spec", {}).get("holderIdentity")


def elector(store: LeaseStore, clock: Clock, identity: str, lost: list[str]) -> LeaderElector:
    return LeaderElector(
        store,  # type: ignore[arg-type]
        "ray-system",
        "ray-operator-leader",
        identity,
        clock=clock,
        on_lost=lambda: lost.append(identity),
    )


def test_the_first_replica_takes_the_lease_and_may_write():
    store, clock = LeaseStore(), Clock()
    a = elector(store, clock, "a", [])
    assert a.try_acquire_or_renew()
    assert store.holder == "a" and store.lease["spec"]["leaseTransitions"] == 0
    a.fence()  # no exception: writes allowed


def test_a_follower_waits_a_full_lease_after_it_last_saw_a_change():
    store, clock = LeaseStore(), Clock()
    a, b = elector(store, clock, "a", []), elector(store, clock, "b", [])
    assert a.try_acquire_or_renew()
    for _ in range(20):  # the leader renews every 2 s: the follower never gets in
        clock.now += 2
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
    # The leader stops renewing: the follower's clock starts at the last change it saw.
    b.try_acquire_or_renew()
    seen_at = clock.now
    clock.now = seen_at + 14.9
    assert not b.try_acquire_or_renew()
    clock.now = seen_at + 15.1
    assert b.try_acquire_or_renew()
    assert store.holder == "b" and store.lease["spec"]["leaseTransitions"] == 1


def test_a_follower_ignores_the_wall_clock_in_the_lease():
    """A renewTime far in the past (a skewed clock) is no reason to take over: only
    an unchanged record, timed on the follower's own clock, is."""
    store, clock = LeaseStore(), Clock()
    ancient = "2001-01-01T00:00:00.000000Z"
    store._store(
        "ray-system",
        "ray-operator-leader",
        {"holderIdentity": "a", "leaseDurationSeconds": 15, "renewTime": ancient},
    )
    b = elector(store, clock, "b", [])
    assert not b.try_acquire_or_renew()
    clock.now += 15.1
    assert b.try_acquire_or_renew()


def test_the_old_leader_is_fenced_before_anyone_can_take_over():
    """SIGSTOP in miniature: the leader stops right after a renewal; by the time a
    follower may take over, the leader's fence has long been shut."""
    store, clock = LeaseStore(), Clock()
    a, b = elector(store, clock, "a", []), elector(store, clock, "b", [])
    assert a.try_acquire_or_renew()
    renewed = clock.now
    assert not b.try_acquire_or_renew()  # the follower sees the record now
    fenced_before = metrics.WRITES_FENCED._value.get()
    clock.now = renewed + 10.01  # past the renew deadline: no more writes
    with pytest.raises(LostLeadership):
        a.fence()
    assert metrics.WRITES_FENCED._value.get() == fenced_before + 1
    assert not b.try_acquire_or_renew()  # and the follower still may not take over
    clock.now = renewed + 15.1
    assert b.try_acquire_or_renew()
    with pytest.raises(LostLeadership):
        a.fence()


def test_a_renewal_that_finds_another_holder_loses_at_once():
    store, clock = LeaseStore(), Clock()
    lost: list[str] = []
    a, b = elector(store, clock, "a", lost), elector(store, clock, "b", lost)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    clock.now += 16  # a was paused: b saw nothing change for a full lease
    assert b.try_acquire_or_renew()
    assert not a.try_acquire_or_renew()  # a wakes up: the Lease is b's
    with pytest.raises(LostLeadership):
        a.fence()


def test_a_racing_write_loses_the_compare_and_swap():
    store, clock = LeaseStore(), Clock()
    a = elector(store, clock, "a", [])
    assert a.try_acquire_or_renew()
    stale = store.get_lease("ray-system", "ray-operator-leader")
    assert a.try_acquire_or_renew()  # someone (here: a) wrote meanwhile
    assert not store.update_lease(stale, {"holderIdentity": "b"})
    assert store.holder == "a"


def test_release_hands_the_lease_over_at_once_and_shuts_the_fence():
    store, clock = LeaseStore(), Clock()
    a, b = elector(store, clock, "a", []), elector(store, clock, "b", [])
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    a.release()
    assert store.holder is None
    with pytest.raises(LostLeadership):
        a.fence()
    assert b.try_acquire_or_renew()  # no wait for the duration


def test_timings_must_keep_the_deadline_inside_the_lease():
    with pytest.raises(ValueError, match="renew deadline < lease duration"):
        LeaderElector(LeaseStore(), "ns", "l", "a", lease_seconds=10, renew_deadline=10)  # type: ignore[arg-type]


class HungLock:
    """A Lease lock for kubernetes.leaderelection whose renewals hang after the first,
    as a call on a silently dropped connection does (that library sets no timeout)."""

    def __init__(self) -> None:
        self.name, self.namespace, self.identity = "lease", "ns", "a"
        self.renewed = 0
        self.release = threading.Event()
        self.record = LeaderElectionRecord("a", "3", "2026-01-01 00:00:00", "2026-01-01 00:00:00")

    def get(self, name: str, namespace: str):
        return True, self.record

    def create(self, name: str, namespace: str, election_record) -> bool:
        return False

    def update(self, name: str, namespace: str, updated_record) -> bool:
        self.renewed += 1
        if self.renewed > 1:
            self.release.wait(30)  # hung until the test ends
        return True


def test_the_client_librarys_election_keeps_leading_through_a_hung_renewal():
    """Why leader.py and not kubernetes.leaderelection: the library's renewals have no
    timeout and nothing fences the work it started, so a renewal hung on a dead
    connection leaves the old leader 'leading' past its whole lease, while a follower
    may already have taken over. Ours refuses writes at its renew deadline however
    long the renewal hangs."""
    lock = HungLock()
    stopped, started = threading.Event(), threading.Event()
    config = ElectionConfig(lock, 3, 2, 1, started.set, stopped.set)
    threading.Thread(target=LeaderElection(config).run, daemon=True).start()
    try:
        assert started.wait(10)
        # Past the lease (3 s) and then some, the library still has not stopped leading.
        assert not stopped.wait(3 + 1 + 1)
        assert lock.renewed == 2  # the second renewal is the one that hangs
    finally:
        lock.release.set()

    store, clock = LeaseStore(), Clock()
    ours = elector(store, clock, "a", [])
    assert ours.try_acquire_or_renew()
    clock.now += RENEW_DEADLINE + 0.01  # no renewal completed since: it may be hung
    with pytest.raises(LostLeadership):
        ours.fence()
