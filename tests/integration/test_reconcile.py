"""The operator, as a separate process, reconciling RayClusters on the real control
plane (kwok makes pods Running/Ready)."""

from __future__ import annotations

from kubernetes import client
from kubernetes.client.rest import ApiException

from ray_operator import constants as c
from tests.kubehelpers import wait_for
from tests.manifests import heterogeneous, raycluster, worker_group


def _condition(body: dict, type_: str) -> dict | None:
    return next((x for x in body["status"].get("conditions", []) if x["type"] == type_), None)


def _env(container: client.V1Container) -> dict[str, str | None]:
    return {e.name: e.value for e in container.env or []}


def test_heterogeneous_cluster_becomes_ready(clusters, namespace, run_operator):
    run_operator(namespace)
    created = clusters.create(heterogeneous("hetero", cpu_workers=2, gpu_workers=1))
    body = clusters.wait_state("hetero")
    pods = clusters.pods("hetero")
    assert len(pods) == 4

    head = next(p for p in pods if p.metadata.labels[c.LABEL_NODE_TYPE] == "head")
    assert head.metadata.labels[c.LABEL_GROUP] == c.HEAD_GROUP
    assert head.metadata.labels[c.LABEL_IDENTIFIER] == "hetero-head"
    assert head.metadata.owner_references[0].uid == created["metadata"]["uid"]
    assert head.metadata.owner_references[0].controller is True
    head_cmd = " ".join(head.spec.containers[0].args or head.spec.containers[0].command)
    assert "ray start --head" in head_cmd
    assert "--num-cpus=2" in head_cmd
    assert _env(head.spec.containers[0])["RAY_CLUSTER_NAME"] == "hetero"

    gpu = clusters.pods("hetero", "gpu")
    assert len(gpu) == 1
    assert gpu[0].spec.node_name.startswith("kwok-gpu")
    gpu_cmd = " ".join(gpu[0].spec.containers[0].args or gpu[0].spec.containers[0].command)
    assert "--num-gpus=1" in gpu_cmd
    assert "--address=hetero-head-svc." in gpu_cmd
    assert _env(gpu[0].spec.containers[0])["RAY_NODE_TYPE_NAME"] == "gpu"
    assert len(clusters.pods("hetero", "cpu")) == 2

    status = body["status"]
    assert status["desiredWorkerReplicas"] == 3
    assert status["readyWorkerReplicas"] == 3
    assert status["availableWorkerReplicas"] == 3
    assert status["desiredCPU"] == "18"  # 2 head + 2 x 4 + 8
    assert status["desiredGPU"] == "1"
    assert status["desiredMemory"] == "52Gi"
    assert status["observedGeneration"] == created["metadata"]["generation"]
    assert status["head"]["podName"] == head.metadata.name
    assert status["head"]["serviceName"] == "hetero-head-svc"
    assert status["head"]["podIP"].startswith("127.")
    assert status["endpoints"]["gcs-server"] == "6379"
    assert _condition(body, c.COND_HEAD_POD_READY)["status"] == "True"
    assert _condition(body, c.COND_PROVISIONED)["status"] == "True"
    assert _condition(body, c.COND_REPLICA_FAILURE) is None

    svc = clusters.core.read_namespaced_service("hetero-head-svc", namespace)
    assert svc.spec.cluster_ip == "None"
    assert svc.metadata.owner_references[0].uid == created["metadata"]["uid"]
    # One Normal event per group and pass, naming the pods it created.
    events = clusters.events("hetero")
    created = " ".join(e.message for e in events if e.reason == "CreatedWorkerPod")
    workers = [p.metadata.name for p in pods if p.metadata.labels[c.LABEL_NODE_TYPE] == "worker"]
    assert len(workers) == 3
    assert all(name in created for name in workers)
    assert "(group gpu)" in created and "(group cpu)" in created
    assert [e.message for e in events if e.reason == "CreatedHeadPod"] == [
        f"Created head pod {head.metadata.name}"
    ]


LISTED = 'ray_operator_pod_observations_total{source="list"}'
FROM_CACHE = 'ray_operator_pod_observations_total{source="cache"}'


