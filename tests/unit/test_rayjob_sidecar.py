"""SidecarMode (KubeRay v1.6.1): the submitter is a container of the head pod, and its
exit is read from the head pod's containerStatuses."""

from __future__ import annotations

import copy
import datetime as dt
import shlex
import subprocess

import pytest

from ray_operator import constants as c
from ray_operator.builders.pod import build_head_pod
from ray_operator.observed import Observed as ClusterObserved
from ray_operator.planner import default_builders
from ray_operator.planner import plan as plan_cluster
from ray_operator.rayjob import builders as b
from ray_operator.rayjob.planner import HeadPod, JobInfo, Observed, plan
from tests.unit.test_rayjob_builders import CLUSTER_SPEC, ready_cluster
from tests.unit.test_rayjob_builders import rayjob as job_body
from tests.unit.test_rayjob_planner import RUNNING, T0, initializing, kinds, owned, rayjob, ts


def sidecar_job(**spec) -> dict:
    return job_body(submissionMode=c.MODE_SIDECAR, **spec)


def head_containers(cluster: dict) -> list[dict]:
    return cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"]


# -- the RayCluster ----------------------------------------------------------------------


def test_the_cluster_gets_the_submitter_in_its_head_pod_template():
    made = b.cluster(sidecar_job(), "train-abcde", "train-j1")
    ray, sidecar = head_containers(made)
    assert ray == CLUSTER_SPEC["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert sidecar["name"] == c.SUBMITTER_CONTAINER_NAME == "ray-job-submitter"
    assert sidecar["image"] == "ray:2.60.0"  # the head's Ray image
    assert sidecar["resources"] == {
        "limits": {"cpu": "1", "memory": "1Gi"},
        "requests": {"cpu": "500m", "memory": "200Mi"},
    }
    assert sidecar["env"] == [
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": c.ENV_DASHBOARD_ADDRESS, "value": ""},  # not known yet, as with KubeRay
        {"name": c.ENV_SUBMISSION_ID, "value": "train-j1"},
    ]
    assert sidecar["command"] == ["/bin/bash", "-ce", "--"]
    assert made["spec"]["headGroupSpec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert made["metadata"]["annotations"] == {
        "note": "x",
        c.ANNOTATION_DISABLE_PROVISIONED_HEAD_RESTART: "true",
    }
    assert made["metadata"]["labels"][c.LABEL_SUBMISSION_MODE] == c.MODE_SIDECAR
    assert head_containers(b.cluster(job_body(), "x")) == head_containers({"spec": CLUSTER_SPEC})


def test_sidecar_command_waits_for_the_local_dashboard_then_submits_and_waits():
    spec = copy.deepcopy(CLUSTER_SPEC)
    spec["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"] = [
        {"name": "dashboard", "containerPort": 9000}
    ]
    job = sidecar_job(rayClusterSpec=spec, runtimeEnvYAML="env_vars: {A: $HOME}",
                      entrypointNumCpus=1)  # fmt: skip
    script = b.sidecar_container(job, b.cluster(job, "n"), "id-1")["args"][0]
    words = shlex.split(script)
    assert words[0] == "until" and "http://localhost:9000/api/gcs_healthz" in words[3]
    submit = words[words.index("submit") - 2 :]
    assert submit == ["ray", "job", "submit", "--address", "http://127.0.0.1:9000",
                      "--runtime-env-json", '{"env_vars":{"A":"$HOME"}}',
                      "--submission-id", "id-1", "--entrypoint-num-cpus", "1.000000",
                      "--", "python", "/app/main.py", ";"]  # fmt: skip
    # No status guard, no --no-wait, no log following: one submit that waits.
    assert "status" not in words and "--no-wait" not in words and "logs" not in words
    assert subprocess.run(["bash", "-n", "-c", script], check=False).returncode == 0


def test_health_probe_is_valid_python_and_default_port_is_8265():
    words = shlex.split(" ".join(b.sidecar_submit_command(sidecar_job(), "id")))
    assert words[:3] == ["until", "python", "-c"]
    probe = words[3]
    compile(probe, "<probe>", "exec")
    assert "http://localhost:8265/api/gcs_healthz" in probe and "b'success'" in probe
    assert "http://127.0.0.1:8265" in words


def test_token_auth_reaches_the_sidecar():
    spec = {**CLUSTER_SPEC, "rayVersion": "2.60.0", "authOptions": {"mode": "token"}}
    made = b.cluster(sidecar_job(rayClusterSpec=spec), "train-abcde", "id")
    names = {e["name"] for e in head_containers(made)[1]["env"]}
    assert {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"} <= names


def test_the_head_pod_keeps_ray_first_and_the_submitter_after_it():
    made = b.cluster(sidecar_job(), "train-abcde", "id")
    made["metadata"]["uid"] = "c-uid"
    made["spec"]["enableInTreeAutoscaling"] = True
    pod = build_head_pod(made)
    names = [x["name"] for x in pod["spec"]["containers"]]
    assert names == ["ray-head", c.SUBMITTER_CONTAINER_NAME, c.AUTOSCALER_CONTAINER_NAME]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert "KUBERAY_GEN_RAY_START_CMD" in {e["name"] for e in pod["spec"]["containers"][0]["env"]}
    sidecar = pod["spec"]["containers"][1]
    assert sidecar == head_containers(made)[1]  # left as the RayJob built it


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (
            {"rayClusterSpec": {**CLUSTER_SPEC, "headGroupSpec": {"template": {"spec": {
                "containers": [{"name": "r", "image": "i"},
                               {"name": c.SUBMITTER_CONTAINER_NAME, "image": "i"}]}}}}},
            "spec.rayClusterSpec.headGroupSpec.template.spec.containers[1].name",
        ),
        ({"metadata": {"a": "b"}, "rayClusterSpec": {**CLUSTER_SPEC, "rayVersion": "2.5"}},
         "spec.metadata"),
    ],
)  # fmt: skip
def test_specs_sidecar_mode_cannot_run_name_the_field(spec, words):
    with pytest.raises(b.InvalidRayJob, match=words.replace(".", r"\.").replace("[", r"\[")):
        b.validate(sidecar_job(**spec))
    b.validate(sidecar_job())  # accepted now


