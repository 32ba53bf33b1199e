"""The autoscaler sidecar and its RBAC (docs/behaviour.md, Autoscaling)."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from ray_operator.builders import build_autoscaler_container, build_autoscaler_rbac, build_head_pod
from ray_operator.errors import InvalidSpecError

from .builders_support import IMAGE, cluster, env_map, frozen, pod_problems, ray_container

ON = {"enableInTreeAutoscaling": True}


def sidecar_of(pod: dict[str, Any]) -> dict[str, Any]:
    (sidecar,) = [x for x in pod["spec"]["containers"] if x["name"] == "autoscaler"]
    return sidecar


def test_default_sidecar() -> None:
    sidecar = build_autoscaler_container(cluster(**ON))
    assert sidecar["name"] == "autoscaler"
    assert sidecar["image"] == IMAGE  # the head's Ray image
    assert sidecar["imagePullPolicy"] == "IfNotPresent"
    assert sidecar["resources"] == {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"cpu": "500m", "memory": "512Mi"},
    }
    assert sidecar["command"] == ["/bin/bash", "-c", "--"]
    assert sidecar["args"] == [
        "ray kuberay-autoscaler --cluster-name $(RAY_CLUSTER_NAME) "
        "--cluster-namespace $(RAY_CLUSTER_NAMESPACE)"
    ]
    assert env_map(sidecar) == {
        "RAY_CLUSTER_NAME": {"fieldRef": {"fieldPath": "metadata.labels['ray.io/cluster']"}},
        "RAY_CLUSTER_NAMESPACE": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        "RAY_HEAD_POD_NAME": {"fieldRef": {"fieldPath": "metadata.name"}},
        "KUBERAY_CRD_VER": "v1",
        "KUBERAY_GEN_AUTOSCALER_START_CMD": sidecar["args"][0],
    }
    for key in ("envFrom", "volumeMounts", "securityContext"):
        assert key not in sidecar


@pytest.mark.parametrize(
    ("option", "value", "field", "expected"),
    [
        ("image", "my/autoscaler:1", "image", "my/autoscaler:1"),
        ("imagePullPolicy", "Always", "imagePullPolicy", "Always"),
        ("resources", {"limits": {"cpu": "1"}}, "resources", {"limits": {"cpu": "1"}}),
        ("securityContext", {"runAsNonRoot": True}, "securityContext", {"runAsNonRoot": True}),
        ("command", ["python"], "command", ["python"]),
        ("args", ["-m", "mine"], "args", ["-m", "mine"]),
        ("envFrom", [{"secretRef": {"name": "s"}}], "envFrom", [{"secretRef": {"name": "s"}}]),
        (
            "volumeMounts",
            [{"name": "v", "mountPath": "/v"}],
            "volumeMounts",
            [{"name": "v", "mountPath": "/v"}],
        ),
    ],
)
def test_every_option_reaches_the_container(
    option: str, value: Any, field: str, expected: Any
) -> None:
    sidecar = build_autoscaler_container(cluster(autoscalerOptions={option: value}, **ON))
    assert sidecar[field] == expected


def test_user_env_is_added_and_replaces_ours_by_name() -> None:
    env = [{"name": "KUBERAY_CRD_VER", "value": "v1alpha1"}, {"name": "EXTRA", "value": "1"}]
    sidecar = build_autoscaler_container(cluster(autoscalerOptions={"env": env}, **ON))
    got = env_map(sidecar)
    assert got["KUBERAY_CRD_VER"] == "v1alpha1" and got["EXTRA"] == "1"
    assert [e["name"] for e in sidecar["env"]].count("KUBERAY_CRD_VER") == 1


@pytest.mark.parametrize(
    "options",
    [
        {"idleTimeoutSeconds": 300},
        {"upscalingMode": "Aggressive"},
        {"version": "v1"},
        # v2 is switched on in the Ray containers (the head's GCS tells the sidecar)
        {"version": "v2"},
    ],
)
def test_options_ray_reads_from_the_cluster_change_nothing_here(options: dict[str, Any]) -> None:
    assert build_autoscaler_container(
        cluster(autoscalerOptions=options, **ON)
    ) == build_autoscaler_container(cluster(**ON))


def test_rays_own_cli_accepts_the_sidecar_command() -> None:
    """`ray kuberay-autoscaler` of the pinned Ray parses our args, after the kubelet's
    `$(VAR)` expansion, into the cluster name and namespace the env carries."""
    from ray.scripts.scripts import kuberay_autoscaler

    sidecar = build_autoscaler_container(cluster(**ON))
    assert sidecar["command"] == ["/bin/bash", "-c", "--"]
    (script,) = sidecar["args"]
    expanded = script.replace("$(RAY_CLUSTER_NAME)", "demo").replace(
        "$(RAY_CLUSTER_NAMESPACE)", "ns"
    )
    ray, command, *args = shlex.split(expanded)
    assert (ray, command) == ("ray", "kuberay-autoscaler")
    context = kuberay_autoscaler.make_context("kuberay-autoscaler", args)
    assert context.params == {
        "cluster_name": "demo",
        "cluster_namespace": "ns",
        "gcs_address": None,  # Ray's default: <pod IP>:6379
    }
    env = {e["name"] for e in sidecar["env"]}
    assert {"RAY_CLUSTER_NAME", "RAY_CLUSTER_NAMESPACE"} <= env


def test_head_of_an_autoscaled_cluster() -> None:
    """The head side of the sidecar contract in one place: no monitor of its own, the
    v2 switch and restartPolicy Never only with version v2, the service account."""
    for version, v2 in ((None, False), ("v1", False), ("v2", True)):
        options = {"version": version} if version else {}
        pod = build_head_pod(cluster(autoscalerOptions=options, **ON))
        ray = pod["spec"]["containers"][0]
        assert "--no-monitor" in ray["args"][0]
        assert (env_map(ray).get("RAY_enable_autoscaler_v2") == "1") is v2
        assert (pod["spec"].get("restartPolicy") == "Never") is v2
        assert pod["spec"]["serviceAccountName"] == "demo"
        assert [x["name"] for x in pod["spec"]["containers"]] == ["ray-head", "autoscaler"]


def test_sidecar_shares_tmp_ray_with_the_ray_container() -> None:
    body = cluster(**ON)
    before = frozen(body)
    pod = build_head_pod(body)
    assert body == before
    ray, sidecar = pod["spec"]["containers"]
    mount = {"name": "ray-logs", "mountPath": "/tmp/ray"}
    assert mount in ray["volumeMounts"] and mount in sidecar["volumeMounts"]
    assert {"name": "ray-logs", "emptyDir": {}} in pod["spec"]["volumes"]
    assert pod_problems(pod) == []


def test_existing_tmp_ray_mount_of_the_ray_container_is_shared() -> None:
    head = ray_container("ray-head", volumeMounts=[{"name": "logs", "mountPath": "/tmp/ray"}])
    body = cluster(
        head={
            "template": {
                "spec": {"containers": [head], "volumes": [{"name": "logs", "emptyDir": {}}]}
            }
        },
        **ON,
    )
    pod = build_head_pod(body)
    assert {"name": "logs", "mountPath": "/tmp/ray"} in sidecar_of(pod)["volumeMounts"]
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["logs", "shared-mem"]
    assert pod_problems(pod) == []


def test_user_tmp_ray_mount_on_the_sidecar_is_kept() -> None:
    mounts = [{"name": "logs", "mountPath": "/tmp/ray"}]
    head_spec = {
        "containers": [ray_container("ray-head")],
        "volumes": [{"name": "logs", "emptyDir": {}}],
    }
    body = cluster(
        head={"template": {"spec": head_spec}}, autoscalerOptions={"volumeMounts": mounts}, **ON
    )
    pod = build_head_pod(body)
    assert sidecar_of(pod)["volumeMounts"] == mounts
    assert pod_problems(pod) == []


# -- RBAC ----------------------------------------------------------------------------------


def test_rbac_objects() -> None:
    sa, role, binding = build_autoscaler_rbac(cluster(**ON))
    assert [o["kind"] for o in (sa, role, binding)] == ["ServiceAccount", "Role", "RoleBinding"]
    assert (sa["apiVersion"], role["apiVersion"], binding["apiVersion"]) == (
        "v1",
        "rbac.authorization.k8s.io/v1",
        "rbac.authorization.k8s.io/v1",
    )
    for obj in (sa, role, binding):
        assert (obj["metadata"]["name"], obj["metadata"]["namespace"]) == ("demo", "ns")
        assert obj["metadata"]["ownerReferences"][0]["name"] == "demo"
        assert obj["metadata"]["ownerReferences"][0]["kind"] == "RayCluster"
        assert obj["metadata"]["labels"]["ray.io/cluster"] == "demo"
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "patch"]},
        {"apiGroups": [""], "resources": ["pods/resize"], "verbs": ["patch"]},
        {"apiGroups": ["ray.io"], "resources": ["rayclusters"], "verbs": ["get", "patch"]},
    ]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "demo", "namespace": "ns"}]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "demo",
    }


def test_the_head_pod_runs_as_the_service_account_created() -> None:
    body = cluster(**ON)
    sa = build_autoscaler_rbac(body)[0]
    assert build_head_pod(body)["spec"]["serviceAccountName"] == sa["metadata"]["name"]


@pytest.mark.parametrize(
    ("policy", "verbs"),
    [
        ("Delete", ["get", "patch", "delete"]),
        ("Suspend", ["get", "patch"]),
        (None, ["get", "patch"]),
    ],
)
def test_delete_only_under_the_delete_policy(policy: str | None, verbs: list[str]) -> None:
    options = {"timeoutSeconds": 600, **({"policy": policy} if policy else {})}
    role = build_autoscaler_rbac(cluster(idleTerminationOptions=options, **ON))[1]
    assert role["rules"][2]["verbs"] == verbs


@pytest.mark.parametrize("field", ["serviceAccountName", "serviceAccount"])
def test_no_rbac_for_a_user_service_account(field: str) -> None:
    body = cluster(
        head={"template": {"spec": {field: "mine", "containers": [ray_container()]}}}, **ON
    )
    assert build_autoscaler_rbac(body) == []


def test_no_rbac_without_autoscaling() -> None:
    assert build_autoscaler_rbac(cluster()) == []
    assert build_autoscaler_rbac(cluster(enableInTreeAutoscaling=False)) == []


def test_custom_command_can_run_the_generated_one_as_kuberay_1_7() -> None:
    """KubeRay v1.7.0: command/args replace ours and KUBERAY_GEN_AUTOSCALER_START_CMD,
    placed after the variables it names, lets them wrap the generated command."""
    from tests.ray_harness import expand

    options = {
        "command": ["/bin/bash", "-c"],
        "args": ["echo hi && $KUBERAY_GEN_AUTOSCALER_START_CMD"],
    }
    sidecar = build_autoscaler_container(cluster(autoscalerOptions=options, **ON))
    assert (sidecar["command"], sidecar["args"]) == (options["command"], options["args"])
    names = [e["name"] for e in sidecar["env"]]
    assert names.index("KUBERAY_GEN_AUTOSCALER_START_CMD") > names.index("RAY_CLUSTER_NAMESPACE")
    # The kubelet's expansion, in env order, as the harness does it.
    resolved: dict[str, str] = {"RAY_CLUSTER_NAME": "demo", "RAY_CLUSTER_NAMESPACE": "ns"}
    gen = expand(env_map(sidecar)["KUBERAY_GEN_AUTOSCALER_START_CMD"], resolved)
    assert gen == "ray kuberay-autoscaler --cluster-name demo --cluster-namespace ns"


def test_env_may_not_set_the_generated_command() -> None:
    env = [{"name": "A", "value": "1"}, {"name": "KUBERAY_GEN_AUTOSCALER_START_CMD", "value": "x"}]
    with pytest.raises(InvalidSpecError) as err:
        build_autoscaler_container(cluster(autoscalerOptions={"env": env}, **ON))
    assert err.value.field == "spec.autoscalerOptions.env[1].name"
