"""Leader election on a coordination.k8s.io Lease, for more than one operator replica.

Only the leader reconciles. The timing follows client-go's rules, so that two replicas
never act at once even with skewed wall clocks:

- a follower takes the Lease over only after the record in it (holder, renewTime)
  has stayed unchanged for `lease_seconds`, timed on the follower's own monotonic clock
  from the moment it first saw that record (never from the timestamps in the Lease);
- the leader counts its lease as held for `renew_deadline` (< `lease_seconds`) after
  the moment it *sent* the read that preceded its last successful renewal.

So the leader's own deadline always passes before any follower may take over. The
fence (`fence()`) enforces it: the API layer calls it before every write but the
Lease's, and it raises LostLeadership once the deadline has passed, so a leader that
was paused (SIGSTOP, a long GC, a starved node) and wakes up after losing the Lease
writes nothing. Renewal uses GET and PUT (`update`) only: the verbs the chart grants.

When renewal fails past the deadline, or another holder shows up, the replica exits
(the kubelet restarts it as a follower): stopping is the only safe answer to doubt.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from . import metrics
from .kube import KubeApi, LostLeadership

log = logging.getLogger(__name__)

# client-go's defaults (leaseDuration 15 s, renewDeadline 10 s, retryPeriod 2 s).
LEASE_SECONDS = 15.0
RENEW_DEADLINE = 10.0
RETRY_PERIOD = 2.0


def _micro_time() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        name: str,
        identity: str,
        lease_seconds: float = LEASE_SECONDS,
        renew_deadline: float = RENEW_DEADLINE,
        retry_period: float = RETRY_PERIOD,
        on_lost: Callable[[], None] = lambda: os._exit(1),
        clock: Callable[[], float] = time.monotonic,
        on_progress: Callable[[], None] = lambda: None,
    ) -> None:
        if not 0 < retry_period < renew_deadline < lease_seconds:
            raise ValueError("need 0 < retry period < renew deadline < lease duration")
        self.api = api
        self.namespace, self.name, self.identity = namespace, name, identity
        self.lease_seconds, self.renew_deadline = lease_seconds, renew_deadline
        self.retry_period = retry_period
        self.on_lost, self.clock, self.on_progress = on_lost, clock, on_progress
        self._valid_until = float("-inf")  # our clock: writes are allowed before this
        self._seen: tuple[Any, ...] | None = None  # the Lease record last seen
        self._seen_at = 0.0  # when it was first seen, on our clock
        self._stop = threading.Event()

    # -- the fence -------------------------------------------------------------------

    def holds_lease(self) -> bool:
        return self.clock() < self._valid_until

    def fence(self) -> None:
        """Raise LostLeadership unless this replica surely still holds the Lease."""
        if not self.holds_lease():
            metrics.WRITES_FENCED.inc()
            raise LostLeadership(
                f"not writing: lease {self.namespace}/{self.name} not renewed within "
                f"{self.renew_deadline:.0f}s"
            )

    # -- one round -------------------------------------------------------------------

    def try_acquire_or_renew(self) -> bool:
        """One attempt to take or renew the Lease; True if we hold it afterwards."""
        sent = self.clock()
        lease = self.api.get_lease(self.namespace, self.name)
        now = _micro_time()
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": round(self.lease_seconds),
            "renewTime": now,
        }
        if lease is None:
            ok = self.api.create_lease(
                self.namespace, self.name, {**spec, "acquireTime": now, "leaseTransitions": 0}
            )
        else:
            current = lease.get("spec") or {}
            holder = current.get("holderIdentity") or ""
            record = (holder, current.get("renewTime"), current.get("leaseDurationSeconds"))
            if record != self._seen:
                self._seen, self._seen_at = record, sent
            duration = current.get("leaseDurationSeconds") or self.lease_seconds
            if holder and holder != self.identity and sent < self._seen_at + duration:
                return False  # held by another replica that renewed within its duration
            transitions = current.get("leaseTransitions") or 0
            if holder == self.identity:
                spec["acquireTime"] = current.get("acquireTime") or now
                spec["leaseTransitions"] = transitions
            else:
                spec["acquireTime"] = now
                spec["leaseTransitions"] = transitions + 1
            ok = self.api.update_lease(lease, spec)
        if ok:
            self._valid_until = sent + self.renew_deadline
            metrics.LEADER.set(1)
        return ok

    # -- loops -----------------------------------------------------------------------

    def acquire(self) -> None:
        """Block until this replica holds the Lease, then keep renewing it."""
        log.info("waiting to lead: lease %s/%s as %s", self.namespace, self.name, self.identity)
        while not self._stop.is_set():
            try:
                if self.try_acquire_or_renew():
                    log.info("became leader (lease %s/%s)", self.namespace, self.name)
                    threading.Thread(target=self._renew, daemon=True, name="lease").start()
                    return
                self.on_progress()
            except Exception as err:  # API server unreachable: keep trying
                log.warning("leader election: %s", err)
            self._stop.wait(self.retry_period)

    def _renew(self) -> None:
        while not self._stop.wait(self.retry_period):
            try:
                if self.try_acquire_or_renew():
                    self.on_progress()
                    continue
                self._valid_until = float("-inf")
                log.error("lease %s/%s taken by another replica", self.namespace, self.name)
            except Exception as err:  # keep trying until our deadline passes
                log.warning("lease renewal failed: %s", err)
                if self.holds_lease():
                    continue
            self._lost()
            return

    def _lost(self) -> None:
        metrics.LEADER.set(0)
        log.error("lost leadership: exiting so that no two replicas reconcile")
        self.on_lost()

    def release(self) -> None:
        """On a clean shutdown: hand the Lease over at once instead of making the next
        leader wait out its duration (client-go's ReleaseOnCancel)."""
        self._stop.set()
        if not self.holds_lease():
            return
        self._valid_until = float("-inf")  # no write of ours may follow
        try:
            lease = self.api.get_lease(self.namespace, self.name)
            spec = (lease or {}).get("spec") or {}
            if lease and spec.get("holderIdentity") == self.identity:
                released = {**spec, "holderIdentity": None, "leaseDurationSeconds": 1}
                self.api.update_lease(lease, released)
                log.info("released lease %s/%s", self.namespace, self.name)
        except Exception as err:
            log.warning("could not release the lease: %s", err)
        metrics.LEADER.set(0)
