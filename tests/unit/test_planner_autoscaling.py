"""The planner with in-tree autoscaling on: what it reports about specs Ray's autoscaler
cannot work with, and that reporting never changes what it creates or deletes."""

from __future__ import annotations

from typing import Any

import pytest

from ray_operator import constants as c
from ray_operator.planner import (
    REASON_SURPLUS,
    REASON_WORKERS_TO_DELETE,
    Plan,
)
from tests.manifests import worker_group
from tests.observed_pods import cluster, head, pod, run

ON = {"enableInTreeAutoscaling": True}


def reasons(p: Plan) -> list[str]:
    return [x.reason for x in p.problems]


def no_cpu(group: dict[str, Any]) -> dict[str, Any]:
    """Container 0 without any cpu limit or request (memory kept)."""
    resources = group["template"]["spec"]["containers"][0]["resources"]
    for kind in ("limits", "requests"):
        resources[kind].pop("cpu")
    return group


# -- (a) a group whose CPU count Ray's autoscaler cannot derive ------------------------------


def test_group_without_cpu_information_is_reported_and_still_gets_its_pods():
    p = run(cluster(no_cpu(worker_group("nocpu", 2)), worker_group("ok", 1), **ON), head())
    assert reasons(p) == ["AutoscalerCannotDeriveCPU"]
    (problem,) = p.problems
    assert problem.field == "spec.workerGroupSpecs[0].template.spec.containers[0].resources"
    assert "'nocpu'" in problem.message
    for hint in ("cpu limit or request", 'rayStartParams["num-cpus"]', "resources.CPU"):
        assert hint in problem.message
    assert [x.group for x in p.creates] == ["nocpu", "nocpu", "ok"]


