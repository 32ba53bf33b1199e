"""Bad input around in-tree autoscaling: each gives a clear condition or Warning event
naming the field, and nothing else breaks (the operator as a separate process, on the
local control plane)."""

from __future__ import annotations

from kubernetes import client

from ray_operator import constants as c
from tests.clusters import Clusters
from tests.kubehelpers import wait_for
from tests.manifests import raycluster, worker_group

ON = {"enableInTreeAutoscaling": True}


def _condition(body: dict, type_: str) -> dict | None:
    return next(
        (x for x in body.get("status", {}).get("conditions", []) if x["type"] == type_), None
    )


def _failure(clusters: Clusters, name: str) -> dict | None:
    return _condition(clusters.get(name), c.COND_REPLICA_FAILURE)


def _warnings(clusters: Clusters, name: str, reason: str) -> list[client.CoreV1Event]:
    return [e for e in clusters.events(name) if e.type == "Warning" and e.reason == reason]


def _wait_warning(clusters: Clusters, name: str, reason: str) -> client.CoreV1Event:
    return wait_for(lambda: _warnings(clusters, name, reason), what=f"Warning {reason}")[0]


def test_group_without_cpu_information(clusters, namespace, run_operator):
    run_operator(namespace)
    group = worker_group("nocpu", 2)
    group["template"]["spec"]["containers"][0]["resources"] = {"limits": {"memory": "1Gi"}}
    clusters.create(raycluster("nocpu", group, worker_group("ok", 1), **ON))
    field = "spec.workerGroupSpecs[0].template.spec.containers[0].resources"
    event = _wait_warning(clusters, "nocpu", "AutoscalerCannotDeriveCPU")
    assert event.message.startswith(f"{field}: Ray's autoscaler cannot tell how many CPUs")
    failure = wait_for(lambda: _failure(clusters, "nocpu"), what="ReplicaFailure")
    assert failure["status"] == "True" and failure["reason"] == "AutoscalerCannotDeriveCPU"
    assert field in failure["message"]
    # Nothing else breaks: every pod is created and runs.
    clusters.wait_pods("nocpu", 2, "nocpu")
    clusters.wait_pods("nocpu", 1, "ok")
    body = clusters.wait_state("nocpu")
    assert _condition(body, c.COND_HEAD_POD_READY)["status"] == "True"
    clusters.settle("nocpu")  # one event, not one per pass
    assert len(_warnings(clusters, "nocpu", "AutoscalerCannotDeriveCPU")) == 1
    # Fixed: the condition goes away.
    clusters.patch(
        "nocpu",
        {
            "spec": {
                "workerGroupSpecs": [
                    {**group, "rayStartParams": {"num-cpus": "1"}},
                    worker_group("ok", 1),
                ]
            }
        },
    )
    wait_for(lambda: _failure(clusters, "nocpu") is None, what="ReplicaFailure cleared")


def test_workers_to_delete_naming_another_group_or_cluster(clusters, namespace, run_operator):
    run_operator(namespace)
    clusters.create(
        raycluster("one", worker_group("cpu", 2), worker_group("gpu", 1, gpu="1"), **ON)
    )
    clusters.create(raycluster("two", worker_group("cpu", 1), **ON))
    cpu = clusters.wait_pods("one", 2, "cpu")
    (gpu,) = clusters.wait_pods("one", 1, "gpu")
    (other,) = clusters.wait_pods("two", 1, "cpu")
    names = [gpu.metadata.name, other.metadata.name]
    clusters.patch(
        "one",
        [
            {
                "op": "replace",
                "path": "/spec/workerGroupSpecs/0/scaleStrategy",
                "value": {"workersToDelete": names},
            }
        ],
    )
    event = _wait_warning(clusters, "one", "InvalidWorkersToDelete")
    assert event.message.startswith("spec.workerGroupSpecs[0].scaleStrategy.workersToDelete: ")
    assert gpu.metadata.name in event.message and "'gpu'" in event.message
    failure = _failure(clusters, "one")
    assert failure["reason"] == "InvalidWorkersToDelete"
    clusters.settle("one")
    # Nothing was deleted or created anywhere; the list is left as written.
    assert {p.metadata.name for p in clusters.pods("one", "cpu")} == {p.metadata.name for p in cpu}
    assert [p.metadata.name for p in clusters.pods("one", "gpu")] == [gpu.metadata.name]
    assert [p.metadata.name for p in clusters.pods("two", "cpu")] == [other.metadata.name]
    spec = clusters.get("one")["spec"]["workerGroupSpecs"][0]
    assert spec["scaleStrategy"]["workersToDelete"] == names
    assert _warnings(clusters, "two", "InvalidWorkersToDelete") == []


def test_max_replicas_below_current_pods(clusters, namespace, run_operator):
    run_operator(namespace)
    clusters.create(raycluster("over", worker_group("cpu", 3), worker_group("other", 1), **ON))
    pods = clusters.wait_pods("over", 3, "cpu")
    clusters.wait_state("over")
    clusters.patch(
        "over", [{"op": "replace", "path": "/spec/workerGroupSpecs/0/maxReplicas", "value": 1}]
    )
    event = _wait_warning(clusters, "over", "PodsAboveMaxReplicas")
    assert event.message.startswith("spec.workerGroupSpecs[0].maxReplicas: group 'cpu' has 3 pods")
    assert _failure(clusters, "over")["reason"] == "PodsAboveMaxReplicas"
    # The operator picks no victims; the other group is untouched; the cluster stays up.
    clusters.settle("over")
    assert len(clusters.pods("over", "cpu")) == 3
    assert len(clusters.pods("over", "other")) == 1
    body = clusters.get("over")
    assert body["status"]["state"] == c.STATE_READY
    assert body["status"]["desiredWorkerReplicas"] == 2  # clamped: 1 cpu + 1 other
    # What Ray's autoscaler then does (see test_autoscaler_loop for the real one): list
    # the surplus. The operator deletes exactly those pods and the condition clears.
    victims = sorted(p.metadata.name for p in pods)[:2]
    clusters.scale_as_autoscaler("over", 0, 1, victims)
    (kept,) = clusters.wait_pods("over", 1, "cpu")
    assert kept.metadata.name not in victims
    wait_for(lambda: _failure(clusters, "over") is None, what="ReplicaFailure cleared")
    assert len(_warnings(clusters, "over", "PodsAboveMaxReplicas")) == 1