# -- the RayCluster planner honours ray.io/disable-provisioned-head-restart -------------------


def test_a_provisioned_sidecar_cluster_does_not_get_a_new_head():
    made = b.cluster(sidecar_job(), "train-abcde", "id")
    made["metadata"]["uid"] = "c-uid"
    made["metadata"]["namespace"] = "team"

    def head_creates() -> list[str]:
        result = plan_cluster(made, ClusterObserved(), default_builders())
        return [x.group for x in result.creates]

    assert head_creates() == [c.HEAD_GROUP]  # not yet provisioned: created
    made["status"] = {"conditions": [{"type": c.COND_PROVISIONED, "status": "True"}]}
    assert head_creates() == []  # provisioned: a lost head stays lost
    made["metadata"]["annotations"].pop(c.ANNOTATION_DISABLE_PROVISIONED_HEAD_RESTART)
    assert head_creates() == [c.HEAD_GROUP]


# -- the RayJob planner --------------------------------------------------------------------


def running(**spec) -> dict:
    return rayjob(dict(RUNNING), submissionMode=c.MODE_SIDECAR, **spec)


def head(state: dict | None = None) -> tuple[HeadPod, ...]:
    statuses = [{"name": "ray-head", "state": {"running": {}}}]
    if state is not None:
        statuses.append({"name": c.SUBMITTER_CONTAINER_NAME, "state": state})
    pod = {"metadata": {"name": "train-abcde-head-x"}, "status": {"containerStatuses": statuses}}
    return (HeadPod.from_dict(pod),)


def exited(code: int, at: float = 0, reason: str = "Error") -> dict:
    return {"terminated": {"exitCode": code, "reason": reason, "finishedAt": ts(at)}}


def info(status: str) -> JobInfo:
    return JobInfo(info={"status": status, "message": f"job {status}"})


def test_initializing_creates_the_cluster_with_the_sidecar_and_no_submitter_job():
    job = rayjob(initializing(), submissionMode=c.MODE_SIDECAR)
    d = plan(Observed(job, T0))
    assert kinds(d) == ["create-cluster"]
    (sidecar,) = head_containers(d.actions[0].body)[1:]
    assert {"name": c.ENV_SUBMISSION_ID, "value": "train-j1"} in sidecar["env"]
    d = plan(Observed(job, T0, cluster=owned(ready_cluster())))
    assert kinds(d) == [] and d.status["jobDeploymentStatus"] == c.DEPLOY_RUNNING


