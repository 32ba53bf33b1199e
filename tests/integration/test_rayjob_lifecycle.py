"""RayJob lifecycle paths that need no Ray job to run: bad input at runtime, a selector
that matches nothing, suspend/resume, retries on new clusters, deletion. The clusters
are kwok's (pods Running and Ready, nothing in them)."""

from __future__ import annotations

from ray_operator import constants as c
from tests.kubehelpers import wait_for
from tests.ray_harness import SubmitterRunner
from tests.rayjobs import RayJobs, cluster_spec, rayjob


def test_runtime_invalid_spec_is_validation_failed_and_others_go_on(
    api_client, namespace, run_operator
):
    jobs = RayJobs(api_client, namespace)
    run_operator(namespace)
    jobs.create(rayjob("bad", entrypoint="true", runtimeEnvYAML="- a list, not a mapping"))
    jobs.create(rayjob("good", entrypoint="true", submissionMode=c.MODE_HTTP))
    bad = jobs.wait_deployment("bad", c.DEPLOY_VALIDATION_FAILED, timeout=30)
    assert bad["reason"] == c.REASON_VALIDATION_FAILED
    assert "spec.runtimeEnvYAML must be a YAML mapping" in bad["message"]
    warning = wait_for(lambda: jobs.reasons("bad", "Warning"), what="a Warning")
    assert warning == ["InvalidRayJobSpec"]
    assert not bad.get("rayClusterName")
    # The other RayJob of the namespace gets its cluster and runs.
    jobs.wait_deployment("good", c.DEPLOY_RUNNING, timeout=60)
    # Fixing the spec starts the job over.
    jobs.custom.patch_namespaced_custom_object(
        c.GROUP, c.VERSION, namespace, c.JOB_PLURAL, "bad", {"spec": {"runtimeEnvYAML": "pip: []"}}
    )
    jobs.wait_deployment("bad", c.DEPLOY_INITIALIZING, c.DEPLOY_RUNNING, timeout=30)


def test_selector_matching_nothing_waits_with_a_warning(api_client, namespace, run_operator):
    jobs = RayJobs(api_client, namespace)
    run_operator(namespace)
    jobs.create(rayjob("sel", rayClusterSpec=None, entrypoint="true", submissionMode=c.MODE_HTTP,
                       clusterSelector={c.CLUSTER_SELECTOR_KEY: "later"}))  # fmt: skip
    wait_for(lambda: "RayClusterNotFound" in jobs.reasons("sel", "Warning"), what="Warning")
    status = jobs.status("sel")
    assert status["jobDeploymentStatus"] == c.DEPLOY_INITIALIZING
    assert "spec.clusterSelector" in status["message"]
    jobs.custom.create_namespaced_custom_object(
        c.GROUP, c.VERSION, namespace, c.PLURAL,
        {"apiVersion": c.API_VERSION, "kind": c.KIND, "metadata": {"name": "later"},
         "spec": cluster_spec()},
    )  # fmt: skip
    running = jobs.wait_deployment("sel", c.DEPLOY_RUNNING, timeout=60)
    assert running["message"] == "" and running["rayClusterName"] == "later"
    assert jobs.reasons("sel", "Warning").count("RayClusterNotFound") == 1


def test_suspend_creates_nothing_resume_starts_suspend_again_releases(
    api_client, namespace, run_operator
):
    jobs = RayJobs(api_client, namespace)
    run_operator(namespace)
    jobs.create(rayjob("q", entrypoint="true", suspend=True, shutdownAfterJobFinishes=True))
    jobs.wait_deployment("q", c.DEPLOY_SUSPENDED, timeout=30)
    assert not jobs.custom.list_namespaced_custom_object(c.GROUP, c.VERSION, namespace, c.PLURAL)[
        "items"
    ]

    def set_suspend(value: bool) -> None:
        jobs.custom.patch_namespaced_custom_object(
            c.GROUP, c.VERSION, namespace, c.JOB_PLURAL, "q", {"spec": {"suspend": value}}
        )

    set_suspend(False)  # admitted: a cluster and, once it is ready, the submitter
    running = jobs.wait_deployment("q", c.DEPLOY_RUNNING, timeout=60)
    cluster = running["rayClusterName"]
    wait_for(lambda: jobs.batch.list_namespaced_job(namespace).items, what="submitter Job")
    set_suspend(True)
    suspended = jobs.wait_deployment("q", c.DEPLOY_SUSPENDED, timeout=60)
    assert jobs.cluster(cluster) is None
    assert not [j for j in jobs.batch.list_namespaced_job(namespace).items
                if not j.metadata.deletion_timestamp]  # fmt: skip
    assert suspended["jobStatus"] == "" and not suspended.get("rayClusterName")
    assert {"DeletedRayCluster", "DeletedRayJobSubmitter"} <= set(jobs.reasons("q", "Normal"))


def test_failed_submission_retries_on_a_new_cluster_up_to_backoff_limit(
    api_client, namespace, run_operator
):
    """The submitter's real `ray job submit` cannot reach any dashboard (its name
    resolves nowhere): the Job fails, the RayJob is Failed (SubmissionFailed), retried
    once on a new cluster, then Failed for good."""
    jobs = RayJobs(api_client, namespace)
    run_operator(namespace)
    jobs.create(rayjob("retry", entrypoint="true", backoffLimit=1,
                       submitterConfig={"backoffLimit": 0}))  # fmt: skip
    with SubmitterRunner(jobs.core, namespace, "retry"):
        first = jobs.wait_cluster_name("retry")
        wait_for(lambda: jobs.status("retry").get("failed") == 1, timeout=120, what="1 failure")
        done = jobs.wait_deployment("retry", c.DEPLOY_FAILED, timeout=150)
    assert done["failed"] == 2 and done["reason"] == c.REASON_SUBMISSION_FAILED
    assert "BackoffLimitExceeded" in done["message"]
    assert done["rayClusterName"] != first
    assert jobs.reasons("retry", "Normal").count("CreatedRayCluster") == 2


def test_deleting_a_rayjob_removes_its_cluster(api_client, namespace, run_operator):
    jobs = RayJobs(api_client, namespace)
    run_operator(namespace)
    jobs.create(rayjob("gone", entrypoint="true", submissionMode=c.MODE_HTTP))
    cluster = jobs.wait_deployment("gone", c.DEPLOY_RUNNING, timeout=60)["rayClusterName"]
    assert "ray.io/rayjob-finalizer" in jobs.get("gone")["metadata"]["finalizers"]
    jobs.custom.delete_namespaced_custom_object(c.GROUP, c.VERSION, namespace, c.JOB_PLURAL, "gone")

    def deleted() -> bool:
        try:
            jobs.get("gone")
        except Exception:
            return True
        return False

    wait_for(deleted, timeout=30, what="RayJob gone (finalizer released)")
    wait_for(lambda: jobs.cluster(cluster) is None, timeout=60, what="cluster collected")