def test_autoscaler_image_that_cannot_be_pulled(clusters, namespace, run_operator):
    """Emulated: there is no container runtime here (kwok only writes pod status), so the
    head pod's status is patched to what a kubelet reports when the sidecar's image
    cannot be pulled (the container waiting in ImagePullBackOff, the pod not Ready)."""
    run_operator(namespace)
    body = raycluster(
        "pull", worker_group("cpu", 1), autoscalerOptions={"image": "nowhere/ray:missing"}, **ON
    )
    clusters.create(body)
    clusters.wait_state("pull")
    (head,) = clusters.pods("pull", c.HEAD_GROUP)
    (worker,) = clusters.pods("pull", "cpu")
    sidecar = next(x for x in head.spec.containers if x.name == c.AUTOSCALER_CONTAINER_NAME)
    assert sidecar.image == "nowhere/ray:missing"
    message = 'Back-off pulling image "nowhere/ray:missing"'
    not_ready = {"status": "False", "reason": "ContainersNotReady"}
    clusters.core.patch_namespaced_pod_status(
        head.metadata.name,
        namespace,
        {
            "status": {
                "conditions": [
                    {
                        "type": "Ready",
                        **not_ready,
                        "message": "containers with unready status: [autoscaler]",
                    },
                    {"type": "ContainersReady", **not_ready},
                ],
                "containerStatuses": [
                    {
                        "name": head.spec.containers[0].name,
                        "image": head.spec.containers[0].image,
                        "imageID": "",
                        "ready": True,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
                    },
                    {
                        "name": c.AUTOSCALER_CONTAINER_NAME,
                        "image": sidecar.image,
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "state": {"waiting": {"reason": "ImagePullBackOff", "message": message}},
                    },
                ],
            }
        },
    )

    def head_not_ready() -> dict | None:
        found = clusters.get("pull")
        cond = _condition(found, c.COND_HEAD_POD_READY)
        return found if cond and cond["status"] == "False" else None

    found = wait_for(head_not_ready, what="HeadPodReady False")
    cond = _condition(found, c.COND_HEAD_POD_READY)
    assert cond["reason"] == "HeadPodNotReady"
    assert head.metadata.name in cond["message"]
    assert "autoscaler: ImagePullBackOff" in cond["message"]  # says what to fix
    assert found["status"].get("state") != c.STATE_READY
    # Nothing else breaks: the head pod is not replaced (a pull error is the kubelet's
    # to retry), the worker keeps running, Provisioned stays True.
    clusters.settle("pull")
    assert [p.metadata.name for p in clusters.pods("pull", c.HEAD_GROUP)] == [head.metadata.name]
    assert [p.metadata.name for p in clusters.pods("pull", "cpu")] == [worker.metadata.name]
    assert _condition(clusters.get("pull"), c.COND_PROVISIONED)["status"] == "True"
    # The image arrives: Ready again.
    clusters.core.patch_namespaced_pod_status(
        head.metadata.name,
        namespace,
        {
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True"},
                    {"type": "ContainersReady", "status": "True"},
                ]
            }
        },
    )
    clusters.wait_state("pull")


def test_user_named_head_service_account_that_does_not_exist(clusters, namespace, run_operator):
    run_operator(namespace)
    body = raycluster("mine", worker_group("cpu", 1), **ON)
    body["spec"]["headGroupSpec"]["template"]["spec"]["serviceAccountName"] = "ray-autoscaler"
    clusters.create(body)
    event = _wait_warning(clusters, "mine", "ServiceAccountNotFound")
    field = "spec.headGroupSpec.template.spec.serviceAccountName"
    assert event.message.startswith(f"{field}: service account 'ray-autoscaler' does not exist")
    assert _failure(clusters, "mine")["status"] == "True"
    # The API server refuses the head pod meanwhile; the operator creates no RBAC of
    # its own for a user-named account. Workers are created anyway.
    _wait_warning(clusters, "mine", "FailedCreateHeadPod")
    assert clusters.pods("mine", c.HEAD_GROUP) == []
    clusters.wait_pods("mine", 1, "cpu")
    accounts = clusters.core.list_namespaced_service_account(namespace).items
    assert "mine" not in {a.metadata.name for a in accounts}
    clusters.settle("mine")  # more passes later: still one Warning for the problem
    clusters.settle("mine")
    assert len(_warnings(clusters, "mine", "ServiceAccountNotFound")) == 1
    # The account is created: the head follows, and the condition clears.
    clusters.core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="ray-autoscaler"))
    )
    (head,) = clusters.wait_pods("mine", 1, c.HEAD_GROUP, timeout=30)
    assert head.spec.service_account_name == "ray-autoscaler"
    clusters.wait_state("mine")
    assert _failure(clusters, "mine") is None
