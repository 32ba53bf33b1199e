"""KubeRay v1.6's RayJob state machine as a pure function: observed facts in, actions,
events and the new status out. Nothing here reads a clock or the network.

    New -> Initializing -> Running -> Complete | Failed
    Initializing | Running --suspend--> Suspending -> Suspended --resume--> New
    Failed (retries left) -> Retrying -> New          (a new RayCluster each time)
    InteractiveMode: Initializing -> Waiting (for spec.jobId) -> Running
    anything -> ValidationFailed (a spec the CRD accepts but that cannot run)

Every status change is written before the action it announces is needed again: the
cluster's and job's names are chosen and stored in New, created in Initializing, so a
crash between the two steps re-creates the same names, never a second cluster.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from .. import constants as c
from . import builders as b

Body = dict[str, Any]
FINALIZER = "ray.io/rayjob-finalizer"
ACTIVE = (c.DEPLOY_INITIALIZING, c.DEPLOY_RUNNING, c.DEPLOY_WAITING)


@dataclass(frozen=True)
class JobInfo:
    """What the dashboard said about the job: `info` (Ray's JobDetails), or `missing`
    (404: never submitted), or `error` (the head could not be reached)."""

    info: Body | None = None
    missing: bool = False
    error: str | None = None


@dataclass(frozen=True)
class Observed:
    rayjob: Body
    now: dt.datetime
    cluster: Body | None = None  # the RayCluster named in status.rayClusterName
    submitter: Body | None = None  # the K8sJobMode batch Job
    job: JobInfo | None = None  # None: not asked
    suffix: str = "xxxxx"  # the random part of new names (the shell draws it)
    cluster_domain: str = c.DEFAULT_CLUSTER_DOMAIN


@dataclass(frozen=True)
class Action:
    """One API call. kind: add-finalizer, remove-finalizer, create-cluster,
    delete-cluster, suspend-workers, create-submitter, delete-submitter, submit-job,
    stop-job, delete-self."""

    kind: str
    body: Body | None = None
    name: str = ""
    event: tuple[str, str] | None = None  # (reason, message) of the Normal event on success


@dataclass
class Decision:
    status: Body
    actions: list[Action] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (reason, message)
    requeue: float | None = None


def _ts(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _from_ms(ms: Any) -> str | None:
    if not ms:
        return None
    return _ts(dt.datetime.fromtimestamp(int(ms) / 1000, dt.UTC))


def _condition(status: Body, type_: str, true: bool, reason: str, message: str, now: str) -> None:
    conditions = [x for x in status.get("conditions") or [] if x.get("type") != type_]
    old = next((x for x in status.get("conditions") or [] if x.get("type") == type_), None)
    value = "True" if true else "False"
    if old is None and not true:
        return  # never unreachable: no condition at all
    changed = old is None or old.get("status") != value
    conditions.append(
        {
            "type": type_,
            "status": value,
            "reason": reason,
            "message": message,
            "lastTransitionTime": now if changed else old.get("lastTransitionTime", now),
        }
    )
    status["conditions"] = sorted(conditions, key=lambda x: x["type"])


def _controlled_by(obj: Body, rayjob: Body) -> bool:
    uid = rayjob["metadata"].get("uid")
    return any(
        ref.get("controller") and ref.get("uid") == uid
        for ref in (obj.get("metadata") or {}).get("ownerReferences") or []
    )


def _finished_at(submitter: Body | None) -> tuple[dt.datetime | None, Body | None]:
    """When the submitter Job finished (Complete or Failed), and its Failed condition."""
    finished, failed = None, None
    for cond in ((submitter or {}).get("status") or {}).get("conditions") or []:
        if cond.get("status") != "True" or cond.get("type") not in ("Complete", "Failed"):
            continue
        finished = _parse(cond.get("lastTransitionTime")) or finished
        if cond["type"] == "Failed":
            failed = cond
    return finished, failed


def plan(obs: Observed) -> Decision:
    rayjob = obs.rayjob
    meta = rayjob["metadata"]
    old = rayjob.get("status") or {}
    d = Decision(status=copy.deepcopy(old))
    st = d.status
    now = _ts(obs.now)

    if meta.get("deletionTimestamp"):
        return _deleting(obs, d)
    if (rayjob.get("spec") or {}).get("managedBy", c.MANAGED_BY_US) != c.MANAGED_BY_US:
        return Decision(status=old)

    try:
        b.validate(rayjob)
    except b.InvalidRayJob as err:
        if st.get("jobDeploymentStatus") != c.DEPLOY_VALIDATION_FAILED or st.get("message") != str(
            err
        ):
            d.warnings.append(("InvalidRayJobSpec", str(err)))
        st.update(
            jobDeploymentStatus=c.DEPLOY_VALIDATION_FAILED,
            reason=c.REASON_VALIDATION_FAILED,
            message=str(err),
        )
        return _finish(obs, d)
    if st.get("jobDeploymentStatus") == c.DEPLOY_VALIDATION_FAILED:
        # The spec was fixed: start over (KubeRay leaves it stuck).
        st.update(jobDeploymentStatus=c.DEPLOY_NEW, reason="", message="")

    ds = st.get("jobDeploymentStatus") or c.DEPLOY_NEW
    handler = {
        c.DEPLOY_NEW: _new,
        c.DEPLOY_INITIALIZING: _initializing,
        c.DEPLOY_WAITING: _waiting,
        c.DEPLOY_RUNNING: _running,
        c.DEPLOY_SUSPENDING: _releasing,
        c.DEPLOY_RETRYING: _releasing,
        c.DEPLOY_SUSPENDED: _suspended,
        c.DEPLOY_COMPLETE: _finished,
        c.DEPLOY_FAILED: _finished,
    }.get(ds)
    if handler is None:
        d.warnings.append(("InvalidRayJobStatus", f"unknown status.jobDeploymentStatus {ds!r}"))
        return d
    handler(obs, d, now)
    return _finish(obs, d)


def _finish(obs: Observed, d: Decision) -> Decision:
    """Counters, retries, end time and observedGeneration, for every pass."""
    st, old = d.status, obs.rayjob.get("status") or {}
    old_ds, ds = old.get("jobDeploymentStatus") or "", st.get("jobDeploymentStatus") or ""
    st.setdefault("failed", 0)
    st.setdefault("succeeded", 0)
    if ds != old_ds and ds in (c.DEPLOY_COMPLETE, c.DEPLOY_FAILED):
        if ds == c.DEPLOY_FAILED:
            st["failed"] += 1
        elif st.get("jobStatus") == c.JOB_SUCCEEDED:
            st["succeeded"] += 1
        limit = (obs.rayjob.get("spec") or {}).get("backoffLimit") or 0
        if (
            ds == c.DEPLOY_FAILED
            and st["failed"] < limit + 1
            and st.get("reason") != c.REASON_DEADLINE_EXCEEDED
        ):
            st["jobDeploymentStatus"] = c.DEPLOY_RETRYING
            d.requeue = 0.0
        else:
            st["endTime"] = _ts(obs.now)
    generation = obs.rayjob["metadata"].get("generation")
    if generation is not None:
        st["observedGeneration"] = generation
    if (
        st != old
        and d.requeue is None
        and st.get("jobDeploymentStatus")
        not in (
            c.DEPLOY_SUSPENDED,
            c.DEPLOY_VALIDATION_FAILED,
        )
    ):
        d.requeue = 0.0  # the next state's work starts right after this write
    return d


# -- states ------------------------------------------------------------------------------


def _new(obs: Observed, d: Decision, now: str) -> None:
    rayjob, st = obs.rayjob, d.status
    name = rayjob["metadata"]["name"]
    if FINALIZER not in (rayjob["metadata"].get("finalizers") or []):
        d.actions.append(Action("add-finalizer"))
    if b.mode(rayjob) != c.MODE_INTERACTIVE and not st.get("jobId"):
        st["jobId"] = rayjob["spec"].get("jobId") or f"{name}-{obs.suffix}"
    if not st.get("rayClusterName"):
        st["rayClusterName"] = b.selector_cluster(rayjob) or f"{name}-{obs.suffix}"
    st.setdefault("jobStatus", "")
    st.update(jobDeploymentStatus=c.DEPLOY_INITIALIZING, startTime=now)


def _deadline(obs: Observed, d: Decision, field_: str, reason: str) -> bool:
    seconds = (obs.rayjob.get("spec") or {}).get(field_)
    start = _parse(d.status.get("startTime"))
    if not seconds or start is None:
        return False
    due = start + dt.timedelta(seconds=seconds)
    if obs.now < due:
        d.requeue = _sooner(d.requeue, (due - obs.now).total_seconds())
        return False
    d.status.update(
        jobDeploymentStatus=c.DEPLOY_FAILED,
        reason=reason,
        message=f"the RayJob passed spec.{field_} ({seconds}s since {d.status.get('startTime')})",
    )
    return True


def _sooner(a: float | None, b_: float) -> float:
    return b_ if a is None else min(a, b_)


def _suspend_requested(obs: Observed, d: Decision) -> bool:
    if (obs.rayjob.get("spec") or {}).get("suspend"):
        d.status["jobDeploymentStatus"] = c.DEPLOY_SUSPENDING
        return True
    return False


def _cluster_or_create(obs: Observed, d: Decision) -> Body | None:
    """The job's RayCluster when it can be used; otherwise queues its creation or
    reports why not, and returns None."""
    rayjob, st = obs.rayjob, d.status
    name = st["rayClusterName"]
    selected = b.selector_cluster(rayjob)
    if obs.cluster is None:
        if selected:
            msg = (
                f"RayCluster {rayjob['metadata']['namespace']}/{name} named by "
                f"spec.clusterSelector does not exist: create it first"
            )
            if st.get("message") != msg:
                d.warnings.append(("RayClusterNotFound", msg))
            st["message"] = msg
        else:
            body = b.cluster(rayjob, name)
            d.actions.append(
                Action(
                    "create-cluster",
                    body,
                    name,
                    ("CreatedRayCluster", f"Created RayCluster {name}"),
                )
            )
        d.requeue = c.JOB_POLL_SECONDS
        return None
    if not selected and not _controlled_by(obs.cluster, rayjob):
        msg = (
            f"RayCluster {name} exists but is not controlled by this RayJob: "
            "delete it or rename the RayJob"
        )
        if st.get("message") != msg:
            d.warnings.append(("RayClusterNameTaken", msg))
        st["message"] = msg
        d.requeue = c.JOB_POLL_SECONDS
        return None
    if selected and st.get("message", "").startswith(
        f"RayCluster {rayjob['metadata']['namespace']}/"
    ):
        st["message"] = ""
    return obs.cluster


def _initializing(obs: Observed, d: Decision, now: str) -> None:
    if _suspend_requested(obs, d):
        return
    if _deadline(obs, d, "activeDeadlineSeconds", c.REASON_DEADLINE_EXCEEDED):
        return
    if _deadline(obs, d, "preRunningDeadlineSeconds", c.REASON_PRE_RUNNING_DEADLINE):
        return
    ray_cluster = _cluster_or_create(obs, d)
    if ray_cluster is None:
        return
    st = d.status
    if not st.get("dashboardURL"):
        cluster_status = ray_cluster.get("status") or {}
        st["rayClusterStatus"] = cluster_status
        url = b.dashboard_url(ray_cluster, obs.cluster_domain)
        if cluster_status.get("state") != c.STATE_READY or url is None:
            d.requeue = _sooner(d.requeue, c.JOB_POLL_SECONDS)
            return
        st["dashboardURL"] = url
    mode = b.mode(obs.rayjob)
    if mode == c.MODE_INTERACTIVE:
        st["jobDeploymentStatus"] = c.DEPLOY_WAITING
        return
    if mode == c.MODE_K8S_JOB and obs.submitter is None:
        _create_submitter(obs, d, ray_cluster)
    st["jobDeploymentStatus"] = c.DEPLOY_RUNNING


def _create_submitter(obs: Observed, d: Decision, ray_cluster: Body) -> None:
    st = d.status
    body = b.submitter_job(obs.rayjob, ray_cluster, st["dashboardURL"], st["jobId"])
    name = body["metadata"]["name"]
    d.actions.append(
        Action(
            "create-submitter",
            body,
            name,
            ("CreatedRayJobSubmitter", f"Created Kubernetes Job {name}"),
        )
    )


def _waiting(obs: Observed, d: Decision, now: str) -> None:
    if _deadline(obs, d, "preRunningDeadlineSeconds", c.REASON_PRE_RUNNING_DEADLINE):
        return
    job_id = (obs.rayjob.get("spec") or {}).get("jobId")
    if not job_id:
        d.requeue = c.JOB_POLL_SECONDS
        return
    d.status.update(jobId=job_id, jobDeploymentStatus=c.DEPLOY_RUNNING)


def _running(obs: Observed, d: Decision, now: str) -> None:
    rayjob, st = obs.rayjob, d.status
    if _suspend_requested(obs, d):
        return
    if _deadline(obs, d, "activeDeadlineSeconds", c.REASON_DEADLINE_EXCEEDED):
        return
    end = _parse((st.get("rayJobInfo") or {}).get("endTime"))
    if (
        st.get("jobStatus") in c.JOB_TERMINAL
        and end is not None
        and obs.now >= end + dt.timedelta(seconds=c.DEPLOYMENT_TRANSITION_GRACE_SECONDS)
    ):
        failed = st["jobStatus"] == c.JOB_FAILED
        st.update(
            jobDeploymentStatus=c.DEPLOY_FAILED if failed else c.DEPLOY_COMPLETE,
            reason=c.REASON_GRACE_PERIOD_EXCEEDED,
            message="jobDeploymentStatus did not follow the terminal jobStatus "
            "within the grace period",
        )
        return
    ray_cluster = _cluster_or_create(obs, d)
    if ray_cluster is None:
        return
    d.requeue = _sooner(d.requeue, c.JOB_POLL_SECONDS)
    mode = b.mode(rayjob)
    finished_at = None
    if mode == c.MODE_K8S_JOB:
        if obs.submitter is None:  # deleted by hand: it never submits twice, recreate it
            _create_submitter(obs, d, ray_cluster)
            return
        finished_at, failed = _finished_at(obs.submitter)
        if failed is not None:
            st["jobDeploymentStatus"] = c.DEPLOY_FAILED
            if st.get("jobStatus") == c.JOB_FAILED:
                st["reason"] = c.REASON_APP_FAILED
            else:
                st["reason"] = c.REASON_SUBMISSION_FAILED
                st["message"] = (
                    f"the submitter Job failed: {failed.get('reason', '')}: "
                    f"{failed.get('message', '')}"
                )
            return
        if finished_at is not None:
            timeout = finished_at + dt.timedelta(seconds=c.SUBMITTER_FINISHED_TIMEOUT_SECONDS)
            if obs.now >= timeout and st.get("jobStatus") not in c.JOB_TERMINAL:
                st.update(
                    jobStatus=c.JOB_FAILED,
                    jobDeploymentStatus=c.DEPLOY_FAILED,
                    reason=c.REASON_GRACE_PERIOD_EXCEEDED,
                    message=f"the submitter finished at {_ts(finished_at)} but the Ray job "
                    f"was not terminal {c.SUBMITTER_FINISHED_TIMEOUT_SECONDS}s later",
                )
                return
    job = obs.job
    if job is None:
        return
    if job.error is not None:
        msg = f"the Ray dashboard of RayCluster {st['rayClusterName']} is unreachable: {job.error}"
        old = next(
            (
                x
                for x in st.get("conditions") or []
                if x.get("type") == c.COND_DASHBOARD_UNREACHABLE
            ),
            {},
        )
        if old.get("status") != "True":
            d.warnings.append((c.COND_DASHBOARD_UNREACHABLE, msg))
        _condition(st, c.COND_DASHBOARD_UNREACHABLE, True, "HeadUnreachable", msg, now)
        return
    _condition(
        st, c.COND_DASHBOARD_UNREACHABLE, False, "HeadReachable", "the dashboard answers", now
    )
    if job.missing:
        if mode == c.MODE_HTTP:
            body = b.submit_request(rayjob, st["jobId"])
            d.actions.append(
                Action(
                    "submit-job",
                    body,
                    st["jobId"],
                    ("SubmittedRayJob", f"Submitted Ray job {st['jobId']}"),
                )
            )
        elif finished_at is not None:
            st.update(
                jobDeploymentStatus=c.DEPLOY_FAILED,
                reason=c.REASON_APP_FAILED,
                message="the submitter finished but the Ray job is not on the cluster",
            )
        return
    info = job.info or {}
    job_status = info.get("status") or ""
    terminal = job_status in c.JOB_TERMINAL
    if mode == c.MODE_K8S_JOB:
        terminal = terminal and finished_at is not None  # its logs are complete
    ds, reason = c.DEPLOY_RUNNING, ""
    if terminal:
        ds = c.DEPLOY_FAILED if job_status == c.JOB_FAILED else c.DEPLOY_COMPLETE
        reason = c.REASON_APP_FAILED if job_status == c.JOB_FAILED else ""
    st.update(
        jobStatus=job_status,
        jobDeploymentStatus=ds,
        reason=reason,
        message=info.get("message") or "",
        rayClusterStatus=ray_cluster.get("status") or {},
    )
    times = dict(st.get("rayJobInfo") or {})
    for key, ms in (("startTime", info.get("start_time")), ("endTime", info.get("end_time"))):
        if (value := _from_ms(ms)) is not None:
            times[key] = value
    if times:
        st["rayJobInfo"] = times


def _releasing(obs: Observed, d: Decision, now: str) -> None:
    """Suspending or Retrying: delete the cluster and the submitter, then reset."""
    rayjob, st = obs.rayjob, d.status
    gone = True
    if not b.selector_cluster(rayjob) and obs.cluster is not None:
        gone = False
        if not (obs.cluster.get("metadata") or {}).get("deletionTimestamp"):
            _delete_cluster(d, obs.cluster)
    if b.mode(rayjob) == c.MODE_K8S_JOB and obs.submitter is not None:
        gone = False
        if not (obs.submitter.get("metadata") or {}).get("deletionTimestamp"):
            name = obs.submitter["metadata"]["name"]
            d.actions.append(
                Action(
                    "delete-submitter",
                    None,
                    name,
                    ("DeletedRayJobSubmitter", f"Deleted submitter Job {name}"),
                )
            )
    if not gone:
        d.requeue = c.JOB_POLL_SECONDS
        return
    for key in (
        "rayClusterStatus",
        "rayClusterName",
        "dashboardURL",
        "jobId",
        "message",
        "reason",
        "rayJobInfo",
        "conditions",
    ):
        st.pop(key, None)
    st["jobStatus"] = ""
    suspending = st["jobDeploymentStatus"] == c.DEPLOY_SUSPENDING
    st["jobDeploymentStatus"] = c.DEPLOY_SUSPENDED if suspending else c.DEPLOY_NEW


def _delete_cluster(d: Decision, ray_cluster: Body) -> None:
    name = ray_cluster["metadata"]["name"]
    d.actions.append(
        Action("delete-cluster", None, name, ("DeletedRayCluster", f"Deleted RayCluster {name}"))
    )


def _suspended(obs: Observed, d: Decision, now: str) -> None:
    if not (obs.rayjob.get("spec") or {}).get("suspend"):
        d.status.update(jobStatus="", jobDeploymentStatus=c.DEPLOY_NEW)


def _finished(obs: Observed, d: Decision, now: str) -> None:
    """Complete or Failed: delete what the spec says, when it says."""
    rayjob, st = obs.rayjob, d.status
    spec = rayjob.get("spec") or {}
    if b.selector_cluster(rayjob):
        return  # never delete a cluster the job did not create
    end = _parse(st.get("endTime")) or obs.now
    strategy = spec.get("deletionStrategy")
    if strategy:
        _deletion_strategy(obs, d, strategy, end)
    elif spec.get("shutdownAfterJobFinishes"):
        due = end + dt.timedelta(seconds=spec.get("ttlSecondsAfterFinished") or 0)
        if obs.now < due:
            d.requeue = (due - obs.now).total_seconds()
        elif obs.cluster is not None and not obs.cluster["metadata"].get("deletionTimestamp"):
            _delete_cluster(d, obs.cluster)


IMPACT = {"DeleteSelf": 4, "DeleteCluster": 3, "DeleteWorkers": 2, "DeleteNone": 1}


def _deletion_strategy(obs: Observed, d: Decision, strategy: Body, end: dt.datetime) -> None:
    st = d.status
    rules = strategy.get("deletionRules")
    if rules is None:  # legacy onSuccess/onFailure, after ttlSecondsAfterFinished
        which = {c.JOB_SUCCEEDED: "onSuccess", c.JOB_FAILED: "onFailure"}.get(st.get("jobStatus"))
        policy = ((strategy.get(which) or {}).get("policy") if which else None) or "DeleteNone"
        ttl = (obs.rayjob.get("spec") or {}).get("ttlSecondsAfterFinished") or 0
        rules = [{"policy": policy, "condition": {"ttlSeconds": ttl}}]
    due_now: list[str] = []
    for rule in rules:
        cond = rule.get("condition") or {}
        if "jobStatus" in cond and cond["jobStatus"] != st.get("jobStatus"):
            continue
        if "jobDeploymentStatus" in cond and cond["jobDeploymentStatus"] != st.get(
            "jobDeploymentStatus"
        ):
            continue
        due = end + dt.timedelta(seconds=cond.get("ttlSeconds") or 0)
        if obs.now < due:
            d.requeue = _sooner(d.requeue, (due - obs.now).total_seconds())
        elif not _policy_done(obs, rule["policy"]):
            due_now.append(rule["policy"])
    if not due_now:
        return
    policy = max(due_now, key=lambda p: IMPACT[p])
    if policy == "DeleteSelf":
        d.actions.append(Action("delete-self", None, obs.rayjob["metadata"]["name"]))
    elif policy == "DeleteCluster" and obs.cluster is not None:
        _delete_cluster(d, obs.cluster)
    elif policy == "DeleteWorkers" and obs.cluster is not None:
        name = obs.cluster["metadata"]["name"]
        d.actions.append(
            Action(
                "suspend-workers",
                obs.cluster,
                name,
                ("UpdatedRayCluster", f"Suspended the worker groups of {name}"),
            )
        )


def _policy_done(obs: Observed, policy: str) -> bool:
    cluster = obs.cluster
    if policy == "DeleteNone":
        return True
    if policy == "DeleteSelf":
        return False
    if cluster is None or cluster["metadata"].get("deletionTimestamp"):
        return True
    if policy == "DeleteWorkers":
        groups = (cluster.get("spec") or {}).get("workerGroupSpecs") or []
        return all(g.get("suspend") for g in groups)
    return False


def _deleting(obs: Observed, d: Decision) -> Decision:
    """The RayJob is being deleted: stop a job still running (best effort), then let go."""
    st, meta = d.status, obs.rayjob["metadata"]
    if FINALIZER not in (meta.get("finalizers") or []):
        return d
    if st.get("jobStatus") not in c.JOB_TERMINAL and st.get("jobId") and obs.cluster is not None:
        d.actions.append(Action("stop-job", None, st["jobId"]))
    d.actions.append(Action("remove-finalizer"))
    return d
