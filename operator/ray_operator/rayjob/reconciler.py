"""One pass of one RayJob: observe, plan (planner.py), act, write the status.

Level-triggered: every pass reads the RayJob, its RayCluster and its submitter Job
afresh, and asks the dashboard about the job only while it runs. The returned delay
re-queues the RayJob (every few seconds while it runs, at the TTL when one is due), so
polling a job costs a queue slot for one bounded pass, never a blocked thread.
API and dashboard calls run in a thread pool; each dashboard call is bounded by its
own timeout, so an unreachable head delays only its own RayJob.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from kubernetes.client.rest import ApiException

from .. import constants as c
from .. import metrics
from ..kube import KubeApi, LostLeadership
from . import builders as b
from .dashboard import DEFAULT_TIMEOUT, Dashboard, DashboardError
from .planner import ACTIVE, FINALIZER, Action, Decision, JobInfo, Observed, plan

log = logging.getLogger(__name__)
T = TypeVar("T")
Key = tuple[str, str]


@dataclass
class RayJobConfig:
    api_threads: int = 8
    dashboard_timeout: float = DEFAULT_TIMEOUT
    cluster_domain: str = c.DEFAULT_CLUSTER_DOMAIN
    retry_after_failure: float = 5.0


class RayJobReconciler:
    def __init__(
        self,
        api: KubeApi,
        config: RayJobConfig | None = None,
        dashboard: Callable[[str, float], Dashboard] = Dashboard,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.api = api
        self.config = config or RayJobConfig()
        self._dashboard = dashboard
        self._clock = clock
        self._pool = ThreadPoolExecutor(self.config.api_threads, thread_name_prefix="rayjob")
        self._own_writes: dict[Key, str] = {}

    def is_own_write(self, key: Key, resource_version: str | None) -> bool:
        return resource_version is not None and self._own_writes.get(key) == resource_version

    def forget(self, key: Key) -> None:
        self._own_writes.pop(key, None)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def reconcile(self, key: Key) -> float | None:
        try:
            return await self._reconcile(*key)
        except LostLeadership as err:
            log.warning("%s/%s: %s", *key, err)
            return None
        except ApiException as err:
            if err.status in (409, 422):  # most often: computed from an older RayJob
                log.info("%s/%s: write refused (%s %s), again in 1s", *key, err.status, err.reason)
                return 1.0
            metrics.RECONCILE_ERRORS.inc()
            raise

    async def _reconcile(self, namespace: str, name: str) -> float | None:
        rayjob = await self._call(self.api.get_rayjob, namespace, name)
        if rayjob is None:
            self.forget((namespace, name))
            return None
        status = rayjob.get("status") or {}
        ds = status.get("jobDeploymentStatus") or ""
        cluster_name = status.get("rayClusterName")
        ray_cluster = submitter = job = None
        if cluster_name:
            ray_cluster = await self._call(self.api.get_cluster, namespace, cluster_name)
        if b.mode(rayjob) == c.MODE_K8S_JOB and ds != c.DEPLOY_NEW:
            submitter = await self._call(self.api.get_batch_job, namespace, name)
        deleting = bool(rayjob["metadata"].get("deletionTimestamp"))
        if ds == c.DEPLOY_RUNNING and not deleting and ray_cluster is not None:
            job = await self._job_info(ray_cluster, status.get("jobId") or "")
        decision = plan(
            Observed(
                rayjob=rayjob, now=self._clock(), cluster=ray_cluster, submitter=submitter,
                job=job, suffix=b.random_suffix(), cluster_domain=self.config.cluster_domain,
            )
        )  # fmt: skip
        for reason, message in decision.warnings:
            self._event(rayjob, "Warning", reason, message)
        for action in decision.actions:
            if not await self._act(rayjob, ray_cluster, action):
                return self.config.retry_after_failure
        if decision.status != status and not deleting:
            version = await self._call(self.api.replace_rayjob_status, rayjob, decision.status)
            self._own_writes[(namespace, name)] = version
            _log_transition(rayjob, status, decision)
        return decision.requeue

    async def _job_info(self, ray_cluster: dict[str, Any], job_id: str) -> JobInfo:
        address = b.dashboard_address(ray_cluster)
        if address is None:
            return JobInfo(error="the head pod has no IP")
        try:
            client = self._dashboard(address, self.config.dashboard_timeout)
            info = await self._call(client.job_info, job_id)
        except DashboardError as err:
            return JobInfo(error=str(err))
        return JobInfo(missing=True) if info is None else JobInfo(info=info)

    async def _act(self, rayjob: dict[str, Any], ray_cluster: dict | None, action: Action) -> bool:
        """Run one action; False (and a Warning event) if it failed."""
        ns, name = rayjob["metadata"]["namespace"], rayjob["metadata"]["name"]
        try:
            match action.kind:
                case "add-finalizer" | "remove-finalizer":
                    present = action.kind == "add-finalizer"
                    await self._call(self.api.set_rayjob_finalizer, rayjob, FINALIZER, present)
                    if present:  # the status patch must test the new version
                        fresh = await self._call(self.api.get_rayjob, ns, name)
                        if fresh is not None:
                            rayjob["metadata"] = fresh["metadata"]
                case "create-cluster":
                    if not await self._call(self.api.create_cluster, action.body):
                        return True  # exists already: the next pass reads it
                case "delete-cluster":
                    await self._call(self.api.delete_cluster, ns, action.name)
                case "suspend-workers":
                    await self._call(self.api.suspend_worker_groups, action.body)
                case "create-submitter":
                    if not await self._call(self.api.create_batch_job, action.body):
                        return True
                case "delete-submitter":
                    await self._call(self.api.delete_batch_job, ns, action.name)
                case "delete-self":
                    await self._call(self.api.delete_rayjob, ns, name)
                case "submit-job" | "stop-job":
                    address = b.dashboard_address(ray_cluster or {})
                    if address is None:
                        raise DashboardError("the head pod has no IP")
                    client = self._dashboard(address, self.config.dashboard_timeout)
                    if action.kind == "submit-job":
                        await self._call(client.submit, action.body)
                    else:
                        await self._call(client.stop, action.name)
        except (ApiException, DashboardError) as err:
            if action.kind == "stop-job":  # best effort, as KubeRay: deletion goes on
                log.info("%s/%s: could not stop Ray job %s: %s", ns, name, action.name, err)
                return True
            detail = err.reason if isinstance(err, ApiException) else str(err)
            reason = "FailedTo" + "".join(p.title() for p in action.kind.split("-"))
            self._event(rayjob, "Warning", reason, f"{action.kind} {action.name}: {detail}")
            return False
        if action.event:
            self._event(rayjob, "Normal", *action.event)
        return True

    def _event(self, rayjob: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self._pool.submit(self.api.post_event, rayjob, type_, reason, message)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _log_transition(rayjob: dict[str, Any], old: dict[str, Any], decision: Decision) -> None:
    new = decision.status
    before = (old.get("jobDeploymentStatus") or "New", old.get("jobStatus") or "")
    after = (new.get("jobDeploymentStatus") or "New", new.get("jobStatus") or "")
    if before != after:
        log.info(
            "rayjob %s/%s: %s/%s -> %s/%s",
            rayjob["metadata"]["namespace"], rayjob["metadata"]["name"], *before, *after,
        )  # fmt: skip


__all__ = ["ACTIVE", "RayJobConfig", "RayJobReconciler"]
