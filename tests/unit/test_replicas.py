"""Worker replicas as KubeRay v1.6.1 plans them: replica indices on every worker pod,
and multi-host replicas (numOfHosts > 1) created, deleted and replaced whole."""

from __future__ import annotations

import dataclasses

from ray_operator import constants as c
from ray_operator.model import (
    REASON_FINISHED,
    REASON_INCOMPLETE_REPLICA,
    REASON_SURPLUS,
    REASON_WORKERS_TO_DELETE,
)
from ray_operator.observed import ObservedPod
from ray_operator.reconciler import _first_creates, _labelled, _new_replica_names
from ray_operator.replicas import free_indices
from tests.manifests import worker_group
from tests.observed_pods import cluster, head, pod, run


def member(name: str, replica: str, index: int, **kw) -> ObservedPod:
    return dataclasses.replace(pod(name, "tpu", **kw), replica=replica, replica_index=index)


def tpu(replicas: int, **extra) -> dict:
    return cluster(worker_group("tpu", replicas, numOfHosts=2, **extra))


def labels(create) -> dict[str, str]:
    return dict(create.labels)


def test_free_indices_fill_gaps_first():
    assert free_indices([0, 2, None], 3) == [1, 3, 4]


def test_single_host_pods_get_the_lowest_free_replica_index():
    body = cluster(worker_group("cpu", 3))
    p = run(body, head(), dataclasses.replace(pod("a"), replica_index=1))
    assert sorted(labels(x)[c.LABEL_REPLICA_INDEX] for x in p.creates if x.group == "cpu") == [
        "0",
        "2",
    ]


def test_multi_host_replicas_are_created_whole_with_host_indices_and_a_headless_service():
    p = run(tpu(2), head())
    made = [x for x in p.creates if x.group == "tpu"]
    assert len(made) == 4
    by_replica: dict[int, list[dict[str, str]]] = {}
    for x in made:
        by_replica.setdefault(x.new_replica, []).append(labels(x))
    assert sorted(by_replica) == [0, 1]
    for ordinal, hosts in by_replica.items():
        assert {h[c.LABEL_REPLICA_INDEX] for h in hosts} == {str(ordinal)}
        assert sorted(h[c.LABEL_HOST_INDEX] for h in hosts) == ["0", "1"]
    (headless,) = [o for o in p.ensure if o["metadata"]["name"] == "rc-headless"]
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"] == {c.LABEL_CLUSTER: "rc", c.LABEL_NODE_TYPE: "worker"}
    assert headless["metadata"]["labels"] == {c.LABEL_HEADLESS_SERVICE: "rc"}
    assert "ports" not in headless["spec"]


def test_a_replica_with_a_failed_host_is_replaced_as_a_unit():
    pods = [
        member("a0", "tpu-aaaaa", 0),
        member("a1", "tpu-aaaaa", 0, phase="Failed"),
        member("b0", "tpu-bbbbb", 1),
        member("b1", "tpu-bbbbb", 1),
    ]
    p = run(tpu(2), head(), *pods)
    assert {(d.name, d.reason) for d in p.deletes} == {
        ("a0", REASON_FINISHED),
        ("a1", REASON_FINISHED),
    }
    made = [x for x in p.creates if x.group == "tpu"]
    assert len(made) == 2 and {labels(x)[c.LABEL_REPLICA_INDEX] for x in made} == {"0"}


def test_a_replica_missing_a_host_is_deleted_and_remade():
    p = run(tpu(1), head(), member("a0", "tpu-aaaaa", 0))
    assert {(d.name, d.reason) for d in p.deletes} == {("a0", REASON_INCOMPLETE_REPLICA)}
    assert len([x for x in p.creates if x.group == "tpu"]) == 2


def test_workers_to_delete_removes_the_whole_replica_and_scale_down_is_by_replica():
    pods = [
        member("a0", "tpu-aaaaa", 0),
        member("a1", "tpu-aaaaa", 0),
        member("b0", "tpu-bbbbb", 1, created="2026-02-01T00:00:00Z"),
        member("b1", "tpu-bbbbb", 1, created="2026-02-01T00:00:00Z"),
    ]
    listed = run(tpu(1, scaleStrategy={"workersToDelete": ["a1"]}), head(), *pods)
    assert {(d.name, d.reason) for d in listed.deletes} == {
        ("a0", REASON_WORKERS_TO_DELETE),
        ("a1", REASON_WORKERS_TO_DELETE),
    }
    assert not [x for x in listed.creates if x.group == "tpu"]
    down = run(tpu(1), head(), *pods)  # the newest replica goes, whole
    assert {(d.name, d.reason) for d in down.deletes} == {
        ("b0", REASON_SURPLUS),
        ("b1", REASON_SURPLUS),
    }


def test_a_pod_outside_any_replica_is_removed():
    p = run(
        tpu(1), head(), member("a0", "tpu-aaaaa", 0), member("a1", "tpu-aaaaa", 0), pod("x", "tpu")
    )
    assert {(d.name, d.reason) for d in p.deletes} == {("x", REASON_INCOMPLETE_REPLICA)}


def test_the_reconciler_names_each_new_replica_once_and_never_splits_one():
    p = run(tpu(2), head())
    made = [x for x in p.creates if x.group == "tpu"]
    names = _new_replica_names(made)
    bodies = [_labelled(x, names).body for x in made]
    per_replica: dict[str, set[str]] = {}
    for body in bodies:
        lab = body["metadata"]["labels"]
        per_replica.setdefault(lab[c.LABEL_REPLICA_NAME], set()).add(lab[c.LABEL_HOST_INDEX])
    assert len(per_replica) == 2 and all(v == {"0", "1"} for v in per_replica.values())
    assert all(n.startswith("tpu-") and len(n) == len("tpu-") + 5 for n in per_replica)
    assert "labels" not in made[0].body["metadata"] or c.LABEL_REPLICA_NAME not in made[0].body[
        "metadata"
    ].get("labels", {})
    assert len(_first_creates(made, 3)) == 4  # a replica is never cut in two
    assert len(_first_creates(made, 2)) == 2


def test_recreate_stamps_kuberays_unhashed_multi_host_pods_and_replaces_outdated_replicas():
    """After a migration KubeRay's pods carry no hash: whole replicas are adopted by
    stamping (no restart); a replica with another template's hash is replaced whole."""
    body = cluster(worker_group("tpu", 2, numOfHosts=2), upgradeStrategy={"type": "Recreate"})
    pods = [
        member("a0", "tpu-aaaaa", 0),
        member("a1", "tpu-aaaaa", 0),
        member("b0", "tpu-bbbbb", 1, template="old"),
        member("b1", "tpu-bbbbb", 1, template="old"),
    ]
    p = run(body, head(), *pods)
    assert sorted(s.name for s in p.stamps if s.group == "tpu") == ["a0", "a1"]
    assert sorted(d.name for d in p.deletes) == ["b0", "b1"]
    assert len([x for x in p.creates if x.group == "tpu"]) == 2
