"""Leader election on a coordination.k8s.io Lease, for more than one operator replica.

Only the leader reconciles. A replica blocks in `acquire()` until it holds the Lease,
then renews it from a background thread. If it cannot renew before the Lease would
expire, it exits at once (the kubelet restarts it as a follower): two replicas must
never act on the same cluster, and stopping is the only safe answer to doubt.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable

from kubernetes import client
from kubernetes.client.rest import ApiException

log = logging.getLogger(__name__)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LeaderElector:
    def __init__(
        self,
        api_client: client.ApiClient,
        namespace: str,
        name: str,
        identity: str,
        lease_seconds: int = 15,
        renew_every: float = 5.0,
        on_lost: Callable[[], None] = lambda: os._exit(1),
    ) -> None:
        self.api = client.CoordinationV1Api(api_client)
        self.namespace, self.name, self.identity = namespace, name, identity
        self.lease_seconds, self.renew_every = lease_seconds, renew_every
        self.on_lost = on_lost
        self._stop = threading.Event()

    def _try(self) -> bool:
        """One attempt to take or renew the Lease; True if we hold it afterwards."""
        now = _now()
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.lease_seconds,
            "renewTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as err:
            if err.status != 404:
                raise
            body = {
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {**spec, "acquireTime": spec["renewTime"]},
            }
            try:
                self.api.create_namespaced_lease(self.namespace, body)
                return True
            except ApiException as create_err:
                if create_err.status == 409:
                    return False
                raise
        held_by = lease.spec.holder_identity
        renewed = lease.spec.renew_time
        duration = lease.spec.lease_duration_seconds or self.lease_seconds
        expired = renewed is None or renewed + dt.timedelta(seconds=duration) < now
        if held_by != self.identity and not expired:
            return False
        if held_by != self.identity:
            spec["acquireTime"] = spec["renewTime"]
            spec["leaseTransitions"] = (lease.spec.lease_transitions or 0) + 1
        body = {"metadata": {"resourceVersion": lease.metadata.resource_version}, "spec": spec}
        try:
            # resourceVersion makes this a compare-and-swap: a racing replica gets 409.
            self.api.patch_namespaced_lease(self.name, self.namespace, body)
            return True
        except ApiException as err:
            if err.status == 409:
                return False
            raise

    def acquire(self) -> None:
        log.info("waiting to lead: lease %s/%s as %s", self.namespace, self.name, self.identity)
        while not self._stop.is_set():
            try:
                if self._try():
                    log.info("became leader (lease %s/%s)", self.namespace, self.name)
                    threading.Thread(target=self._renew, daemon=True, name="lease").start()
                    return
            except ApiException as err:
                log.warning("leader election: %s", err.reason)
            self._stop.wait(self.renew_every)

    def _renew(self) -> None:
        last_ok = time.monotonic()
        while not self._stop.wait(self.renew_every):
            try:
                if self._try():
                    last_ok = time.monotonic()
                    continue
                log.error("lease %s/%s taken by another replica", self.namespace, self.name)
            except Exception as err:  # keep trying until the lease would expire
                log.warning("lease renewal failed: %s", err)
                if time.monotonic() - last_ok < self.lease_seconds - self.renew_every:
                    continue
            log.error("lost leadership: exiting so that no two replicas reconcile")
            self.on_lost()
            return

    def stop(self) -> None:
        self._stop.set()
