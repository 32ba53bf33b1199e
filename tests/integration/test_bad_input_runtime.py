"""Bad and hostile RayClusters the API server accepts but that cannot work as written.

(The ones the API server itself rejects, with the field in its message, are the table
in test_crd_validation.py.) Here every case must end with a `ReplicaFailure` condition
and a Warning event that name the field and the fix, while the operator keeps running
and a healthy cluster in the same namespace keeps reconciling throughout.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from ray_operator import constants as c
from tests.clusters import Clusters
from tests.kubehelpers import wait_for
from tests.manifests import raycluster, worker_group

Manifest = dict[str, Any]


def _worker_params(**params: str) -> Callable[[Manifest], None]:
    def mutate(body: Manifest) -> None:
        body["spec"]["workerGroupSpecs"][0]["rayStartParams"] = params

    return mutate


def _head_params(**params: str) -> Callable[[Manifest], None]:
    def mutate(body: Manifest) -> None:
        body["spec"]["headGroupSpec"]["rayStartParams"] = params

    return mutate


def _worker_container(**fields: Any) -> Callable[[Manifest], None]:
    def mutate(body: Manifest) -> None:
        body["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0].update(fields)

    return mutate


def _head_container(**fields: Any) -> Callable[[Manifest], None]:
    def mutate(body: Manifest) -> None:
        body["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0].update(fields)

    return mutate


def _replicas(n: int) -> Callable[[Manifest], None]:
    def mutate(body: Manifest) -> None:
        body["spec"]["workerGroupSpecs"][0].update(replicas=n, maxReplicas=n)

    return mutate


def _autoscaler_name_clash(body: Manifest) -> None:
    body["spec"]["enableInTreeAutoscaling"] = True
    containers = body["spec"]["headGroupSpec"]["template"]["spec"]["containers"]
    containers.append({"name": "autoscaler", "image": "example.invalid/mine:1"})


@dataclass(frozen=True)
class Case:
    name: str
    mutate: Callable[[Manifest], None]
    reason: str  # the ReplicaFailure reason (also the Warning event's reason)
    says: tuple[str, ...]  # substrings of the condition message: the field and the fix


W0 = "spec.workerGroupSpecs[0]"
CASES = [
    Case("line-break-param", _worker_params(**{"num-cpus": "1\nrm -rf /"}),
         "InvalidWorkerGroupSpec", (f'{W0}.rayStartParams["num-cpus"]', "single line")),
    Case("flag-name", _worker_params(**{"--num-cpus": "2"}),
         "InvalidWorkerGroupSpec", (f"{W0}.rayStartParams", "--num-cpus")),
    Case("fractional-cpus", _worker_params(**{"num-cpus": "0.5"}),
         "InvalidWorkerGroupSpec", (f'{W0}.rayStartParams["num-cpus"]', "whole number")),
    Case("negative-gpus", _worker_params(**{"num-gpus": "-1"}),
         "InvalidWorkerGroupSpec", (f'{W0}.rayStartParams["num-gpus"]',)),
    Case("head-on-worker", _worker_params(head="true"),
         "InvalidWorkerGroupSpec", (f'{W0}.rayStartParams["head"]', "remove it")),
    Case("resources-not-json", _worker_params(resources="{not json"),
         "InvalidWorkerGroupSpec", (f'{W0}.rayStartParams["resources"]',)),
    Case("bad-port", _head_params(port="99999"),
         "InvalidHeadGroupSpec", ('spec.headGroupSpec.rayStartParams["port"]', "1-65535")),
    Case("bad-head-key", _head_params(**{"bad key!": "1"}),
         "InvalidHeadGroupSpec", ("spec.headGroupSpec.rayStartParams",)),
    Case("autoscaler-name-taken", _autoscaler_name_clash,
         "InvalidHeadGroupSpec", ("spec.headGroupSpec.template.spec.containers", "autoscaler")),
    Case("huge-replicas", _replicas(2_000_000),
         "TooManyPods", (f"{W0}.replicas", "--max-pods-per-cluster")),
    Case("empty-image", _worker_container(image=""),
         "FailedCreateWorkerPod", (f"{W0}.template", "spec.containers[0].image", "Required")),
    Case("bad-env-name", _worker_container(env=[{"name": "A=B", "value": "x"}]),
         "FailedCreateWorkerPod", (f"{W0}.template", "spec.containers[0].env[0].name")),
    Case("bad-head-volume", _head_container(volumeMounts=[{"name": "nowhere", "mountPath": "/x"}]),
         "FailedCreateHeadPod", ("spec.headGroupSpec.template", "volumeMounts[0].name",
                                 "Not found")),
]  # fmt: skip


def _replica_failure(body: Manifest) -> dict | None:
    conditions = (body.get("status") or {}).get("conditions") or []
    return next((x for x in conditions if x["type"] == c.COND_REPLICA_FAILURE), None)


def test_runtime_bad_input_is_reported_and_harms_nobody(api_client, namespace, run_operator):
    clusters = Clusters(api_client, namespace)
    operator = run_operator(namespace)
    clusters.create(raycluster("canary", worker_group("cpu", 1)))
    clusters.wait_state("canary")

    for case in CASES:
        body = raycluster(f"bad-{case.name}", worker_group("cpu", 1))
        case.mutate(body)
        clusters.create(copy.deepcopy(body))

    # While they fail, the canary keeps reconciling: scale it and watch it converge.
    clusters.patch("canary", [{"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas",
                               "value": 3}])  # fmt: skip
    clusters.wait_pods("canary", 3, "cpu")
    clusters.wait_state("canary")

    problems = []
    for case in CASES:
        name = f"bad-{case.name}"
        try:
            failure = wait_for(lambda n=name: _replica_failure(clusters.get(n)), timeout=60,
                               what=f"ReplicaFailure on {name}")  # fmt: skip
        except TimeoutError as err:
            problems.append(f"{case.name}: {err}")
            continue
        if failure["reason"] != case.reason or failure["status"] != "True":
            problems.append(f"{case.name}: condition {failure}")
        missing = [s for s in case.says if s not in failure["message"]]
        if missing:
            problems.append(f"{case.name}: message lacks {missing}: {failure['message']}")
        try:  # posted after the status, off the reconcile's critical path
            wait_for(
                lambda n=name, r=case.reason: [e for e in clusters.events(n)
                                               if e.type == "Warning" and e.reason == r],
                timeout=10, what=f"Warning {case.reason}",
            )  # fmt: skip
        except TimeoutError:
            problems.append(f"{case.name}: no Warning event {case.reason}")
        body = clusters.get(name)
        assert body["status"].get("state") != c.STATE_READY, name
    assert not problems, "\n".join(problems)

    assert len(clusters.pods("bad-huge-replicas", "cpu")) == 0  # no flood of pods
    assert operator.alive(), operator.log_tail()
    assert "Traceback" not in operator.log_tail(2000)


def test_hostile_template_labels_cannot_hijack_another_cluster(api_client, namespace,
                                                               run_operator):  # fmt: skip
    clusters = Clusters(api_client, namespace)
    run_operator(namespace)
    clusters.create(raycluster("victim", worker_group("cpu", 2)))
    clusters.wait_state("victim")
    hostile = raycluster("hostile", worker_group("cpu", 1))
    template = hostile["spec"]["workerGroupSpecs"][0]["template"]
    template["metadata"] = {"labels": {c.LABEL_CLUSTER: "victim", c.LABEL_GROUP: "cpu",
                                       c.LABEL_NODE_TYPE: "head"}}  # fmt: skip
    clusters.create(hostile)
    clusters.wait_state("hostile")
    hostile_pods = clusters.pods("hostile", "cpu")
    assert len(hostile_pods) == 1
    assert hostile_pods[0].metadata.labels[c.LABEL_NODE_TYPE] == "worker"
    assert len(clusters.pods("victim", "cpu")) == 2
    assert clusters.get("victim")["status"]["state"] == c.STATE_READY


def test_quota_refusal_becomes_a_condition_and_clears(api_client, namespace, run_operator):
    core = client.CoreV1Api(api_client)
    core.create_namespaced_resource_quota(namespace, {
        "metadata": {"name": "pods"}, "spec": {"hard": {"pods": "2"}}})  # fmt: skip
    clusters = Clusters(api_client, namespace)
    run_operator(namespace)
    clusters.create(raycluster("quota", worker_group("cpu", 3)))
    failure = wait_for(lambda: _replica_failure(clusters.get("quota")), timeout=60,
                       what="ReplicaFailure from the quota")  # fmt: skip
    assert failure["reason"] == "FailedCreateWorkerPod"
    assert "exceeded quota" in failure["message"]
    core.patch_namespaced_resource_quota("pods", namespace, {"spec": {"hard": {"pods": "10"}}})
    body = clusters.wait_state("quota", timeout=120)
    assert _replica_failure(body) is None
