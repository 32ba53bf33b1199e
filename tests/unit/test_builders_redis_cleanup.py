"""The Redis cleanup Job of a GCS fault-tolerant RayCluster (builders/redis_cleanup.py):
the head pod reduced to its Ray container running Ray's `cleanup_redis_storage`, with
KubeRay v1.6.1's name, labels, limits and Job settings."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from ray_operator import constants as c
from ray_operator.builders.pod import build_head_pod
from ray_operator.builders.redis_cleanup import (
    CLEANUP_SCRIPT,
    build_redis_cleanup_job,
    cleanup_job_selector,
)
from ray_operator.errors import InvalidSpecError
from ray_operator.names import redis_cleanup_job_name
from tests.unit.builders_support import cluster, env_map, pod_problems, ray_container

FT = {"redisAddress": "redis:6379", "redisPassword": {"valueFrom": {"secretKeyRef": {
    "name": "redis", "key": "password"}}}}  # fmt: skip


def ft_cluster(**kw):
    return cluster(gcsFaultToleranceOptions=FT, **kw)


def test_job_is_the_head_pod_reduced_to_its_ray_container():
    body = ft_cluster(
        enableInTreeAutoscaling=True,
        head={"template": {"spec": {
            "containers": [ray_container("ray-head"), ray_container("sidecar")],
            "initContainers": [ray_container("setup")],
        }}},
    )  # fmt: skip
    head = build_head_pod(body)
    job = build_redis_cleanup_job(body)
    meta, spec = job["metadata"], job["spec"]
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    assert meta["name"] == "demo-redis-cleanup" and meta["namespace"] == "ns"
    assert meta["labels"] == {**head["metadata"]["labels"], c.LABEL_NODE_TYPE: "redis-cleanup"}
    assert meta["annotations"] == head["metadata"]["annotations"]
    assert meta["annotations"][c.ANNOTATION_EXTERNAL_STORAGE_NS] == "uid-1234"
    assert meta["ownerReferences"][0]["uid"] == "uid-1234"
    assert meta["ownerReferences"][0]["controller"] is True
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"]) == (0, 300)
    assert "ttlSecondsAfterFinished" not in spec
    template = spec["template"]
    assert template["metadata"]["labels"] == meta["labels"]
    pod_spec = template["spec"]
    assert [x["name"] for x in pod_spec["containers"]] == ["ray-head"]  # sidecars dropped
    assert [x["name"] for x in pod_spec["initContainers"]] == ["setup"]
    assert pod_spec["volumes"] == head["spec"]["volumes"]
    assert pod_spec["serviceAccountName"] == head["spec"]["serviceAccountName"]
    assert pod_spec["restartPolicy"] == "Never"
    ray = pod_spec["containers"][0]
    assert "livenessProbe" not in ray and "readinessProbe" not in ray
    limits = {"cpu": "200m", "memory": "256Mi"}
    assert ray["resources"] == {"requests": limits, "limits": limits}
    env = env_map(ray)
    assert env["RAY_REDIS_ADDRESS"] == "redis:6379"
    assert env["REDIS_PASSWORD"] == FT["redisPassword"]["valueFrom"]  # a reference, kept
    assert env["RAY_external_storage_namespace"] == "uid-1234"
    assert env["RAY_redis_db_connect_retries"] == "120"
    assert env["RAY_redis_db_connect_wait_milliseconds"] == "500"
    assert ray["command"] == ["/bin/bash", "-c", "--"]
    assert "cleanup_redis_storage" in ray["args"][0]
    assert pod_problems({"metadata": template["metadata"], "spec": pod_spec}) == []


def test_storage_namespace_follows_the_options():
    body = cluster(gcsFaultToleranceOptions={**FT, "externalStorageNamespace": "shared"})
    job = build_redis_cleanup_job(body)
    env = env_map(job["spec"]["template"]["spec"]["containers"][0])
    assert env["RAY_external_storage_namespace"] == "shared"
    assert job["metadata"]["annotations"][c.ANNOTATION_EXTERNAL_STORAGE_NS] == "shared"


def test_legacy_annotation_mode_keeps_the_users_redis_address():
    body = cluster(
        annotations={c.ANNOTATION_FT_ENABLED: "true"},
        head_container=ray_container("ray-head", env=[{"name": "RAY_REDIS_ADDRESS",
                                                       "value": "redis://r:7000"}]),
    )  # fmt: skip
    env = env_map(build_redis_cleanup_job(body)["spec"]["template"]["spec"]["containers"][0])
    assert env["RAY_REDIS_ADDRESS"] == "redis://r:7000"


def test_connect_retries_are_ours_even_if_the_user_set_them():
    container = ray_container("ray-head", env=[{"name": "RAY_redis_db_connect_retries",
                                                "value": "1"}])  # fmt: skip
    ray = build_redis_cleanup_job(ft_cluster(head_container=container))["spec"]["template"]["spec"][
        "containers"
    ][0]
    names = [e["name"] for e in ray["env"]]
    assert names.count("RAY_redis_db_connect_retries") == 1
    assert env_map(ray)["RAY_redis_db_connect_retries"] == "120"


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("demo", "demo-redis-cleanup"),
        ("a" * 54, "a" * 49 + "-redis-cleanup"),  # the last 63 characters, as KubeRay
        ("abcd-" + "x" * 49, "x" * 49 + "-redis-cleanup"),  # never starts with '-'
    ],
)
def test_job_name_keeps_the_last_63_characters(name, want):
    assert redis_cleanup_job_name(name) == want
    assert len(want) <= 63


def test_selector_finds_the_jobs_by_cluster_and_node_type():
    assert cleanup_job_selector("demo") == "ray.io/cluster=demo,ray.io/node-type=redis-cleanup"


def test_a_head_spec_no_pod_can_be_built_from_refuses_the_job_too():
    body = ft_cluster(head={"template": {"spec": {"containers": []}}})
    with pytest.raises(InvalidSpecError):
        build_redis_cleanup_job(body)


def test_the_script_survives_bash_quoting_unchanged(tmp_path):
    """The args run under `bash -c`: bash must hand python exactly CLEANUP_SCRIPT.
    A stand-in `python` on PATH prints what it was given."""
    fake = tmp_path / "python"
    fake.write_text('#!/bin/bash\nprintf "%s" "$2"\n')
    fake.chmod(0o755)
    args = build_redis_cleanup_job(ft_cluster())["spec"]["template"]["spec"]["containers"][0][
        "args"
    ]
    out = subprocess.run(
        ["/bin/bash", "-c", "--", args[0]], capture_output=True, text=True, check=True,
        env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
    )  # fmt: skip
    assert out.stdout.endswith(CLEANUP_SCRIPT), shlex.quote(out.stdout)
    compile(CLEANUP_SCRIPT, "cleanup", "exec")  # valid Python
