"""The status calculation (docs/behaviour.md, Status), from observed pods; no cluster needed."""

from __future__ import annotations

from ray_operator import constants as c
from ray_operator.model import Failure, Problem
from ray_operator.observed import Observed, ObservedPod, ObservedService
from ray_operator.status import compute_status, status_changed
from tests.manifests import raycluster, worker_group
from tests.observed_pods import head, pod

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"
HEADLESS = ObservedService("rc-head-svc", "None", (("gcs-server", 6379), ("dashboard", 8265)))


def body(*groups, **spec):
    b = raycluster("rc", *groups, **spec)
    b["metadata"].update({"namespace": "ns", "uid": "u", "generation": 4})
    return b


def cond(status: dict, type_: str) -> dict | None:
    return next((x for x in status["conditions"] if x["type"] == type_), None)


def hetero():
    return body(
        worker_group("cpu", 2, cpu="4", memory="8Gi"),
        worker_group("gpu", 1, cpu="8", memory="32Gi", gpu="2"),
    )


def test_ready_cluster_status_numbers():
    observed = Observed((head(), pod("a"), pod("b"), pod("g", group="gpu")), HEADLESS)
    s = compute_status(hetero(), observed, None, now=T0)
    assert s["state"] == c.STATE_READY
    assert s["observedGeneration"] == 4
    assert (s["desiredWorkerReplicas"], s["readyWorkerReplicas"], s["availableWorkerReplicas"]) == (
        3,
        3,
        3,
    )
    assert (s["minWorkerReplicas"], s["maxWorkerReplicas"]) == (0, 2000)
    assert (s["desiredCPU"], s["desiredMemory"], s["desiredGPU"], s["desiredTPU"]) == (
        "18",
        "52Gi",
        "2",
        "0",
    )
    assert s["endpoints"] == {"gcs-server": "6379", "dashboard": "8265"}
    assert s["head"] == {
        "podName": "rc-head-x",
        "podIP": "127.64.0.1",
        "serviceName": "rc-head-svc",
        "serviceIP": "127.64.0.1",
    }
    assert cond(s, c.COND_HEAD_POD_READY)["status"] == "True"
    assert cond(s, c.COND_PROVISIONED)["status"] == "True"
    assert cond(s, c.COND_REPLICA_FAILURE) is None
    assert s["stateTransitionTimes"] == {"ready": T0}
    assert s["lastUpdateTime"] == T0


def test_cluster_ip_service_reports_its_ip():
    svc = ObservedService("rc-head-svc", "10.96.0.12", (("client", 10001),))
    s = compute_status(body(), Observed((head(),), svc), None, now=T0)
    assert s["head"]["serviceIP"] == "10.96.0.12"


def test_never_ready_while_a_pod_is_pending():
    observed = Observed((head(), pod("a"), pod("b", phase="Pending", ready=False)), HEADLESS)
    s = compute_status(body(worker_group("cpu", 2)), observed, None, now=T0)
    assert "state" not in s
    assert s["readyWorkerReplicas"] == 1 and s["availableWorkerReplicas"] == 1
    assert cond(s, c.COND_PROVISIONED)["status"] == "False"


def test_not_ready_while_pods_are_missing_or_head_unready():
    s = compute_status(body(worker_group("cpu", 2)), Observed((head(), pod("a")), HEADLESS), None)
    assert "state" not in s
    s = compute_status(body(), Observed((head(ready=False),), HEADLESS), None)
    assert cond(s, c.COND_HEAD_POD_READY)["reason"] == "HeadPodNotReady"
    s = compute_status(body(), Observed((), None), None)
    assert cond(s, c.COND_HEAD_POD_READY)["reason"] == "HeadPodNotFound"


def test_provisioned_stays_true_once_reached():
    cluster = body(worker_group("cpu", 1))
    first = compute_status(cluster, Observed((head(), pod("a")), HEADLESS), None, now=T0)
    later = compute_status(cluster, Observed((head(),), HEADLESS), first, now=T1)
    assert "state" not in later
    assert cond(later, c.COND_PROVISIONED)["status"] == "True"
    assert cond(later, c.COND_PROVISIONED)["lastTransitionTime"] == T0
    assert later["stateTransitionTimes"] == {"ready": T0}


