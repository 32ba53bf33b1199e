"""`spec.authOptions` (KubeRay v1.6.1's token authentication): the Secret, what each
container gets, and the specs that are refused."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from ray_operator import constants as c
from ray_operator.builders import auth, build_head_pod, build_worker_pod
from ray_operator.observed import Observed
from ray_operator.planner import plan
from tests.observed_pods import BUILDERS, SERVICE, head
from tests.observed_pods import cluster as stored_cluster

from .builders_support import cluster, env_map, pod_problems

TOKEN_REF = {"secretKeyRef": {"name": "demo", "key": "auth_token"}}


def with_auth(options: dict[str, Any] | None, ray_version: str = "2.60.0", **spec: Any):
    body = cluster(rayVersion=ray_version, **spec)
    if options is not None:
        body["spec"]["authOptions"] = options
    return body


def containers(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = pod["spec"]
    return {x["name"]: x for x in spec["containers"] + spec.get("initContainers", [])}


def test_token_mode_gives_every_ray_process_the_generated_secret():
    body = with_auth({"mode": "token"}, enableInTreeAutoscaling=True)
    head_pod, worker_pod = build_head_pod(body), build_worker_pod(body, 0)
    for pod, names in (
        (head_pod, ["ray-head", "autoscaler"]),
        (worker_pod, ["worker", "wait-gcs-ready"]),
    ):
        found = containers(pod)
        for name in names:
            env = env_map(found[name])
            assert env["RAY_AUTH_MODE"] == "token", name
            assert env["RAY_AUTH_TOKEN"] == TOKEN_REF, name
            assert "RAY_ENABLE_K8S_TOKEN_AUTH" not in env
        assert pod_problems(pod) == []
    # No `ray start` flag: Ray reads the env.
    assert "auth" not in env_map(containers(head_pod)["ray-head"])["KUBERAY_GEN_RAY_START_CMD"]


def test_secret_name_replaces_the_generated_secret():
    body = with_auth({"mode": "token", "secretName": "mine"})
    ref = env_map(build_worker_pod(body, 0)["spec"]["containers"][0])["RAY_AUTH_TOKEN"]
    assert ref == {"secretKeyRef": {"name": "mine", "key": "auth_token"}}
    assert not auth.wants_generated_secret(body)


def test_user_env_of_the_same_name_wins():
    body = with_auth({"mode": "token"})
    body["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "RAY_AUTH_TOKEN", "value": "by-hand"}
    ]
    env = env_map(build_head_pod(body)["spec"]["containers"][0])
    assert env["RAY_AUTH_TOKEN"] == "by-hand"
    assert env["RAY_AUTH_MODE"] == "token"


@pytest.mark.parametrize("options", [None, {"mode": "disabled"}, {}])
def test_nothing_injected_unless_mode_token(options):
    body = with_auth(options)
    for pod in (build_head_pod(body), build_worker_pod(body, 0)):
        for container in containers(pod).values():
            assert not {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"} & set(env_map(container))


def test_k8s_token_auth_mounts_the_service_account_token_and_no_secret():
    body = with_auth({"mode": "token", "enableK8sTokenAuth": True}, enableInTreeAutoscaling=True)
    for pod in (build_head_pod(body), build_worker_pod(body, 0)):
        assert {
            "name": "ray-token",
            "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]},
        } in pod["spec"]["volumes"]
        for name, container in containers(pod).items():
            env = env_map(container)
            assert env["RAY_ENABLE_K8S_TOKEN_AUTH"] == "true", name
            assert "RAY_AUTH_TOKEN" not in env
            assert {
                "name": "ray-token",
                "mountPath": "/var/run/secrets/ray.io/serviceaccount",
                "readOnly": True,
            } in container["volumeMounts"]
        assert pod_problems(pod) == []
    assert not auth.wants_generated_secret(body)


@pytest.mark.parametrize(
    ("options", "wanted"),
    [
        (None, False),
        ({"mode": "disabled"}, False),
        ({"mode": "token"}, True),
        ({}, True),  # KubeRay's quirk: mode unset still makes the Secret
        ({"mode": "token", "secretName": "x"}, False),
        ({"mode": "token", "enableK8sTokenAuth": True}, False),
    ],
)
def test_when_the_secret_is_generated(options, wanted):
    assert auth.wants_generated_secret(with_auth(options)) is wanted


def test_generated_secret_name_owner_and_token():
    secret = auth.build_auth_secret(with_auth({"mode": "token"}))
    assert secret["metadata"]["name"] == "demo"
    assert secret["metadata"]["labels"] == {c.LABEL_CLUSTER: "demo"}
    (owner,) = secret["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("RayCluster", "uid-1234", True)
    assert "stringData" not in secret  # the token is the shell's business
    filled = auth.with_token(secret, bytes(range(32)))
    token = filled["stringData"]["auth_token"]
    assert len(token) == 44 and base64.standard_b64decode(token) == bytes(range(32))
    assert "stringData" not in secret


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("demo", "demo"),
        ("a" * 54, "a" * 50),
        ("x" * 4 + "-" + "b" * 49, "r" + "b" * 49),
        ("x" * 5 + "1" + "b" * 49, "r" + "b" * 49),
    ],
)
def test_generated_secret_name_follows_kuberay(name, want):
    assert auth.generated_secret_name(name) == want


@pytest.mark.parametrize(
    ("options", "version", "field", "words"),
    [
        ({"mode": "token"}, "", "spec.rayVersion", "not set"),
        ({"mode": "token"}, "nightly", "spec.rayVersion", "not a version"),
        ({"mode": "token"}, "2.51.1", "spec.rayVersion", "2.52.0 or later"),
        ({"mode": "token", "enableK8sTokenAuth": True}, "2.54", "spec.rayVersion", "2.55.0"),
        (
            {"mode": "disabled", "enableK8sTokenAuth": True},
            "2.60.0",
            "spec.authOptions.enableK8sTokenAuth",
            "mode: token",
        ),
        (
            {"mode": "token", "enableK8sTokenAuth": True, "secretName": "s"},
            "2.60.0",
            "spec.authOptions.secretName",
            "drop one",
        ),
    ],
)
def test_refused_specs_name_the_field(options, version, field, words):
    (problem,) = [p for p in auth.problems(with_auth(options, version)) if p[0] == field]
    assert words in problem[1]


@pytest.mark.parametrize("version", ["2.52.0", "2.52", "v2.60.0", "3.0.0rc1", "2.52.0-dev"])
def test_accepted_versions(version):
    assert auth.problems(with_auth({"mode": "token"}, version)) == []


def test_planner_ensures_the_secret_first_and_refuses_bad_auth_without_touching_pods():
    body = stored_cluster(rayVersion="2.60.0", authOptions={"mode": "token"})
    p = plan(body, _observed(), BUILDERS)
    assert p.ensure[0]["kind"] == "Secret"
    body["spec"]["rayVersion"] = "2.40.0"
    p = plan(body, _observed(head()), BUILDERS)
    assert (p.creates, p.deletes, p.ensure) == ([], [], [])
    assert [(x.reason, x.field) for x in p.problems] == [("InvalidAuthOptions", "spec.rayVersion")]


def _observed(*pods):
    return Observed(pods=pods, head_service=SERVICE)