def test_scale_up_and_down_by_replicas(clusters, namespace, run_operator):
    op = run_operator(namespace)
    clusters.create(raycluster("scale", worker_group("cpu", 2)))
    clusters.wait_pods("scale", 2, "cpu")
    clusters.patch(
        "scale", [{"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 5}]
    )
    clusters.wait_pods("scale", 5, "cpu")
    body = clusters.wait_state("scale")
    assert body["status"]["desiredWorkerReplicas"] == 5
    clusters.patch(
        "scale", [{"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 1}]
    )
    clusters.wait_pods("scale", 1, "cpu")
    body = wait_for(
        lambda: (b := clusters.get("scale"))["status"]["readyWorkerReplicas"] == 1 and b
    )
    assert body["status"]["desiredWorkerReplicas"] == 1
    # replicas above maxReplicas is clamped
    clusters.patch(
        "scale",
        [
            {"op": "replace", "path": "/spec/workerGroupSpecs/0/maxReplicas", "value": 3},
            {"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 10},
        ],
    )
    clusters.wait_pods("scale", 3, "cpu")
    clusters.settle("scale")
    assert len(clusters.pods("scale", "cpu")) == 3
    # Every pass planned from the watch-fed pod cache: none had to list the pods.
    assert op.metric(LISTED) == 0 and op.metric(FROM_CACHE) >= 4


def test_workers_to_delete_removes_exactly_those_pods(clusters, namespace, run_operator):
    run_operator(namespace)
    clusters.create(raycluster("wtd", worker_group("cpu", 4), enableInTreeAutoscaling=True))
    pods = clusters.wait_pods("wtd", 4, "cpu")
    victims = sorted(p.metadata.name for p in pods)[:2]
    survivors = sorted(p.metadata.name for p in pods)[2:]
    # exactly what Ray's autoscaler sends: one JSON patch, replicas down + the list
    clusters.scale_as_autoscaler("wtd", 0, 2, victims)
    remaining = clusters.wait_pods("wtd", 2, "cpu")
    assert sorted(p.metadata.name for p in remaining) == survivors
    clusters.settle("wtd")  # nothing is recreated while the names stay listed
    assert sorted(p.metadata.name for p in clusters.pods("wtd", "cpu")) == survivors
    spec = clusters.get("wtd")["spec"]["workerGroupSpecs"][0]
    assert spec["scaleStrategy"]["workersToDelete"] == victims  # never edited by us


def test_surplus_is_left_to_the_autoscaler(clusters, namespace, run_operator):
    run_operator(namespace)
    clusters.create(raycluster("auto", worker_group("cpu", 3), enableInTreeAutoscaling=True))
    clusters.wait_pods("auto", 3, "cpu")
    clusters.patch(
        "auto", [{"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 1}]
    )
    clusters.settle("auto")
    assert len(clusters.pods("auto", "cpu")) == 3


def test_pod_deleted_by_hand_comes_back(clusters, namespace, run_operator):
    run_operator(namespace)
    clusters.create(raycluster("handdel", worker_group("cpu", 2)))
    clusters.wait_state("handdel")
    pods = clusters.pods("handdel")
    head = next(p for p in pods if p.metadata.labels[c.LABEL_NODE_TYPE] == "head")
    worker = next(p for p in pods if p.metadata.labels[c.LABEL_NODE_TYPE] == "worker")
    clusters.core.delete_namespaced_pod(head.metadata.name, namespace)
    clusters.core.delete_namespaced_pod(worker.metadata.name, namespace)

    def replaced():
        names = {p.metadata.name for p in clusters.pods("handdel")}
        return len(names) == 3 and not names & {head.metadata.name, worker.metadata.name}

    wait_for(replaced, what="head and worker replaced")
    clusters.wait_state("handdel")


def test_failed_pod_is_replaced(clusters, namespace, run_operator):
    run_operator(namespace)
    clusters.create(raycluster("failing", worker_group("cpu", 1)))
    clusters.wait_state("failing")
    worker = clusters.pods("failing", "cpu")[0]
    clusters.core.patch_namespaced_pod_status(
        worker.metadata.name,
        namespace,
        {"status": {"phase": "Failed", "conditions": [{"type": "Ready", "status": "False"}]}},
    )

    def replaced():
        pods = clusters.pods("failing", "cpu")
        return len(pods) == 1 and pods[0].metadata.name != worker.metadata.name

    wait_for(replaced, what="the failed worker replaced")
    clusters.wait_state("failing")


def test_suspend_and_resume(clusters, namespace, run_operator):
    run_operator(namespace)
    clusters.create(raycluster("sus", worker_group("cpu", 2), worker_group("small", 1)))
    clusters.wait_state("sus")
    clusters.patch(
        "sus",
        {
            "spec": {
                "workerGroupSpecs": [worker_group("cpu", 2), worker_group("small", 1, suspend=True)]
            }
        },
    )
    clusters.wait_pods("sus", 0, "small")
    body = clusters.wait_state("sus")
    assert body["status"]["desiredWorkerReplicas"] == 2

    clusters.patch("sus", {"spec": {"suspend": True}})
    clusters.wait_pods("sus", 0)
    body = clusters.wait_state("sus", c.STATE_SUSPENDED)
    assert _condition(body, c.COND_SUSPENDED)["status"] == "True"
    assert body["status"]["desiredWorkerReplicas"] == 0

    clusters.patch("sus", {"spec": {"suspend": False}})
    body = clusters.wait_state("sus")
    assert len(clusters.pods("sus", "cpu")) == 2
    assert _condition(body, c.COND_SUSPENDED) is None


def test_other_manager_is_left_alone(clusters, namespace, run_operator):
    run_operator(namespace)
    clusters.create(raycluster("kueue", worker_group("cpu", 1), managedBy=c.MANAGED_BY_MULTIKUEUE))
    clusters.create(raycluster("ours", worker_group("cpu", 1)))
    clusters.wait_state("ours")
    assert clusters.pods("kueue") == []
    assert "status" not in clusters.get("kueue") or not clusters.get("kueue")["status"]


def test_two_clusters_with_same_group_names_stay_separate(clusters, namespace, run_operator):
    run_operator(namespace)
    clusters.create(raycluster("alpha", worker_group("cpu", 2)))
    clusters.create(raycluster("beta", worker_group("cpu", 3)))
    clusters.wait_state("alpha")
    clusters.wait_state("beta")
    alpha, beta = clusters.pods("alpha", "cpu"), clusters.pods("beta", "cpu")
    assert len(alpha) == 2 and len(beta) == 3
    # workersToDelete naming a pod of the other cluster touches nothing there
    clusters.patch(
        "alpha",
        [
            {
                "op": "replace",
                "path": "/spec/workerGroupSpecs/0/scaleStrategy",
                "value": {"workersToDelete": [beta[0].metadata.name]},
            }
        ],
    )
    clusters.settle("beta")
    clusters.settle("alpha")
    assert len(clusters.pods("beta", "cpu")) == 3
    assert len(clusters.pods("alpha", "cpu")) == 2


def test_deleting_the_cluster_collects_children_even_without_operator(
    clusters, namespace, run_operator
):
    op = run_operator(namespace)
    clusters.create(raycluster("gc", worker_group("cpu", 2)))
    clusters.wait_state("gc")
    op.stop()
    clusters.delete("gc")
    wait_for(lambda: clusters.pods("gc", alive=False) == [], what="pods garbage-collected")

    def service_gone() -> bool:
        try:
            clusters.core.read_namespaced_service("gc-head-svc", namespace)
            return False
        except ApiException as err:
            return err.status == 404

    wait_for(service_gone, what="head service garbage-collected")


def test_crash_while_creating_200_workers_leaves_exactly_the_desired_pods(
    clusters, namespace, run_operator
):
    op = run_operator(namespace)
    clusters.create(raycluster("crash", worker_group("big", 150), worker_group("small", 50)))
    wait_for(
        lambda: len(clusters.pods("crash")) >= 40,
        timeout=60,
        interval=0.05,
        what="creation under way",
    )
    op.kill()
    mid = len(clusters.pods("crash"))
    run_operator(namespace)
    clusters.wait_state("crash", timeout=180)
    assert len(clusters.pods("crash", "big")) == 150
    assert len(clusters.pods("crash", "small")) == 50
    assert (
        len([p for p in clusters.pods("crash") if p.metadata.labels[c.LABEL_NODE_TYPE] == "head"])
        == 1
    )
    clusters.settle("crash")
    assert len(clusters.pods("crash")) == 201, f"killed with {mid} pods"
    for pod in clusters.pods("crash"):
        assert pod.metadata.owner_references[0].name == "crash"


def test_no_write_when_nothing_changed(clusters, namespace, run_operator):
    op = run_operator(namespace)
    clusters.create(raycluster("quiet", worker_group("cpu", 2)))
    clusters.wait_state("quiet")
    clusters.settle("quiet")
    before = clusters.get("quiet")["metadata"]["resourceVersion"]
    events_before = len(clusters.events("quiet"))
    # a restart replays every object as an event: a full resync
    op.stop()
    restarted = run_operator(namespace)
    wait_for(
        lambda: (
            restarted.metric("ray_operator_reconcile_duration_seconds_count") >= 1
            and restarted.metric("ray_operator_queue_depth") == 0
        ),
        what="the restarted operator's passes done",
    )
    assert clusters.get("quiet")["metadata"]["resourceVersion"] == before
    assert len(clusters.events("quiet")) == events_before
    # The restarted passes waited for the pod watch's first list instead of listing.
    assert restarted.metric(LISTED) == 0 and restarted.metric(FROM_CACHE) >= 1


def test_own_status_write_wakes_no_pass_but_a_foreign_one_does(clusters, namespace, run_operator):
    op = run_operator(namespace)
    clusters.create(raycluster("own", worker_group("cpu", 1)))
    clusters.wait_state("own")
    clusters.settle("own")
    before = op.metric("ray_operator_reconcile_total")
    # Another client writes the status: one pass puts it right, and the watch event of
    # that (own) write starts no pass of its own.
    clusters.custom.patch_namespaced_custom_object_status(
        c.GROUP, c.VERSION, namespace, c.PLURAL, "own", {"status": {"desiredWorkerReplicas": 7}}
    )
    wait_for(
        lambda: clusters.get("own")["status"]["desiredWorkerReplicas"] == 1,
        what="the status put right",
    )
    clusters.settle("own")  # exactly one more pass, whose own status write starts none
    assert op.metric("ray_operator_reconcile_total") == before + 2


def test_upgrade_strategy_recreate_replaces_outdated_pods(clusters, namespace, run_operator):
    run_operator(namespace)
    clusters.create(raycluster("upg", worker_group("cpu", 2)))
    clusters.wait_state("upg")
    before = {p.metadata.name for p in clusters.pods("upg", "cpu")}
    env = [{"name": "STAGE", "value": "two"}]
    path = "/spec/workerGroupSpecs/0/template/spec/containers/0/env"
    clusters.patch("upg", [{"op": "add", "path": path, "value": env}])
    clusters.settle("upg")  # without a strategy, running pods are left alone
    assert {p.metadata.name for p in clusters.pods("upg", "cpu")} == before
    clusters.patch("upg", {"spec": {"upgradeStrategy": {"type": "Recreate"}}})

    def replaced():
        pods = clusters.pods("upg", "cpu")
        names = {p.metadata.name for p in pods}
        return pods if len(pods) == 2 and not names & before else None

    pods = wait_for(replaced, what="outdated workers replaced")
    assert all(_env(p.spec.containers[0]).get("STAGE") == "two" for p in pods)
    clusters.wait_state("upg")


def test_liveness_and_metrics_endpoints(clusters, namespace, run_operator):
    import urllib.request

    op = run_operator(namespace)
    clusters.create(raycluster("observed", worker_group("cpu", 2)))
    clusters.wait_state("observed")

    def get(port: int, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            assert resp.status == 200
            return resp.read().decode()

    assert get(op.liveness_port, "/healthz")

    def counted() -> str | None:
        text = get(op.metrics_port, "/metrics")
        return text if 'ray_operator_rayclusters{state="ready"} 1.0' in text else None

    text = wait_for(counted, what="metrics to show one ready cluster")
    assert 'ray_operator_pods_created_total{node_type="worker"} 2.0' in text
    assert 'ray_operator_pods_created_total{node_type="head"} 1.0' in text
    assert "ray_operator_reconcile_total" in text
    assert "ray_operator_reconcile_duration_seconds_bucket" in text
    assert "ray_operator_reconcile_errors_total 0.0" in text