def test_running_sidecar_follows_rays_status_and_completes_after_the_container_exits():
    cluster = owned(ready_cluster())
    d = plan(Observed(running(), T0, cluster=cluster, head_pods=head({"running": {}}),
                      job=info(c.JOB_SUCCEEDED)))  # fmt: skip
    assert d.status["jobStatus"] == c.JOB_SUCCEEDED
    assert d.status["jobDeploymentStatus"] == c.DEPLOY_RUNNING  # its logs are not all out
    d = plan(Observed(running(), T0, cluster=cluster, head_pods=head(exited(0, reason="Completed")),
                      job=info(c.JOB_SUCCEEDED)))  # fmt: skip
    assert d.status["jobDeploymentStatus"] == c.DEPLOY_COMPLETE and kinds(d) == []
    assert d.status["succeeded"] == 1


def test_a_failed_sidecar_is_submission_failed_with_its_exit_code():
    d = plan(Observed(running(), T0, cluster=owned(ready_cluster()), head_pods=head(exited(2)),
                      job=info(c.JOB_RUNNING)))  # fmt: skip
    st = d.status
    assert st["jobDeploymentStatus"] == c.DEPLOY_FAILED
    assert st["reason"] == c.REASON_SUBMISSION_FAILED
    assert st["message"] == (
        f"container {c.SUBMITTER_CONTAINER_NAME} of head pod train-abcde-head-x terminated "
        "with exit code 2: Error"
    )
    assert st["failed"] == 1


def test_a_failed_sidecar_after_a_failed_job_is_app_failed_with_rays_message():
    job = rayjob({**RUNNING, "jobStatus": c.JOB_FAILED, "message": "job FAILED"},
                 submissionMode=c.MODE_SIDECAR)  # fmt: skip
    d = plan(Observed(job, T0, cluster=owned(ready_cluster()), head_pods=head(exited(1)),
                      job=info(c.JOB_FAILED)))  # fmt: skip
    assert d.status["jobDeploymentStatus"] == c.DEPLOY_FAILED
    assert d.status["reason"] == c.REASON_APP_FAILED
    assert d.status["message"] == "job FAILED"


def test_a_lost_head_pod_fails_the_job():
    d = plan(Observed(running(), T0, cluster=owned(ready_cluster()), head_pods=(),
                      job=info(c.JOB_RUNNING)))  # fmt: skip
    assert d.status["jobDeploymentStatus"] == c.DEPLOY_FAILED
    assert d.status["reason"] == c.REASON_APP_FAILED
    assert "head pod" in d.status["message"]


def test_sidecar_done_but_job_never_terminal_fails_after_30s():
    late = T0 + dt.timedelta(seconds=c.SUBMITTER_FINISHED_TIMEOUT_SECONDS + 1)
    d = plan(Observed(running(), late, cluster=owned(ready_cluster()),
                      head_pods=head(exited(0)), job=info(c.JOB_RUNNING)))  # fmt: skip
    assert d.status["jobStatus"] == c.JOB_FAILED
    assert d.status["reason"] == c.REASON_GRACE_PERIOD_EXCEEDED
    early = plan(Observed(running(), T0, cluster=owned(ready_cluster()),
                          head_pods=head(exited(0)), job=info(c.JOB_RUNNING)))  # fmt: skip
    assert early.status["jobDeploymentStatus"] == c.DEPLOY_RUNNING


def test_sidecar_done_and_job_not_on_the_cluster_fails():
    d = plan(Observed(running(), T0, cluster=owned(ready_cluster()),
                      head_pods=head(exited(0)), job=JobInfo(missing=True)))  # fmt: skip
    assert d.status["jobDeploymentStatus"] == c.DEPLOY_FAILED and kinds(d) == []


def test_sidecar_mode_never_submits_or_creates_a_submitter():
    d = plan(Observed(running(), T0, cluster=owned(ready_cluster()), head_pods=head(),
                      job=JobInfo(missing=True)))  # fmt: skip
    assert kinds(d) == [] and d.status["jobDeploymentStatus"] == c.DEPLOY_RUNNING


def test_retry_and_suspend_delete_only_the_cluster():
    job = rayjob({**RUNNING, "jobDeploymentStatus": c.DEPLOY_RETRYING},
                 submissionMode=c.MODE_SIDECAR)  # fmt: skip
    d = plan(Observed(job, T0, cluster=owned(ready_cluster())))
    assert kinds(d) == ["delete-cluster"]
