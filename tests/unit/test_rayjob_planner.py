"""KubeRay's RayJob state machine, step by step, as a pure function."""

from __future__ import annotations

import datetime as dt

import pytest

from ray_operator import constants as c
from ray_operator.rayjob.planner import FINALIZER, JobInfo, Observed, plan
from tests.unit.test_rayjob_builders import CLUSTER_SPEC, ready_cluster

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def ts(seconds: float) -> str:
    return (T0 + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def rayjob(status: dict | None = None, finalizer: bool = True, **spec) -> dict:
    body = {"entrypoint": "python main.py", "rayClusterSpec": CLUSTER_SPEC, **spec}
    meta = {"name": "train", "namespace": "team", "uid": "uid-1", "generation": 1}
    if finalizer:
        meta["finalizers"] = [FINALIZER]
    return {
        "kind": c.JOB_KIND,
        "metadata": meta,
        "spec": {k: v for k, v in body.items() if v is not None},
        "status": status or {},
    }


def owned(cluster: dict) -> dict:
    cluster["metadata"]["ownerReferences"] = [{"uid": "uid-1", "controller": True}]
    return cluster


RUNNING = {
    "jobDeploymentStatus": c.DEPLOY_RUNNING,
    "jobStatus": c.JOB_RUNNING,
    "jobId": "train-j1",
    "rayClusterName": "train-abcde",
    "dashboardURL": "train-abcde-head-svc.team.svc.cluster.local:8265",
    "startTime": ts(0),
    "failed": 0,
    "succeeded": 0,
}


def kinds(decision) -> list[str]:
    return [a.kind for a in decision.actions]


def test_new_adds_the_finalizer_and_chooses_names_before_creating_anything():
    d = plan(Observed(rayjob(finalizer=False), T0, suffix="abcde"))
    assert kinds(d) == ["add-finalizer"]
    assert d.status["jobDeploymentStatus"] == c.DEPLOY_INITIALIZING
    assert d.status["jobId"] == "train-abcde"
    assert d.status["rayClusterName"] == "train-abcde"
    assert d.status["startTime"] == ts(0)
    assert d.status["observedGeneration"] == 1
    assert d.requeue == 0.0


def test_new_uses_spec_job_id_and_the_selected_cluster():
    job = rayjob(jobId="mine", rayClusterSpec=None, clusterSelector={c.CLUSTER_SELECTOR_KEY: "s"})
    d = plan(Observed(job, T0))
    assert d.status["jobId"] == "mine" and d.status["rayClusterName"] == "s"


def test_interactive_mode_has_no_job_id_until_the_user_gives_one():
    d = plan(Observed(rayjob(submissionMode=c.MODE_INTERACTIVE), T0))
    assert "jobId" not in d.status


def initializing(**extra) -> dict:
    return {
        "jobDeploymentStatus": c.DEPLOY_INITIALIZING,
        "jobStatus": "",
        "jobId": "train-j1",
        "rayClusterName": "train-abcde",
        "startTime": ts(0),
        **extra,
    }


def test_initializing_creates_the_cluster_then_waits_for_it_to_be_ready():
    d = plan(Observed(rayjob(initializing()), T0))
    assert kinds(d) == ["create-cluster"]
    assert d.actions[0].body["metadata"]["name"] == "train-abcde"
    assert d.status["jobDeploymentStatus"] == c.DEPLOY_INITIALIZING
    assert d.requeue == c.JOB_POLL_SECONDS

    not_ready = owned(ready_cluster())
    not_ready["status"]["state"] = ""
    d = plan(Observed(rayjob(initializing()), T0, cluster=not_ready))
    assert kinds(d) == [] and d.status["jobDeploymentStatus"] == c.DEPLOY_INITIALIZING
    assert d.status["rayClusterStatus"] == not_ready["status"]


def test_ready_cluster_creates_the_submitter_and_runs():
    d = plan(Observed(rayjob(initializing()), T0, cluster=owned(ready_cluster())))
    assert kinds(d) == ["create-submitter"]
    assert d.status["jobDeploymentStatus"] == c.DEPLOY_RUNNING
    assert d.status["dashboardURL"] == "train-abcde-head-svc.team.svc.cluster.local:8265"
    args = d.actions[0].body["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert "--submission-id train-j1" in args


def test_http_mode_runs_without_a_submitter():
    job = rayjob(initializing(), submissionMode=c.MODE_HTTP)
    d = plan(Observed(job, T0, cluster=owned(ready_cluster())))
    assert kinds(d) == [] and d.status["jobDeploymentStatus"] == c.DEPLOY_RUNNING


def test_interactive_mode_waits_for_spec_job_id():
    job = rayjob(initializing(), submissionMode=c.MODE_INTERACTIVE)
    d = plan(Observed(job, T0, cluster=owned(ready_cluster())))
    assert d.status["jobDeploymentStatus"] == c.DEPLOY_WAITING
    job = rayjob(d.status, submissionMode=c.MODE_INTERACTIVE)
    assert plan(Observed(job, T0)).status["jobDeploymentStatus"] == c.DEPLOY_WAITING
    job["spec"]["jobId"] = "typed-by-user"
    d = plan(Observed(job, T0))
    assert d.status["jobDeploymentStatus"] == c.DEPLOY_RUNNING
    assert d.status["jobId"] == "typed-by-user"


def test_a_cluster_of_that_name_not_ours_is_reported_not_used():
    stranger = ready_cluster()
    d = plan(Observed(rayjob(initializing()), T0, cluster=stranger))
    assert kinds(d) == [] and d.warnings[0][0] == "RayClusterNameTaken"
    assert d.status["jobDeploymentStatus"] == c.DEPLOY_INITIALIZING


def test_selector_matching_nothing_warns_once_and_waits():
    job = rayjob(
        initializing(rayClusterName="shared"),
        rayClusterSpec=None,
        clusterSelector={c.CLUSTER_SELECTOR_KEY: "shared"},
    )
    d = plan(Observed(job, T0))
    assert kinds(d) == [] and d.warnings[0][0] == "RayClusterNotFound"
    assert "spec.clusterSelector" in d.status["message"]
    again = plan(Observed(rayjob(d.status, **job["spec"]), T0))
    assert again.warnings == [] and again.requeue == c.JOB_POLL_SECONDS
    # The cluster appears: used as it is, whoever controls it.
    shared = ready_cluster("shared")
    d = plan(Observed(rayjob(d.status, **job["spec"]), T0, cluster=shared))
    assert d.status["jobDeploymentStatus"] == c.DEPLOY_RUNNING and d.status["message"] == ""


def running_job(**spec) -> dict:
    return rayjob(dict(RUNNING), **spec)


def submitter(condition: str | None = None, at: float = 0) -> dict:
    status = {}
    if condition:
        status = {"conditions": [{"type": condition, "status": "True",
                                  "lastTransitionTime": ts(at), "reason": "BackoffLimitExceeded",
                                  "message": "too many"}]}  # fmt: skip
    return {"metadata": {"name": "train"}, "status": status}


def info(status: str, **extra) -> JobInfo:
    return JobInfo(info={"status": status, "message": f"job {status}", **extra})


@pytest.mark.parametrize("ray_status", c.JOB_STATUSES)
def test_jobstatus_is_rays_status_exactly(ray_status):
    d = plan(Observed(running_job(submissionMode=c.MODE_HTTP), T0,
                      cluster=owned(ready_cluster()), job=info(ray_status)))  # fmt: skip
    assert d.status["jobStatus"] == ray_status
    assert d.status["message"] == f"job {ray_status}"
    expected = {c.JOB_SUCCEEDED: c.DEPLOY_COMPLETE, c.JOB_STOPPED: c.DEPLOY_COMPLETE,
                c.JOB_FAILED: c.DEPLOY_FAILED}.get(ray_status, c.DEPLOY_RUNNING)  # fmt: skip
    assert d.status["jobDeploymentStatus"] == expected


def test_http_mode_submits_when_the_job_is_not_on_the_cluster():
    job = running_job(submissionMode=c.MODE_HTTP, runtimeEnvYAML="env_vars: {A: b}")
    d = plan(Observed(job, T0, cluster=owned(ready_cluster()), job=JobInfo(missing=True)))
    assert kinds(d) == ["submit-job"]
    assert d.actions[0].body == {
        "entrypoint": "python main.py",
        "submission_id": "train-j1",
        "runtime_env": {"env_vars": {"A": "b"}},
    }
    assert d.requeue == c.JOB_POLL_SECONDS


def test_a_known_job_is_never_submitted_again():
    job = running_job(submissionMode=c.MODE_HTTP)
    d = plan(Observed(job, T0, cluster=owned(ready_cluster()), job=info(c.JOB_RUNNING)))
    assert kinds(d) == []


def test_success_completes_counts_and_records_rays_times():
    job = running_job(submissionMode=c.MODE_HTTP)
    d = plan(Observed(job, T0 + dt.timedelta(seconds=30), cluster=owned(ready_cluster()),
                      job=info(c.JOB_SUCCEEDED, start_time=1767268800000,
                               end_time=1767268805000)))  # fmt: skip
    st = d.status
    assert st["jobDeploymentStatus"] == c.DEPLOY_COMPLETE
    assert st["succeeded"] == 1 and st["failed"] == 0
    assert st["endTime"] == ts(30)
    assert st["rayJobInfo"] == {"startTime": ts(0), "endTime": ts(5)}


def test_failure_is_app_failed():
    job = running_job(submissionMode=c.MODE_HTTP)
    d = plan(Observed(job, T0, cluster=owned(ready_cluster()), job=info(c.JOB_FAILED)))
    assert d.status["jobDeploymentStatus"] == c.DEPLOY_FAILED
    assert d.status["reason"] == c.REASON_APP_FAILED and d.status["failed"] == 1


def test_k8s_job_mode_waits_for_the_submitter_before_completing():
    job = running_job()
    cluster = owned(ready_cluster())
    d = plan(Observed(job, T0, cluster=cluster, submitter=submitter(), job=info(c.JOB_SUCCEEDED)))
    assert d.status["jobDeploymentStatus"] == c.DEPLOY_RUNNING
    assert d.status["jobStatus"] == c.JOB_SUCCEEDED
    done = submitter("Complete", at=1)
    d = plan(Observed(job, T0, cluster=cluster, submitter=done, job=info(c.JOB_SUCCEEDED)))
    assert d.status["jobDeploymentStatus"] == c.DEPLOY_COMPLETE


def test_failed_submitter_is_submission_failed():
    d = plan(Observed(running_job(), T0, cluster=owned(ready_cluster()),
                      submitter=submitter("Failed")))  # fmt: skip
    assert d.status["jobDeploymentStatus"] == c.DEPLOY_FAILED
    assert d.status["reason"] == c.REASON_SUBMISSION_FAILED
    assert "BackoffLimitExceeded" in d.status["message"]


def test_submitter_done_but_job_never_terminal_fails_after_30s():
    late = T0 + dt.timedelta(seconds=c.SUBMITTER_FINISHED_TIMEOUT_SECONDS + 1)
    d = plan(Observed(running_job(), late, cluster=owned(ready_cluster()),
                      submitter=submitter("Complete"), job=info(c.JOB_RUNNING)))  # fmt: skip
    assert d.status["jobStatus"] == c.JOB_FAILED
    assert d.status["reason"] == c.REASON_GRACE_PERIOD_EXCEEDED


def test_a_deleted_submitter_is_recreated_idempotently():
    d = plan(Observed(running_job(), T0, cluster=owned(ready_cluster()), job=info("RUNNING")))
    assert kinds(d) == ["create-submitter"]


def test_unreachable_dashboard_sets_a_condition_and_warns_once():
    job = running_job(submissionMode=c.MODE_HTTP)
    cluster = owned(ready_cluster())
    d = plan(Observed(job, T0, cluster=cluster, job=JobInfo(error="connection refused")))
    (cond,) = d.status["conditions"]
    assert cond["type"] == c.COND_DASHBOARD_UNREACHABLE and cond["status"] == "True"
    assert "connection refused" in cond["message"]
    assert [w[0] for w in d.warnings] == [c.COND_DASHBOARD_UNREACHABLE]
    assert d.status["jobDeploymentStatus"] == c.DEPLOY_RUNNING
    again = plan(Observed(rayjob(d.status, **job["spec"]), T0, cluster=cluster,
                          job=JobInfo(error="connection refused")))  # fmt: skip
    assert again.warnings == []
    healed = plan(Observed(rayjob(d.status, **job["spec"]), T0, cluster=cluster,
                           job=info(c.JOB_RUNNING)))  # fmt: skip
    assert healed.status["conditions"][0]["status"] == "False"


def test_active_deadline_fails_without_retry():
    job = running_job(activeDeadlineSeconds=10, backoffLimit=3)
    d = plan(Observed(job, T0 + dt.timedelta(seconds=5), cluster=owned(ready_cluster())))
    assert d.status["jobDeploymentStatus"] == c.DEPLOY_RUNNING and d.requeue <= 5
    d = plan(Observed(job, T0 + dt.timedelta(seconds=10), cluster=owned(ready_cluster())))
    assert d.status["jobDeploymentStatus"] == c.DEPLOY_FAILED
    assert d.status["reason"] == c.REASON_DEADLINE_EXCEEDED
    assert "spec.activeDeadlineSeconds" in d.status["message"]


def test_pre_running_deadline_applies_before_running():
    job = rayjob(initializing(), preRunningDeadlineSeconds=3)
    d = plan(Observed(job, T0 + dt.timedelta(seconds=3)))
    assert d.status["reason"] == c.REASON_PRE_RUNNING_DEADLINE


def test_backoff_limit_retries_on_a_new_cluster():
    job = running_job(submissionMode=c.MODE_HTTP, backoffLimit=1)
    cluster = owned(ready_cluster())
    d = plan(Observed(job, T0, cluster=cluster, job=info(c.JOB_FAILED)))
    assert d.status["jobDeploymentStatus"] == c.DEPLOY_RETRYING and d.status["failed"] == 1
    retrying = rayjob(d.status, **job["spec"])
    d = plan(Observed(retrying, T0, cluster=cluster))
    assert kinds(d) == ["delete-cluster"] and d.status["jobDeploymentStatus"] == c.DEPLOY_RETRYING
    d = plan(Observed(retrying, T0))
    assert d.status["jobDeploymentStatus"] == c.DEPLOY_NEW
    assert "rayClusterName" not in d.status and "jobId" not in d.status
    d = plan(Observed(rayjob(d.status, **job["spec"]), T0, suffix="zzzzz"))
    assert d.status["rayClusterName"] == "train-zzzzz"
    # The second failure is the last one.
    second = rayjob({**RUNNING, "failed": 1}, **job["spec"])
    d = plan(Observed(second, T0, cluster=cluster, job=info(c.JOB_FAILED)))
    assert d.status["jobDeploymentStatus"] == c.DEPLOY_FAILED and d.status["failed"] == 2


def test_suspend_deletes_cluster_and_submitter_then_resume_starts_over():
    spec = {"suspend": True, "shutdownAfterJobFinishes": True}
    cluster = owned(ready_cluster())
    d = plan(Observed(running_job(**spec), T0, cluster=cluster, submitter=submitter()))
    assert d.status["jobDeploymentStatus"] == c.DEPLOY_SUSPENDING
    suspending = rayjob(d.status, **spec)
    d = plan(Observed(suspending, T0, cluster=cluster, submitter=submitter()))
    assert kinds(d) == ["delete-cluster", "delete-submitter"]
    d = plan(Observed(suspending, T0))
    assert d.status["jobDeploymentStatus"] == c.DEPLOY_SUSPENDED and d.status["jobStatus"] == ""
    assert d.requeue is None
    resumed = rayjob(d.status, shutdownAfterJobFinishes=True)
    assert plan(Observed(resumed, T0)).status["jobDeploymentStatus"] == c.DEPLOY_NEW


def test_created_suspended_never_makes_a_cluster():
    spec = {"suspend": True, "shutdownAfterJobFinishes": True}
    d = plan(Observed(rayjob(**spec), T0))
    d = plan(Observed(rayjob(d.status, **spec), T0))
    assert kinds(d) == [] and d.status["jobDeploymentStatus"] == c.DEPLOY_SUSPENDING


def complete(**extra) -> dict:
    return {**RUNNING, "jobStatus": c.JOB_SUCCEEDED, "jobDeploymentStatus": c.DEPLOY_COMPLETE,
            "endTime": ts(0), "succeeded": 1, "observedGeneration": 1, **extra}  # fmt: skip


def test_ttl_deletes_the_cluster_when_due():
    job = rayjob(complete(), shutdownAfterJobFinishes=True, ttlSecondsAfterFinished=10)
    cluster = owned(ready_cluster())
    d = plan(Observed(job, T0 + dt.timedelta(seconds=4), cluster=cluster))
    assert kinds(d) == [] and d.requeue == pytest.approx(6)
    d = plan(Observed(job, T0 + dt.timedelta(seconds=10), cluster=cluster))
    assert kinds(d) == ["delete-cluster"]
    d = plan(Observed(job, T0 + dt.timedelta(seconds=11)))
    assert kinds(d) == [] and d.requeue is None


def test_finished_job_keeps_its_cluster_without_shutdown_and_with_a_selector():
    cluster = owned(ready_cluster())
    assert kinds(plan(Observed(rayjob(complete()), T0, cluster=cluster))) == []
    selected = rayjob(complete(), rayClusterSpec=None, shutdownAfterJobFinishes=True,
                      clusterSelector={c.CLUSTER_SELECTOR_KEY: "x"})  # fmt: skip
    assert kinds(plan(Observed(selected, T0, cluster=cluster))) == []


def test_deletion_rules_pick_the_most_impactful_due_rule():
    rules = [
        {"policy": "DeleteWorkers", "condition": {"jobStatus": "SUCCEEDED", "ttlSeconds": 0}},
        {"policy": "DeleteCluster", "condition": {"jobStatus": "SUCCEEDED", "ttlSeconds": 5}},
        {"policy": "DeleteSelf", "condition": {"jobStatus": "FAILED"}},
    ]
    job = rayjob(complete(), deletionStrategy={"deletionRules": rules})
    cluster = owned(ready_cluster())
    cluster["spec"] = {**CLUSTER_SPEC, "workerGroupSpecs": [{"groupName": "w"}]}
    d = plan(Observed(job, T0 + dt.timedelta(seconds=1), cluster=cluster))
    assert kinds(d) == ["suspend-workers"] and d.requeue == pytest.approx(4)
    d = plan(Observed(job, T0 + dt.timedelta(seconds=6), cluster=cluster))
    assert kinds(d) == ["delete-cluster"]


def test_legacy_on_failure_delete_self():
    strategy = {"onSuccess": {"policy": "DeleteNone"}, "onFailure": {"policy": "DeleteSelf"}}
    failed = complete(jobStatus=c.JOB_FAILED, jobDeploymentStatus=c.DEPLOY_FAILED)
    d = plan(Observed(rayjob(failed, deletionStrategy=strategy), T0))
    assert kinds(d) == ["delete-self"]
    d = plan(Observed(rayjob(complete(), deletionStrategy=strategy), T0))
    assert kinds(d) == []


def test_invalid_spec_is_validation_failed_once_then_recovers():
    job = rayjob(runtimeEnvYAML="- not a mapping")
    d = plan(Observed(job, T0))
    assert d.status["jobDeploymentStatus"] == c.DEPLOY_VALIDATION_FAILED
    assert d.status["reason"] == c.REASON_VALIDATION_FAILED
    assert "spec.runtimeEnvYAML" in d.status["message"]
    assert [w[0] for w in d.warnings] == ["InvalidRayJobSpec"] and kinds(d) == []
    again = plan(Observed(rayjob(d.status, runtimeEnvYAML="- not a mapping"), T0))
    assert again.warnings == [] and again.requeue is None
    fixed = plan(Observed(rayjob(d.status), T0))
    assert fixed.status["jobDeploymentStatus"] == c.DEPLOY_INITIALIZING


def test_deletion_stops_an_unfinished_job_then_releases_the_finalizer():
    job = running_job()
    job["metadata"]["deletionTimestamp"] = ts(0)
    d = plan(Observed(job, T0, cluster=owned(ready_cluster())))
    assert kinds(d) == ["stop-job", "remove-finalizer"]
    done = rayjob(complete())
    done["metadata"]["deletionTimestamp"] = ts(0)
    assert kinds(plan(Observed(done, T0))) == ["remove-finalizer"]


def test_managed_elsewhere_is_left_alone():
    job = rayjob(managedBy=c.MANAGED_BY_MULTIKUEUE, finalizer=False)
    d = plan(Observed(job, T0))
    assert kinds(d) == [] and d.status == {}


def test_a_converged_finished_job_needs_no_write():
    job = rayjob({**complete(), "observedGeneration": 1})
    d = plan(Observed(job, T0, cluster=owned(ready_cluster())))
    assert d.status == job["status"] and d.requeue is None
