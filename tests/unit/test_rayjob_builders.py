"""What a RayJob creates: its RayCluster, the submitter Job and its command line, the
dashboard request."""

from __future__ import annotations

import shlex

import pytest

from ray_operator import constants as c
from ray_operator.rayjob import builders as b

CLUSTER_SPEC = {
    "rayVersion": "2.60.0",
    "headGroupSpec": {
        "rayStartParams": {},
        "template": {"spec": {"containers": [{"name": "ray-head", "image": "ray:2.60.0"}]}},
    },
}


def rayjob(**spec) -> dict:
    body = {"entrypoint": "python /app/main.py", "rayClusterSpec": CLUSTER_SPEC, **spec}
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.JOB_KIND,
        "metadata": {
            "name": "train",
            "namespace": "team",
            "uid": "uid-1",
            "labels": {"team": "a"},
            "annotations": {"note": "x"},
        },
        "spec": {k: v for k, v in body.items() if v is not None},
    }


def ready_cluster(name: str = "train-abcde") -> dict:
    return {
        "metadata": {"name": name, "namespace": "team"},
        "spec": CLUSTER_SPEC,
        "status": {
            "state": "ready",
            "head": {"podIP": "127.64.0.9", "serviceName": f"{name}-head-svc"},
            "endpoints": {"dashboard": "8265"},
        },
    }


def test_random_suffix_is_five_lowercase_alphanumerics():
    suffixes = {b.random_suffix() for _ in range(50)}
    assert all(len(s) == 5 and s.isalnum() and s == s.lower() for s in suffixes)
    assert len(suffixes) > 40


def test_cluster_is_controlled_by_the_rayjob_and_labelled_as_kuberay_does():
    made = b.cluster(rayjob(), "train-abcde")
    meta = made["metadata"]
    assert made["kind"] == c.KIND and made["spec"] == CLUSTER_SPEC
    assert made["spec"] is not CLUSTER_SPEC
    assert meta["ownerReferences"] == [
        {"apiVersion": c.API_VERSION, "kind": c.JOB_KIND, "name": "train", "uid": "uid-1",
         "controller": True, "blockOwnerDeletion": True}
    ]  # fmt: skip
    assert meta["labels"] == {
        "team": "a",
        c.LABEL_ORIGINATED_FROM_NAME: "train",
        c.LABEL_ORIGINATED_FROM_CRD: "RayJob",
        c.LABEL_SUBMISSION_MODE: c.MODE_K8S_JOB,
    }
    assert meta["annotations"] == {"note": "x"}


def test_dashboard_url_is_the_head_service_and_address_the_head_pod():
    cluster = ready_cluster()
    assert b.dashboard_url(cluster) == "train-abcde-head-svc.team.svc.cluster.local:8265"
    assert b.dashboard_address(cluster) == "http://127.64.0.9:8265"
    assert b.dashboard_url({"metadata": {"namespace": "x"}, "status": {}}) is None
    assert b.dashboard_address({"status": {"head": {}}}) is None


def test_submit_command_is_kuberays_sequence():
    job = rayjob(
        runtimeEnvYAML="env_vars:\n  A: '1 $HOME'\n",
        metadata={"k": "v"},
        entrypointNumCpus=1,
        entrypointNumGpus=0.5,
        entrypointResources='{"r": 2}',
    )
    cmd = b.submit_command(job, "svc.team.svc.cluster.local:8265", "train-xyz12")
    addr = "http://svc.team.svc.cluster.local:8265"
    line = " ".join(cmd)
    assert line.startswith(
        f"if ! ray job status --address {addr} train-xyz12 >/dev/null 2>&1 ; then "
        f"ray job submit --address {addr} --no-wait "
    )
    assert line.endswith(
        f"-- python /app/main.py ; fi ; ray job logs --address {addr} --follow train-xyz12"
    )
    assert "--submission-id train-xyz12" in line
    assert "--entrypoint-num-cpus 1.000000 --entrypoint-num-gpus 0.500000" in line
    # JSON values are single-quoted: the shell expands nothing inside them.
    words = shlex.split(line.split(" ; then ")[1].split(" ; fi")[0])
    assert words[words.index("--runtime-env-json") + 1] == '{"env_vars":{"A":"1 $HOME"}}'
    assert words[words.index("--metadata-json") + 1] == '{"k":"v"}'
    assert words[words.index("--entrypoint-resources") + 1] == '{"r": 2}'


def test_metadata_needs_ray_2_6():
    old = {**CLUSTER_SPEC, "rayVersion": "2.5.0"}
    with pytest.raises(b.InvalidRayJob, match="rayVersion"):
        b.submit_command(rayjob(metadata={"k": "v"}, rayClusterSpec=old), "h:8265", "id")


def test_submitter_job_defaults():
    job = b.submitter_job(rayjob(), ready_cluster(), "svc:8265", "train-xyz12")
    assert job["metadata"]["name"] == "train"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert job["metadata"]["labels"][c.LABEL_ORIGINATED_FROM_CRD] == "RayJob"
    assert job["spec"]["backoffLimit"] == c.DEFAULT_SUBMITTER_BACKOFF_LIMIT
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["name"] == c.SUBMITTER_CONTAINER_NAME
    assert container["image"] == "ray:2.60.0"
    assert container["resources"]["requests"] == {"cpu": "500m", "memory": "200Mi"}
    assert container["command"] == ["/bin/bash", "-ce", "--"]
    assert container["args"][0].startswith("if ! ray job status --address http://svc:8265 ")
    assert {e["name"]: e["value"] for e in container["env"]} == {
        "PYTHONUNBUFFERED": "1",
        c.ENV_DASHBOARD_ADDRESS: "svc:8265",
        c.ENV_SUBMISSION_ID: "train-xyz12",
    }


def test_submitter_template_and_backoff_limit_are_used():
    template = {
        "spec": {
            "restartPolicy": "OnFailure",
            "containers": [{"name": "mine", "image": "me", "command": ["my-submit"]}],
        }
    }
    job = b.submitter_job(
        rayjob(submitterPodTemplate=template, submitterConfig={"backoffLimit": 0}),
        ready_cluster(),
        "svc:8265",
        "id",
    )
    assert job["spec"]["backoffLimit"] == 0
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["my-submit"] and "args" not in container
    assert template["spec"]["containers"][0].get("env") is None  # input untouched


def test_submit_request_is_rays_job_submit_request():
    job = rayjob(
        runtimeEnvYAML="pip: [requests]", metadata={"a": "b"}, entrypointResources='{"r": 1}'
    )
    assert b.submit_request(job, "id-1") == {
        "entrypoint": "python /app/main.py",
        "submission_id": "id-1",
        "metadata": {"a": "b"},
        "runtime_env": {"pip": ["requests"]},
        "entrypoint_resources": {"r": 1},
    }


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"runtimeEnvYAML": "a: [unclosed"}, "spec.runtimeEnvYAML is not valid YAML"),
        ({"runtimeEnvYAML": "- a list"}, "spec.runtimeEnvYAML must be a YAML mapping"),
        ({"entrypointResources": "r=1"}, "spec.entrypointResources must be a JSON object"),
        ({"entrypointResources": '{"r": "x"}'}, "spec.entrypointResources"),
        ({"submissionMode": c.MODE_SIDECAR}, "spec.submissionMode SidecarMode"),
    ],
)
def test_validate_names_the_field(spec, words):
    with pytest.raises(b.InvalidRayJob, match=words.replace(".", r"\.")):
        b.validate(rayjob(**spec))