def test_head_without_cpu_information_is_reported():
    body = cluster(worker_group("ok", 0), **ON)
    resources = body["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["resources"]
    resources.pop("limits")
    resources["requests"].pop("cpu")
    p = run(body, head())
    assert reasons(p) == ["AutoscalerCannotDeriveCPU"]
    assert p.problems[0].field.startswith("spec.headGroupSpec.template.spec.containers[0]")
    assert "the head group" in p.problems[0].message


@pytest.mark.parametrize(
    "source",
    ["limit", "request", "num-cpus", "resources"],
)
def test_any_cpu_source_ray_reads_is_enough(source: str):
    group = no_cpu(worker_group("g", 1))
    if source == "limit":
        group["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "2"
    elif source == "request":
        group["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "500m"
    elif source == "num-cpus":
        group["rayStartParams"] = {"num-cpus": "2"}
    else:
        group["resources"] = {"CPU": "2"}
    assert run(cluster(group, **ON), head()).problems == []


def test_without_autoscaling_missing_cpu_is_fine():
    assert run(cluster(no_cpu(worker_group("g", 1))), head()).problems == []


def test_container_less_group_is_left_to_the_builders():
    group = worker_group("empty", 1)
    group["template"]["spec"]["containers"] = []
    assert reasons(run(cluster(group, **ON), head())) == ["InvalidWorkerGroupSpec"]


# -- (b) workersToDelete naming a pod that is not this group's ---------------------------------


def test_workers_to_delete_naming_another_clusters_pod_deletes_nothing():
    """Pods of other clusters are never observed (listing is by the cluster label), so
    such a name looks like an already deleted pod: nothing to do, nothing to report."""
    group = worker_group("cpu", 2, scaleStrategy={"workersToDelete": ["other-cpu-worker-x"]})
    p = run(cluster(group, **ON), head(), pod("a"), pod("b"))
    assert p.deletes == [] and p.creates == [] and p.problems == []


def test_workers_to_delete_naming_the_head_is_refused():
    group = worker_group("cpu", 1, scaleStrategy={"workersToDelete": ["rc-head-x"]})
    p = run(cluster(group, **ON), head(), pod("a"))
    assert p.deletes == []
    assert reasons(p) == ["InvalidWorkersToDelete"]
    assert "headgroup" in p.problems[0].message


# -- (c) more pods than maxReplicas allows -----------------------------------------------------


def test_pods_above_max_replicas_are_reported_not_deleted():
    group = worker_group("cpu", 1, maxReplicas=1)
    p = run(cluster(group, **ON), head(), pod("a"), pod("b"), pod("c"))
    assert p.deletes == [] and p.creates == []
    assert reasons(p) == ["PodsAboveMaxReplicas"]
    (problem,) = p.problems
    assert problem.field == "spec.workerGroupSpecs[0].maxReplicas"
    assert "3 pods" in problem.message and "maxReplicas 1" in problem.message
    assert "workersToDelete" in problem.message


def test_listed_and_finished_pods_do_not_count():
    group = worker_group("cpu", 1, maxReplicas=1, scaleStrategy={"workersToDelete": ["a"]})
    p = run(cluster(group, **ON), head(), pod("a"), pod("b"), pod("dead", phase="Failed"))
    assert p.problems == []
    assert {d.name: d.reason for d in p.deletes} == {
        "a": REASON_WORKERS_TO_DELETE,
        "dead": "PodFinished",
    }


def test_max_replicas_counts_hosts():
    group = worker_group("tpu", 1, maxReplicas=1, numOfHosts=2)
    assert run(cluster(group, **ON), head(), pod("a", "tpu"), pod("b", "tpu")).problems == []
    p = run(cluster(group, **ON), head(), pod("a", "tpu"), pod("b", "tpu"), pod("c", "tpu"))
    assert reasons(p) == ["PodsAboveMaxReplicas"]
    assert "maxReplicas 1 x numOfHosts 2" in p.problems[0].message


def test_without_autoscaling_the_surplus_is_deleted_silently():
    group = worker_group("cpu", 1, maxReplicas=1)
    p = run(cluster(group), head(), pod("a"), pod("b"), pod("c"))
    assert p.problems == []
    assert len([d for d in p.deletes if d.reason == REASON_SURPLUS]) == 2


def test_suspended_group_above_max_is_not_reported():
    group = worker_group("cpu", 3, maxReplicas=1, suspend=True)
    p = run(cluster(group, **ON), head(), pod("a"), pod("b"))
    assert p.problems == []
    assert len(p.deletes) == 2


def test_problems_never_change_the_plan():
    """The same pods, with and without the spec problems: identical creates/deletes."""
    fine = cluster(worker_group("cpu", 1, maxReplicas=5), worker_group("x", 2), **ON)
    bad = cluster(no_cpu(worker_group("cpu", 1, maxReplicas=1)), worker_group("x", 2), **ON)
    pods = (head(), pod("a"), pod("b"), pod("x1", "x"))
    good_plan, bad_plan = run(fine, *pods), run(bad, *pods)
    assert sorted(reasons(bad_plan)) == ["AutoscalerCannotDeriveCPU", "PodsAboveMaxReplicas"]
    assert [x.group for x in good_plan.creates] == [x.group for x in bad_plan.creates]
    assert good_plan.deletes == bad_plan.deletes
    assert c.HEAD_GROUP not in [x.group for x in bad_plan.creates]


@pytest.mark.parametrize("autoscaling", [ON, {}])
@pytest.mark.parametrize(
    ("replicas", "bounds", "kept", "fix"),
    [(5, {"maxReplicas": 3}, 3, "maxReplicas"), (0, {"minReplicas": 2}, 2, "minReplicas")],
)
def test_replicas_outside_the_range_are_clamped_and_said(autoscaling, replicas, bounds, kept, fix):
    """KubeRay clamps in silence; the spec and the pods then disagree with no word."""
    p = run(cluster(worker_group("cpu", replicas, **bounds), **autoscaling), head())
    assert [x.group for x in p.creates] == ["cpu"] * kept
    assert reasons(p) == ["ReplicasOutOfRange"]
    assert p.problems[0].field == "spec.workerGroupSpecs[0].replicas"
    assert f"{kept} kept" in p.problems[0].message and f"change {fix}" in p.problems[0].message