def test_unchanged_status_keeps_last_update_time_so_no_write_is_needed():
    cluster = body(worker_group("cpu", 1))
    observed = Observed((head(), pod("a")), HEADLESS)
    first = compute_status(cluster, observed, None, now=T0)
    again = compute_status(cluster, observed, first, now=T1)
    assert again == first
    assert not status_changed(first, again)
    changed = compute_status(
        cluster, Observed((head(), pod("a", ready=False)), HEADLESS), first, now=T1
    )
    assert status_changed(first, changed)
    assert changed["lastUpdateTime"] == T1


def test_suspended_groups_and_clusters_count_zero():
    cluster = body(worker_group("cpu", 2), worker_group("off", 3, suspend=True))
    s = compute_status(cluster, Observed((head(), pod("a"), pod("b")), HEADLESS), None)
    assert s["desiredWorkerReplicas"] == 2
    assert s["state"] == c.STATE_READY

    suspended = body(worker_group("cpu", 2), suspend=True)
    s = compute_status(suspended, Observed((head(), pod("a")), HEADLESS), None, now=T0)
    assert "state" not in s
    assert cond(s, c.COND_SUSPENDING)["status"] == "True"
    assert cond(s, c.COND_SUSPENDED)["status"] == "False"
    s = compute_status(suspended, Observed((), HEADLESS), s, now=T1)
    assert s["state"] == c.STATE_SUSPENDED
    assert cond(s, c.COND_SUSPENDED)["status"] == "True"
    assert s["desiredWorkerReplicas"] == 0 and s["desiredCPU"] == "0"
    assert s["stateTransitionTimes"] == {"suspended": T1}


def test_multi_host_groups_multiply():
    cluster = body(worker_group("tpu", 2, numOfHosts=4, minReplicas=1, maxReplicas=3))
    s = compute_status(cluster, Observed((head(),), HEADLESS), None)
    assert (s["desiredWorkerReplicas"], s["minWorkerReplicas"], s["maxWorkerReplicas"]) == (
        8,
        4,
        12,
    )


def test_problems_and_failures_become_replica_failure():
    problem = Problem("InvalidWorkerGroupSpec", "spec.workerGroupSpecs[0].rayStartParams", "bad")
    failure = Failure("FailedCreateWorkerPod", "FailedCreateWorkerPod cpu: quota exceeded")
    s = compute_status(body(), Observed((head(),), HEADLESS), None, [problem], [failure], T0)
    rf = cond(s, c.COND_REPLICA_FAILURE)
    assert rf["status"] == "True" and rf["reason"] == "InvalidWorkerGroupSpec"
    assert "spec.workerGroupSpecs[0].rayStartParams: bad" in rf["message"]
    assert "quota exceeded" in rf["message"]
    assert s["reason"] == rf["message"]
    cleared = compute_status(body(), Observed((head(),), HEADLESS), s, now=T1)
    assert cond(cleared, c.COND_REPLICA_FAILURE) is None and "reason" not in cleared


def test_requests_fall_back_to_limits_per_key():
    cluster = body(worker_group("cpu", 2))
    container = cluster["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    container["resources"] = {
        "limits": {"cpu": "2", "memory": "1Gi", "google.com/tpu": "4"},
        "requests": {"cpu": "500m"},
    }
    s = compute_status(cluster, Observed((), None), None)
    assert s["desiredCPU"] == "3"  # head 2 + 2 x 500m
    assert s["desiredMemory"] == "6Gi"  # head 4Gi + 2 x 1Gi
    assert s["desiredTPU"] == "8"


def test_head_not_ready_names_the_waiting_container():
    waiting = ObservedPod.from_dict({
        "metadata": {"name": "rc-head-x", "labels": {c.LABEL_NODE_TYPE: "head",
                                                     c.LABEL_GROUP: c.HEAD_GROUP}},
        "status": {"phase": "Running", "containerStatuses": [
            {"name": "ray-head", "state": {"running": {}}},
            {"name": "autoscaler", "state": {"waiting": {
                "reason": "ImagePullBackOff", "message": "pull access denied"}}}]},
    })  # fmt: skip
    s = compute_status(body(), Observed((waiting,), HEADLESS), None)
    message = cond(s, c.COND_HEAD_POD_READY)["message"]
    assert "autoscaler: ImagePullBackOff (pull access denied)" in message
