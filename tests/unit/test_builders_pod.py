"""Head and worker pods (docs/behaviour.md, Pods and Services), names, labels and the
template hash."""

from __future__ import annotations

from typing import Any

import pytest

from ray_operator import constants as c
from ray_operator import names
from ray_operator.builders import build_head_pod, build_worker_pod
from ray_operator.builders.meta import (
    group_selector,
    head_selector,
)
from ray_operator.errors import InvalidSpecError
from ray_operator.spec import worker_group

from .builders_support import IMAGE, cluster, env_map, frozen, pod_problems, ray_container, worker

FQDN = "demo-head-svc.ns.svc.cluster.local"
SECRET = {"secretKeyRef": {"name": "redis", "key": "password"}}


def ray_of(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["spec"]["containers"][0]


def full_cluster(**spec: Any) -> dict[str, Any]:
    """Exercises most features at once, for the validity checks."""
    head_container = ray_container(
        "ray-head",
        resources={"limits": {"cpu": "2", "memory": "4Gi"}},
        ports=[
            {"name": "gcs-server", "containerPort": 6379},
            {"name": "dashboard", "containerPort": 8265},
        ],
        env=[
            {"name": "RAY_ADDRESS", "value": "custom:1"},
            {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": SECRET["secretKeyRef"]}},
        ],
        volumeMounts=[{"name": "data", "mountPath": "/data"}],
        securityContext={"runAsUser": 1000},
    )
    gpu = ray_container(
        "gpu-worker",
        resources={"limits": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"}},
        securityContext={"runAsNonRoot": True},
        volumeMounts=[{"name": "data", "mountPath": "/data"}],
    )
    data = [{"name": "data", "emptyDir": {}}]
    return cluster(
        head={
            "rayStartParams": {"num-cpus": "0"},
            "template": {
                "metadata": {"labels": {"team": "ml"}},
                "spec": {"containers": [head_container], "volumes": data},
            },
        },
        workers=[
            worker("cpu", rayStartParams={}),
            {
                "groupName": "gpu",
                "template": {"spec": {"containers": [gpu], "volumes": list(data)}},
            },
        ],
        enableInTreeAutoscaling=True,
        autoscalerOptions={"version": "v2"},
        gcsFaultToleranceOptions={
            "redisAddress": "redis:6379",
            "redisPassword": {"valueFrom": SECRET},
        },
        **{"rayVersion": "2.41.0", **spec},
    )


# -- valid pods ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        cluster(),
        full_cluster(),
        full_cluster(rayVersion="2.53.0"),
        cluster(enableInTreeAutoscaling=True),
        cluster(head={"rayStartParams": {"metrics-export-port": "9000"}}),
    ],
)
def test_pods_pass_api_server_style_checks(body: dict[str, Any]) -> None:
    pods = [build_head_pod(body)] + [
        build_worker_pod(body, i) for i in range(len(body["spec"]["workerGroupSpecs"]))
    ]
    for pod in pods:
        assert pod["apiVersion"] == "v1" and pod["kind"] == "Pod"
        assert "name" not in pod["metadata"]
        assert pod_problems(pod) == []


def test_building_is_pure_and_deterministic() -> None:
    body = full_cluster()
    before = frozen(body)
    first = (build_head_pod(body), build_worker_pod(body, 0), build_worker_pod(body, 1))
    second = (build_head_pod(body), build_worker_pod(body, 0), build_worker_pod(body, 1))
    assert body == before
    assert first == second
    first[0]["spec"]["containers"][0]["env"].append({"name": "X", "value": "1"})
    assert body == before  # the output shares nothing with the input


def test_unknown_group_index() -> None:
    with pytest.raises(IndexError):
        build_worker_pod(cluster(), 3)


def test_template_without_containers_is_a_spec_error() -> None:
    body = cluster(workers=[{"groupName": "empty", "template": {"spec": {"containers": []}}}])
    with pytest.raises(InvalidSpecError) as err:
        build_worker_pod(body, 0)
    assert err.value.field == "spec.workerGroupSpecs[0].template.spec.containers"


# -- metadata ------------------------------------------------------------------------------


def test_head_metadata() -> None:
    meta = build_head_pod(cluster())["metadata"]
    assert meta["generateName"] == "demo-head-"
    assert meta["namespace"] == "ns"
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "ray.io/v1",
            "kind": "RayCluster",
            "name": "demo",
            "uid": "uid-1234",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert meta["labels"] == {
        "ray.io/cluster": "demo",
        "ray.io/node-type": "head",
        "ray.io/group": "headgroup",
        "ray.io/is-ray-node": "yes",
        "ray.io/identifier": "demo-head",
        "app.kubernetes.io/name": "kuberay",
        "app.kubernetes.io/created-by": "kuberay-operator",
    }


def test_worker_metadata() -> None:
    meta = build_worker_pod(cluster(workers=[worker("a"), worker("gpu-group")]), 1)["metadata"]
    assert meta["generateName"] == "demo-gpu-group-worker-"
    assert meta["labels"]["ray.io/node-type"] == "worker"
    assert meta["labels"]["ray.io/group"] == "gpu-group"
    assert meta["labels"]["ray.io/identifier"] == "demo-worker"


def test_user_labels_are_kept_but_protected_ones_stay_ours() -> None:
    group = worker("small")
    group["template"]["metadata"] = {
        "labels": {
            "team": "ml",
            "ray.io/cluster": "evil",
            "ray.io/node-type": "head",
            "ray.io/group": "x",
            "app.kubernetes.io/name": "mine",
        },
        "annotations": {"note": "hi"},
        "name": "fixed-name",
        "namespace": "elsewhere",
    }
    group["labels"] = {"zone": "b"}  # Ray-level labels also label the pod
    meta = build_worker_pod(cluster(workers=[group]), 0)["metadata"]
    labels = meta["labels"]
    assert labels["team"] == "ml" and labels["zone"] == "b"
    assert (labels["ray.io/cluster"], labels["ray.io/node-type"], labels["ray.io/group"]) == (
        "demo",
        "worker",
        "small",
    )
    assert labels["app.kubernetes.io/name"] == "mine"  # not protected
    assert meta["annotations"]["note"] == "hi"
    assert "name" not in meta and meta["namespace"] == "ns"


def test_missing_uid_is_refused() -> None:
    body = cluster()
    del body["metadata"]["uid"]
    with pytest.raises(ValueError, match="uid"):
        build_head_pod(body)


def test_selectors() -> None:
    body = cluster()
    assert head_selector(body) == {"ray.io/cluster": "demo", "ray.io/node-type": "head"}
    group = group_selector(body, worker_group(body, 0))
    assert group == {
        "ray.io/cluster": "demo",
        "ray.io/node-type": "worker",
        "ray.io/group": "small",
    }
    pod_labels = build_worker_pod(body, 0)["metadata"]["labels"]
    assert group.items() <= pod_labels.items()


# -- names -----------------------------------------------------------------------------------


def test_service_names() -> None:
    assert names.head_service_name("demo") == "demo-head-svc"
    assert names.head_service_fqdn("demo", "ns") == FQDN
    assert names.head_service_fqdn("demo", "ns", "corp") == "demo-head-svc.ns.svc.corp"


@pytest.mark.parametrize(
    ("cluster_name", "group", "expected"),
    [
        ("demo", "small", "demo-small-worker-"),
        ("demo", "GPU_Group", "demo-gpu-group-worker-"),
        ("demo", "a.b", "demo-a-b-worker-"),
        ("c" * 54, "g" * 10, "c" * 39 + "-" + "g" * 10 + "-worker-"),
        ("c" * 20, "g" * 63, "c" * 20 + "-" + "g" * 29 + "-worker-"),
        ("c" * 54, "g" * 63, "c" * 24 + "-" + "g" * 25 + "-worker-"),
        ("ab-" + "c" * 40, "x-" + "g" * 40, None),
    ],
)
def test_worker_generate_name_fits(cluster_name: str, group: str, expected: str | None) -> None:
    got = names.worker_pod_generate_name(cluster_name, group)
    assert len(got) <= 58 and len(got + "abcde") <= 63
    assert got.endswith("-worker-") and "--" not in got
    if expected is not None:
        assert got == expected


def test_head_generate_name_fits() -> None:
    assert names.head_pod_generate_name("demo") == "demo-head-"
    long = names.head_pod_generate_name("c" * 54)
    assert long == "c" * 52 + "-head-" and len(long) == 58


# -- template hash -----------------------------------------------------------------------------


def hash_of(body: dict[str, Any], index: int | None = None) -> str:
    pod = build_head_pod(body) if index is None else build_worker_pod(body, index)
    return pod["metadata"]["annotations"][c.ANNOTATION_TEMPLATE_HASH]


def test_hash_is_stable_and_short() -> None:
    first, second = hash_of(cluster(), 0), hash_of(cluster(), 0)
    assert first == second and 8 <= len(first) <= 20


def test_hash_follows_template_and_params_only() -> None:
    base = hash_of(cluster(), 0)
    assert hash_of(cluster(workers=[worker(rayStartParams={})]), 0) == base
    assert (
        hash_of(
            cluster(
                workers=[
                    worker(
                        replicas=5,
                        minReplicas=1,
                        maxReplicas=9,
                        scaleStrategy={"workersToDelete": ["p"]},
                    )
                ]
            ),
            0,
        )
        == base
    )
    assert hash_of(cluster(workers=[worker(rayStartParams={"num-cpus": "2"})]), 0) != base
    assert (
        hash_of(cluster(workers=[worker(container=ray_container("worker", image="other:1"))]), 0)
        != base
    )
    assert hash_of(cluster(workers=[worker(resources={"TPU": "4"})]), 0) != base


def test_groups_have_their_own_hash() -> None:
    body = cluster(workers=[worker("a"), worker("b", rayStartParams={"num-cpus": "1"})])
    assert hash_of(body, 0) != hash_of(body, 1)
    assert hash_of(body) != hash_of(body, 0)


# -- the Ray container ---------------------------------------------------------------------


def test_ray_container_is_container_zero_with_generated_command() -> None:
    body = cluster(head_container=ray_container("ray-head", command=["echo", "hi"]))
    ray = ray_of(build_head_pod(body))
    assert ray["name"] == "ray-head"
    assert ray["command"] == ["/bin/bash", "-c", "--"]
    assert ray["args"][0].startswith("echo hi && ulimit -n 65536; ray start --head ")
    assert env_map(ray)["KUBERAY_GEN_RAY_START_CMD"] == ray["args"][0].split("; ", 1)[1]
    assert env_map(ray)["RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE"] == "1"


def test_overwrite_annotation_keeps_command_but_sets_generated_env() -> None:
    body = cluster(
        annotations={"ray.io/overwrite-container-cmd": "true"},
        head_container=ray_container("ray-head", command=["my-entrypoint"]),
    )
    pod = build_head_pod(body)
    ray = ray_of(pod)
    assert ray["command"] == ["my-entrypoint"] and "args" not in ray
    assert env_map(ray)["KUBERAY_GEN_RAY_START_CMD"].startswith("ray start --head")
    assert pod["metadata"]["annotations"]["ray.io/overwrite-container-cmd"] == "true"


def test_head_env() -> None:
    env = env_map(ray_of(build_head_pod(cluster())))
    assert env["RAY_CLUSTER_NAME"] == "demo"
    assert env["RAY_CLUSTER_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["RAY_CLOUD_INSTANCE_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["RAY_NODE_TYPE_NAME"] == "headgroup"
    assert env["RAY_PORT"] == "6379"
    assert env["RAY_ADDRESS"] == "127.0.0.1:6379"
    assert env["RAY_USAGE_STATS_KUBERAY_IN_USE"] == "1"
    assert "FQ_RAY_IP" not in env and "RAY_enable_autoscaler_v2" not in env


def test_worker_env() -> None:
    env = env_map(ray_of(build_worker_pod(cluster(head={"rayStartParams": {"port": "7000"}}), 0)))
    assert env["RAY_NODE_TYPE_NAME"] == "small"
    assert env["RAY_PORT"] == "7000"
    assert env["RAY_ADDRESS"] == f"{FQDN}:7000"
    assert env["FQ_RAY_IP"] == FQDN
    assert env["RAY_IP"] == "demo-head-svc"
    assert env["KUBERAY_GEN_RAY_START_CMD"].startswith(f"ray start --address={FQDN}:7000 ")


def test_user_env_wins_and_is_not_duplicated() -> None:
    container = ray_container(
        "w",
        env=[
            {"name": "RAY_ADDRESS", "value": "mine:1"},
            {
                "name": "RAY_CLUSTER_NAME",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['x']"}},
            },
        ],
    )
    ray = ray_of(build_worker_pod(cluster(workers=[worker(container=container)]), 0))
    names_ = [e["name"] for e in ray["env"]]
    assert names_.count("RAY_ADDRESS") == 1 and names_.count("RAY_CLUSTER_NAME") == 1
    assert names_[:2] == ["RAY_ADDRESS", "RAY_CLUSTER_NAME"]  # the user's first, untouched
    assert env_map(ray)["RAY_ADDRESS"] == "mine:1"


def test_shared_memory_volume_sized_to_memory_limit() -> None:
    pod = build_worker_pod(
        cluster(
            workers=[worker(container=ray_container("w", resources={"limits": {"memory": "8Gi"}}))]
        ),
        0,
    )
    assert {"name": "shared-mem", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}} in pod[
        "spec"
    ]["volumes"]
    assert {"name": "shared-mem", "mountPath": "/dev/shm"} in ray_of(pod)["volumeMounts"]


def test_shared_memory_falls_back_to_request_then_no_limit() -> None:
    by_request = build_worker_pod(
        cluster(
            workers=[
                worker(container=ray_container("w", resources={"requests": {"memory": "2Gi"}}))
            ]
        ),
        0,
    )
    assert by_request["spec"]["volumes"][0]["emptyDir"] == {"medium": "Memory", "sizeLimit": "2Gi"}
    unsized = build_worker_pod(cluster(), 0)
    assert unsized["spec"]["volumes"][0]["emptyDir"] == {"medium": "Memory"}


def test_user_dev_shm_mount_is_respected() -> None:
    container = ray_container("w", volumeMounts=[{"name": "mine", "mountPath": "/dev/shm/"}])
    group = worker(container=container)
    group["template"]["spec"]["volumes"] = [{"name": "mine", "emptyDir": {}}]
    pod = build_worker_pod(cluster(workers=[group]), 0)
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["mine"]
    assert len(ray_of(pod)["volumeMounts"]) == 1


def test_plasma_directory_skips_dev_shm() -> None:
    pod = build_worker_pod(
        cluster(workers=[worker(rayStartParams={"plasma-directory": "/data"})]), 0
    )
    assert "volumes" not in pod["spec"] or all(
        v["name"] != "shared-mem" for v in pod["spec"]["volumes"]
    )


def test_volume_name_clash_gets_a_new_name() -> None:
    group = worker()
    group["template"]["spec"]["volumes"] = [{"name": "shared-mem", "configMap": {"name": "cm"}}]
    pod = build_worker_pod(cluster(workers=[group]), 0)
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["shared-mem", "shared-mem-2"]
    assert {"name": "shared-mem-2", "mountPath": "/dev/shm"} in ray_of(pod)["volumeMounts"]


@pytest.mark.parametrize(
    ("ports", "params", "expected"),
    [
        (None, {}, [{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}]),
        (
            None,
            {"metrics-export-port": "9000"},
            [{"name": "metrics", "containerPort": 9000, "protocol": "TCP"}],
        ),
        (
            [{"name": "metrics", "containerPort": 9100}],
            {},
            [{"name": "metrics", "containerPort": 9100}],
        ),
        ([{"name": "prom", "containerPort": 8080}], {}, [{"name": "prom", "containerPort": 8080}]),
    ],
)
def test_metrics_port(
    ports: list[dict[str, Any]] | None, params: dict[str, str], expected: list[dict[str, Any]]
) -> None:
    container = ray_container("w", **({"ports": ports} if ports else {}))
    pod = build_worker_pod(cluster(workers=[worker(container=container, rayStartParams=params)]), 0)
    assert ray_of(pod)["ports"] == expected


# -- probes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.53.0", "2.53", "2.60.1", "3.0.0", "v2.54.0"])
def test_new_ray_gets_http_probes(version: str) -> None:
    ray = ray_of(build_worker_pod(cluster(rayVersion=version), 0))
    for probe in (ray["livenessProbe"], ray["readinessProbe"]):
        assert probe["httpGet"] == {"path": "/api/healthz", "port": 52365}
        assert "exec" not in probe


@pytest.mark.parametrize("version", ["2.52.1", "2.9.0", "1.13.0", None, "", "nightly", "latest"])
def test_older_or_unknown_ray_gets_wget_probes(version: str | None) -> None:
    body = cluster(**({"rayVersion": version} if version is not None else {}))
    worker_probe = ray_of(build_worker_pod(body, 0))["readinessProbe"]
    assert worker_probe["exec"]["command"] == [
        "bash",
        "-c",
        "wget --tries 1 -T 2 -q -O- http://localhost:52365/api/local_raylet_healthz | grep success",
    ]
    head_probe = ray_of(build_head_pod(body))["livenessProbe"]
    assert head_probe["exec"]["command"][2] == (
        "wget --tries 1 -T 2 -q -O- http://localhost:52365/api/local_raylet_healthz"
        " | grep success && "
        "wget --tries 1 -T 10 -q -O- http://localhost:8265/api/gcs_healthz | grep success"
    )


def test_probe_timings() -> None:
    ray = ray_of(build_worker_pod(cluster(), 0))
    readiness, liveness = ray["readinessProbe"], ray["livenessProbe"]
    assert (
        readiness["initialDelaySeconds"],
        readiness["periodSeconds"],
        readiness["failureThreshold"],
    ) == (10, 5, 10)
    assert (
        liveness["initialDelaySeconds"],
        liveness["periodSeconds"],
        liveness["failureThreshold"],
    ) == (30, 5, 120)
    assert readiness["timeoutSeconds"] == liveness["timeoutSeconds"] == 2
    assert ray_of(build_head_pod(cluster()))["readinessProbe"]["timeoutSeconds"] == 5


def test_probe_ports_follow_params() -> None:
    body = cluster(
        rayVersion="2.40.0",
        head={"rayStartParams": {"dashboard-agent-listen-port": "6000", "dashboard-port": "9265"}},
    )
    script = ray_of(build_head_pod(body))["readinessProbe"]["exec"]["command"][2]
    assert (
        "localhost:6000/api/local_raylet_healthz" in script
        and "localhost:9265/api/gcs_healthz" in script
    )
    body = cluster(
        rayVersion="2.55.0",
        workers=[worker(rayStartParams={"dashboard-agent-listen-port": "6001"})],
    )
    assert ray_of(build_worker_pod(body, 0))["livenessProbe"]["httpGet"]["port"] == 6001


def test_user_probes_are_kept_each_separately() -> None:
    mine = {"tcpSocket": {"port": 6379}, "periodSeconds": 3}
    container = ray_container("w", readinessProbe=mine)
    ray = ray_of(build_worker_pod(cluster(workers=[worker(container=container)]), 0))
    assert ray["readinessProbe"] == mine
    assert "exec" in ray["livenessProbe"]


# -- init containers -------------------------------------------------------------------------


def test_worker_waits_for_the_gcs() -> None:
    container = ray_container(
        "w",
        image="my/ray:1",
        imagePullPolicy="Always",
        securityContext={"runAsUser": 1000},
        env=[{"name": "RAY_USE_TLS", "value": "1"}],
        envFrom=[{"configMapRef": {"name": "tls"}}],
        volumeMounts=[{"name": "certs", "mountPath": "/certs"}],
    )
    group = worker(container=container)
    group["template"]["spec"]["volumes"] = [{"name": "certs", "secret": {"secretName": "certs"}}]
    pod = build_worker_pod(cluster(head={"rayStartParams": {"port": "7000"}}, workers=[group]), 0)
    (init,) = pod["spec"]["initContainers"]
    assert init["name"] == "wait-gcs-ready"
    assert (init["image"], init["imagePullPolicy"]) == ("my/ray:1", "Always")
    assert init["securityContext"] == {"runAsUser": 1000}
    assert init["envFrom"] == [{"configMapRef": {"name": "tls"}}]
    assert init["volumeMounts"] == [{"name": "certs", "mountPath": "/certs"}]
    assert env_map(init) == {"RAY_USE_TLS": "1", "FQ_RAY_IP": FQDN, "RAY_IP": "demo-head-svc"}
    assert init["resources"] == {
        "requests": {"cpu": "200m", "memory": "256Mi"},
        "limits": {"cpu": "200m", "memory": "256Mi"},
    }
    assert init["command"] == ["/bin/bash", "-c", "--"]
    assert f"ray health-check --address {FQDN}:7000" in init["args"][0]
    assert "RAY_ADDRESS" not in env_map(init)  # copied before our env injection


def test_head_has_no_wait_container() -> None:
    assert "initContainers" not in build_head_pod(cluster())["spec"]


def test_user_init_containers_run_first_and_learn_the_head_address() -> None:
    group = worker()
    group["template"]["spec"]["initContainers"] = [{"name": "setup", "image": "busybox"}]
    inits = build_worker_pod(cluster(workers=[group]), 0)["spec"]["initContainers"]
    assert [i["name"] for i in inits] == ["setup", "wait-gcs-ready"]
    assert env_map(inits[0])["FQ_RAY_IP"] == FQDN


def test_user_wait_container_replaces_ours() -> None:
    group = worker()
    group["template"]["spec"]["initContainers"] = [{"name": "wait-gcs-ready", "image": "mine"}]
    inits = build_worker_pod(cluster(workers=[group]), 0)["spec"]["initContainers"]
    assert len(inits) == 1 and inits[0]["image"] == "mine"


# -- autoscaling, v2 and fault tolerance -----------------------------------------------------


def test_head_with_autoscaling_gets_sidecar_and_service_account() -> None:
    pod = build_head_pod(cluster(enableInTreeAutoscaling=True))
    assert [x["name"] for x in pod["spec"]["containers"]] == ["ray-head", "autoscaler"]
    assert pod["spec"]["serviceAccountName"] == "demo"
    assert "--no-monitor" in ray_of(pod)["args"][0]


def test_user_service_account_is_kept() -> None:
    body = cluster(
        enableInTreeAutoscaling=True,
        head={
            "template": {"spec": {"serviceAccountName": "mine", "containers": [ray_container()]}}
        },
    )
    assert build_head_pod(body)["spec"]["serviceAccountName"] == "mine"


def test_no_autoscaling_no_sidecar_no_service_account() -> None:
    pod = build_head_pod(cluster())
    assert len(pod["spec"]["containers"]) == 1
    assert "serviceAccountName" not in pod["spec"]


def test_container_named_autoscaler_clashes_with_the_sidecar() -> None:
    containers = [ray_container("ray-head"), {"name": "autoscaler", "image": IMAGE}]
    body = cluster(
        enableInTreeAutoscaling=True, head={"template": {"spec": {"containers": containers}}}
    )
    with pytest.raises(InvalidSpecError) as err:
        build_head_pod(body)
    assert err.value.field == "spec.headGroupSpec.template.spec.containers[1].name"


def test_autoscaler_v2_sets_restart_policy_and_env_on_all_ray_pods() -> None:
    body = cluster(enableInTreeAutoscaling=True, autoscalerOptions={"version": "v2"})
    for pod in (build_head_pod(body), build_worker_pod(body, 0)):
        assert pod["spec"]["restartPolicy"] == "Never"
        assert env_map(ray_of(pod))["RAY_enable_autoscaler_v2"] == "1"


@pytest.mark.parametrize(
    "spec",
    [
        {"autoscalerOptions": {"version": "v2"}},
        {"enableInTreeAutoscaling": True, "autoscalerOptions": {"version": "v1"}},
        {"enableInTreeAutoscaling": True},
    ],
)
def test_v2_switches_need_autoscaling_and_v2(spec: dict[str, Any]) -> None:
    pod = build_worker_pod(cluster(**spec), 0)
    assert "restartPolicy" not in pod["spec"]
    assert "RAY_enable_autoscaler_v2" not in env_map(ray_of(pod))


def test_gcs_fault_tolerance_on_the_head() -> None:
    body = cluster(
        gcsFaultToleranceOptions={
            "redisAddress": "redis:6379",
            "redisPassword": {"valueFrom": SECRET},
            "redisUsername": {"value": "ray-user"},
        }
    )
    pod = build_head_pod(body)
    ray = ray_of(pod)
    env = env_map(ray)
    assert env["RAY_REDIS_ADDRESS"] == "redis:6379"
    assert env["REDIS_PASSWORD"] == SECRET
    assert env["REDIS_USERNAME"] == "ray-user"
    assert env["RAY_external_storage_namespace"] == "uid-1234"
    password = next(e for e in ray["env"] if e["name"] == "REDIS_PASSWORD")
    assert "value" not in password  # a reference only: never both
    assert pod["metadata"]["annotations"]["ray.io/ft-enabled"] == "true"
    assert pod["metadata"]["annotations"]["ray.io/external-storage-namespace"] == "uid-1234"


def test_plain_redis_password_never_appears_in_the_command() -> None:
    body = cluster(
        gcsFaultToleranceOptions={
            "redisAddress": "redis:6379",
            "redisPassword": {"value": "hunter2"},
        }
    )
    ray = ray_of(build_head_pod(body))
    assert "hunter2" not in ray["args"][0]
    assert "hunter2" not in env_map(ray)["KUBERAY_GEN_RAY_START_CMD"]
    assert env_map(ray)["REDIS_PASSWORD"] == "hunter2"


def test_external_storage_namespace_option_and_legacy_annotation() -> None:
    body = cluster(
        gcsFaultToleranceOptions={"redisAddress": "r:1", "externalStorageNamespace": "shared"}
    )
    assert env_map(ray_of(build_head_pod(body)))["RAY_external_storage_namespace"] == "shared"
    legacy = cluster(
        annotations={"ray.io/ft-enabled": "true", "ray.io/external-storage-namespace": "old"}
    )
    pod = build_head_pod(legacy)
    assert env_map(ray_of(pod))["RAY_external_storage_namespace"] == "old"
    assert "RAY_REDIS_ADDRESS" not in env_map(ray_of(pod))  # the user sets it in that style


def test_gcs_fault_tolerance_on_workers() -> None:
    body = cluster(gcsFaultToleranceOptions={"redisAddress": "redis:6379"})
    pod = build_worker_pod(body, 0)
    env = env_map(ray_of(pod))
    assert env["RAY_gcs_rpc_server_reconnect_timeout_s"] == "600"
    assert "RAY_REDIS_ADDRESS" not in env
    assert "ray.io/ft-enabled" not in pod["metadata"]["annotations"]


def test_without_fault_tolerance_the_head_says_so() -> None:
    pod = build_head_pod(cluster())
    assert pod["metadata"]["annotations"]["ray.io/ft-enabled"] == "false"
    assert "RAY_REDIS_ADDRESS" not in env_map(ray_of(pod))
