"""SidecarMode end to end with real Ray 2.60: the operator creates the RayCluster with
the `ray-job-submitter` container in its head pod; the harness runs a real Ray head for
the pod (dashboard on the pod IP) and, as the pod's kubelet would, that container's own
command line here, then writes the container's termination (exit code, finishedAt) into
the head pod's `status.containerStatuses` through the API (`SidecarRunner`: kwok models
no containers). The operator reads the job from the dashboard and the container's exit
from the head pod."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ray_operator import constants as c
from tests.kubehelpers import wait_for
from tests.ray_harness import RayHarness, SidecarRunner
from tests.rayjobs import RayJobs, dashboard_jobs, rayjob

PRINT_RESOURCES = (
    "python -c \"import ray; ray.init(); print('cpus', ray.cluster_resources()['CPU'])\""
)


@contextlib.contextmanager
def ray_and_sidecar(jobs: RayJobs, cluster: str) -> Iterator[tuple[RayHarness, SidecarRunner]]:
    harness = RayHarness(jobs.core, jobs.ns, cluster, dashboard=True).start()
    try:
        with SidecarRunner(jobs.core, jobs.ns, cluster) as sidecar:
            try:
                yield harness, sidecar
            except BaseException:
                print(harness.logs(), harness.errors, sidecar.errors)
                print({pod: sidecar.log(pod) for pod in sidecar.runs})
                raise
    finally:
        harness.stop()
        harness.cleanup()


def head_pod(jobs: RayJobs, cluster: str):
    """The cluster's one head pod, None while there is none (yet) or several."""
    selector = f"{c.LABEL_CLUSTER}={cluster},{c.LABEL_NODE_TYPE}={c.NODE_TYPE_HEAD}"
    pods = jobs.core.list_namespaced_pod(jobs.ns, label_selector=selector).items
    return pods[0] if len(pods) == 1 else None


def test_sidecar_mode_job_succeeds_from_the_head_pod(api_client, namespace, run_operator):
    jobs = RayJobs(api_client, namespace)
    run_operator(namespace)
    jobs.create(rayjob("side", entrypoint=PRINT_RESOURCES, submissionMode=c.MODE_SIDECAR,
                       runtimeEnvYAML="env_vars: {A: b}"))  # fmt: skip
    cluster = jobs.wait_cluster_name("side")
    made = wait_for(lambda: jobs.cluster(cluster), timeout=60, what="the job's RayCluster")
    assert made["metadata"]["annotations"][c.ANNOTATION_DISABLE_PROVISIONED_HEAD_RESTART] == "true"
    pod = wait_for(lambda: head_pod(jobs, cluster), timeout=60, what="head pod")
    assert [x.name for x in pod.spec.containers] == ["ray-head", c.SUBMITTER_CONTAINER_NAME]
    assert pod.spec.restart_policy == "Never"
    with ray_and_sidecar(jobs, cluster) as (harness, sidecar):
        done = jobs.wait_deployment("side", c.DEPLOY_COMPLETE, c.DEPLOY_FAILED, timeout=180)
        assert done["jobDeploymentStatus"] == c.DEPLOY_COMPLETE, done
        assert done["jobStatus"] == c.JOB_SUCCEEDED and done["succeeded"] == 1
        ((name, proc),) = sidecar.runs.items()
        assert proc.returncode == 0
        (command,) = sidecar.command_lines
        assert command[:3] == ["/bin/bash", "-ce", "--"]
        port = harness.dashboard_url.rsplit(":", 1)[1]
        assert f"ray job submit --address http://127.0.0.1:{port}" in command[3]
        assert "--no-wait" not in command[3] and "ray job status" not in command[3]
        assert "cpus 1.0" in sidecar.log(name)  # `ray job submit` waited and printed the logs
        (ray_job,) = dashboard_jobs(harness.dashboard_url)
        assert ray_job["submission_id"] == done["jobId"]
        assert ray_job["runtime_env"]["env_vars"] == {"A": "b"}
        (status,) = [x for x in head_pod(jobs, cluster).status.container_statuses
                     if x.name == c.SUBMITTER_CONTAINER_NAME]  # fmt: skip
        assert status.state.terminated.exit_code == 0
    reasons = jobs.reasons("side")
    assert "CreatedRayCluster" in reasons
    assert "CreatedRayJobSubmitter" not in reasons and "SubmittedRayJob" not in reasons
    assert jobs.batch.list_namespaced_job(namespace).items == []  # no submitter Job


def test_sidecar_mode_entrypoint_exit_1_fails_the_job(api_client, namespace, run_operator):
    jobs = RayJobs(api_client, namespace)
    run_operator(namespace)
    jobs.create(rayjob("sidebad", entrypoint="exit 1", submissionMode=c.MODE_SIDECAR))
    cluster = jobs.wait_cluster_name("sidebad")
    with ray_and_sidecar(jobs, cluster) as (_, sidecar):
        done = jobs.wait_deployment("sidebad", c.DEPLOY_COMPLETE, c.DEPLOY_FAILED, timeout=180)
        ((_, proc),) = sidecar.runs.items()
        assert proc.returncode == 1  # `ray job submit` exits 1 for a failed job
    assert done["jobDeploymentStatus"] == c.DEPLOY_FAILED, done
    assert done["jobStatus"] == c.JOB_FAILED
    assert done["reason"] == c.REASON_APP_FAILED
    assert done["failed"] == 1


def test_a_lost_head_is_not_recreated_and_fails_the_job(api_client, namespace, run_operator):
    """No Ray needed (kwok's pods): once the cluster was provisioned, deleting the head
    pod fails the SidecarMode job, and the RayCluster does not get a new head (a new one
    could not run the job again)."""
    jobs = RayJobs(api_client, namespace)
    run_operator(namespace)
    jobs.create(rayjob("lost", entrypoint="true", submissionMode=c.MODE_SIDECAR))
    cluster = jobs.wait_cluster_name("lost")
    jobs.wait_deployment("lost", c.DEPLOY_RUNNING, timeout=60)  # the cluster was ready
    doomed = head_pod(jobs, cluster).metadata.name
    jobs.core.delete_namespaced_pod(doomed, namespace, grace_period_seconds=0)
    done = jobs.wait_deployment("lost", c.DEPLOY_COMPLETE, c.DEPLOY_FAILED, timeout=60)
    assert done["jobDeploymentStatus"] == c.DEPLOY_FAILED
    assert done["reason"] == c.REASON_APP_FAILED and "head pod" in done["message"]

    def head_not_found() -> bool:
        conditions = (jobs.cluster(cluster) or {}).get("status", {}).get("conditions") or []
        return any(x["type"] == c.COND_HEAD_POD_READY and x["reason"] == "HeadPodNotFound"
                   for x in conditions)  # fmt: skip

    # The RayCluster's pass that saw the head gone made no new one.
    wait_for(head_not_found, timeout=60, what="RayCluster reporting HeadPodNotFound")
    selector = f"{c.LABEL_CLUSTER}={cluster},{c.LABEL_NODE_TYPE}={c.NODE_TYPE_HEAD}"
    assert jobs.core.list_namespaced_pod(namespace, label_selector=selector).items == []
