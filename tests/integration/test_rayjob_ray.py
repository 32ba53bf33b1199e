"""RayJobs end to end with real Ray 2.60: the operator creates the RayCluster, the
harness runs a real Ray head for its pod (serving the dashboard's job API on the pod
IP), and the job runs on it, submitted by the operator (HTTPMode) or by the submitter
pod's own command line (K8sJobMode)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from ray_operator import constants as c
from tests.kubehelpers import wait_for
from tests.ray_harness import RayHarness, SubmitterRunner
from tests.rayjobs import RayJobs, cluster_spec, dashboard_jobs, rayjob

PRINT_RESOURCES = (
    "python -c \"import ray; ray.init(); print('cpus', ray.cluster_resources()['CPU'])\""
)


@contextlib.contextmanager
def ray_for(jobs: RayJobs, cluster: str) -> Iterator[RayHarness]:
    harness = RayHarness(jobs.core, jobs.ns, cluster, dashboard=True).start()
    try:
        yield harness
    except BaseException:
        print(harness.logs(), harness.errors)
        raise
    finally:
        harness.stop()
        harness.cleanup()


def test_http_mode_job_succeeds_and_the_ttl_deletes_its_cluster(
    api_client, namespace, run_operator
):
    jobs = RayJobs(api_client, namespace)
    run_operator(namespace)
    jobs.create(rayjob("ok", entrypoint=PRINT_RESOURCES, submissionMode=c.MODE_HTTP,
                       shutdownAfterJobFinishes=True, ttlSecondsAfterFinished=2))  # fmt: skip
    cluster = jobs.wait_cluster_name("ok")
    assert cluster.startswith("ok-") and len(cluster) == len("ok-") + 5
    with ray_for(jobs, cluster) as harness:
        running = jobs.wait_deployment("ok", c.DEPLOY_RUNNING, timeout=90)
        assert running["dashboardURL"].startswith(f"{cluster}-head-svc.{namespace}.svc.")
        done = jobs.wait_deployment("ok", c.DEPLOY_COMPLETE, c.DEPLOY_FAILED, timeout=120)
        assert done["jobDeploymentStatus"] == c.DEPLOY_COMPLETE, done
        assert done["jobStatus"] == c.JOB_SUCCEEDED
        assert done["succeeded"] == 1 and done["failed"] == 0
        assert done["rayJobInfo"]["startTime"] and done["rayJobInfo"]["endTime"]
        assert done["endTime"] and done["startTime"]
        (ray_job,) = dashboard_jobs(harness.dashboard_url)
        assert ray_job["submission_id"] == done["jobId"] and ray_job["status"] == "SUCCEEDED"
    # ttlSecondsAfterFinished later the cluster is deleted; the RayJob stays Complete.
    wait_for(lambda: jobs.cluster(cluster) is None, timeout=60, what="cluster deleted")
    assert jobs.status("ok")["jobDeploymentStatus"] == c.DEPLOY_COMPLETE
    reasons = jobs.reasons("ok", "Normal")
    assert {"CreatedRayCluster", "SubmittedRayJob", "DeletedRayCluster"} <= set(reasons)
    assert reasons.count("SubmittedRayJob") == 1


def test_failing_entrypoint_fails_with_rays_failed_status(api_client, namespace, run_operator):
    jobs = RayJobs(api_client, namespace)
    run_operator(namespace)
    jobs.create(rayjob("bad", entrypoint="exit 1", submissionMode=c.MODE_HTTP))
    with ray_for(jobs, jobs.wait_cluster_name("bad")):
        done = jobs.wait_deployment("bad", c.DEPLOY_COMPLETE, c.DEPLOY_FAILED, timeout=150)
    assert done["jobDeploymentStatus"] == c.DEPLOY_FAILED
    assert done["jobStatus"] == c.JOB_FAILED
    assert done["reason"] == c.REASON_APP_FAILED
    assert "exit code 1" in done["message"] or "failed" in done["message"].lower()
    assert done["failed"] == 1


def test_active_deadline_fails_the_job(api_client, namespace, run_operator):
    jobs = RayJobs(api_client, namespace)
    run_operator(namespace)
    jobs.create(rayjob("slow", entrypoint="sleep 600", submissionMode=c.MODE_HTTP,
                       activeDeadlineSeconds=25, backoffLimit=2))  # fmt: skip
    with ray_for(jobs, jobs.wait_cluster_name("slow")):
        jobs.wait_deployment("slow", c.DEPLOY_RUNNING, timeout=90)
        done = jobs.wait_deployment("slow", c.DEPLOY_FAILED, timeout=60)
    assert done["reason"] == c.REASON_DEADLINE_EXCEEDED
    assert "spec.activeDeadlineSeconds" in done["message"]
    assert done["failed"] == 1  # no retry after a deadline, whatever backoffLimit says


def test_cluster_selector_job_runs_on_an_existing_cluster_and_leaves_it(
    api_client, namespace, run_operator
):
    jobs = RayJobs(api_client, namespace)
    run_operator(namespace)
    jobs.custom.create_namespaced_custom_object(
        c.GROUP, c.VERSION, namespace, c.PLURAL,
        {"apiVersion": c.API_VERSION, "kind": c.KIND, "metadata": {"name": "shared"},
         "spec": cluster_spec()},
    )  # fmt: skip
    with ray_for(jobs, "shared"):
        jobs.create(rayjob("sel", rayClusterSpec=None, entrypoint=PRINT_RESOURCES,
                           submissionMode=c.MODE_HTTP, shutdownAfterJobFinishes=True,
                           clusterSelector={c.CLUSTER_SELECTOR_KEY: "shared"}))  # fmt: skip
        done = jobs.wait_deployment("sel", c.DEPLOY_COMPLETE, c.DEPLOY_FAILED, timeout=150)
        assert done["jobStatus"] == c.JOB_SUCCEEDED and done["rayClusterName"] == "shared"
    assert jobs.cluster("shared") is not None  # never deleted: not the job's cluster
    assert "CreatedRayCluster" not in jobs.reasons("sel")


def test_k8s_job_mode_runs_the_submitter_pods_command(api_client, namespace, run_operator):
    jobs = RayJobs(api_client, namespace)
    run_operator(namespace)
    jobs.create(rayjob("k8s", entrypoint=PRINT_RESOURCES, runtimeEnvYAML="env_vars: {A: b}"))
    cluster = jobs.wait_cluster_name("k8s")
    with ray_for(jobs, cluster) as harness:
        wait_for(lambda: harness.head_ip, timeout=60, what="head pod running")
        fqdn = f"{cluster}-head-svc.{namespace}.svc.{c.DEFAULT_CLUSTER_DOMAIN}"
        with SubmitterRunner(jobs.core, namespace, "k8s", hosts={fqdn: harness.head_ip}) as sub:
            done = jobs.wait_deployment("k8s", c.DEPLOY_COMPLETE, c.DEPLOY_FAILED, timeout=180)
            assert done["jobDeploymentStatus"] == c.DEPLOY_COMPLETE, done
            assert done["jobStatus"] == c.JOB_SUCCEEDED
            # kwok makes the head pod Ready before Ray listens (a real head's probes
            # would not), so early submitter pods may fail and the Job retries them.
            command = sub.command_lines[0]
            assert all(line == command for line in sub.command_lines)
            assert command[:3] == ["/bin/bash", "-ce", "--"]
            assert f"ray job submit --address http://{fqdn}" in command[3]
            assert "--no-wait" in command[3] and "--runtime-env-json" in command[3]
            (ok,) = [pod for pod, proc in sub.runs.items() if proc.returncode == 0]
            assert "cpus 1.0" in sub.log(ok)  # the job's logs, followed by the submitter
        (ray_job,) = dashboard_jobs(harness.dashboard_url)
        assert ray_job["runtime_env"]["env_vars"] == {"A": "b"}
    assert jobs.reasons("k8s").count("CreatedRayJobSubmitter") == 1


def test_operator_restart_mid_job_neither_resubmits_nor_loses_it(
    api_client, namespace, run_operator
):
    jobs = RayJobs(api_client, namespace)
    first = run_operator(namespace)
    jobs.create(rayjob("long", entrypoint="sleep 12 && echo done", submissionMode=c.MODE_HTTP))
    with ray_for(jobs, jobs.wait_cluster_name("long")) as harness:
        wait_for(lambda: jobs.status("long").get("jobStatus") == c.JOB_RUNNING, timeout=120,
                 interval=0.3, what="job RUNNING")  # fmt: skip
        first.stop()
        run_operator(namespace)
        done = jobs.wait_deployment("long", c.DEPLOY_COMPLETE, c.DEPLOY_FAILED, timeout=120)
        assert done["jobStatus"] == c.JOB_SUCCEEDED
        (ray_job,) = dashboard_jobs(harness.dashboard_url)
        assert ray_job["submission_id"] == done["jobId"]
    assert jobs.reasons("long").count("SubmittedRayJob") == 1


@pytest.mark.parametrize("mode", [c.MODE_HTTP])
def test_unreachable_dashboard_is_a_condition_and_other_jobs_go_on(
    api_client, namespace, run_operator, mode
):
    """One RayJob's head serves no dashboard (no Ray runs for it): it gets a condition
    and a Warning and stays Running; a second RayJob completes meanwhile."""
    jobs = RayJobs(api_client, namespace)
    run_operator(namespace)
    jobs.create(rayjob("dark", entrypoint="true", submissionMode=mode))
    jobs.create(rayjob("lit", entrypoint=PRINT_RESOURCES, submissionMode=mode))
    dark = jobs.wait_deployment("dark", c.DEPLOY_RUNNING, timeout=60)
    with ray_for(jobs, jobs.wait_cluster_name("lit")):
        done = jobs.wait_deployment("lit", c.DEPLOY_COMPLETE, c.DEPLOY_FAILED, timeout=150)
        assert done["jobStatus"] == c.JOB_SUCCEEDED
    dark = wait_for(lambda: (jobs.status("dark").get("conditions") or [None])[0], timeout=30,
                    what="DashboardUnreachable condition")  # fmt: skip
    assert dark["type"] == c.COND_DASHBOARD_UNREACHABLE and dark["status"] == "True"
    assert "unreachable" in dark["message"]
    assert c.COND_DASHBOARD_UNREACHABLE in jobs.reasons("dark", "Warning")
    assert jobs.status("dark")["jobDeploymentStatus"] == c.DEPLOY_RUNNING
