"""Which observed children count as a cluster's own, and which head pod is the head."""

from __future__ import annotations

import dataclasses

from ray_operator.observed import (
    Observed,
    ObservedPod,
    ObservedService,
    choose_head,
    controller_uid,
    owned_by,
)
from ray_operator.planner import plan
from ray_operator.status import compute_status
from tests.manifests import worker_group
from tests.observed_pods import BUILDERS, SERVICE, cluster, head, pod, run

UID = "uid-1"  # the uid tests.observed_pods.cluster() gives the RayCluster


def owned(p: ObservedPod, uid: str | None = UID) -> ObservedPod:
    return dataclasses.replace(p, owner_uid=uid)


def test_the_controller_reference_is_what_counts():
    meta = {
        "ownerReferences": [
            {"kind": "Deployment", "uid": "d", "controller": False},
            {"kind": "RayCluster", "uid": UID, "controller": True},
        ]
    }
    assert controller_uid(meta) == UID
    assert controller_uid({"ownerReferences": [{"uid": "x"}]}) is None
    assert controller_uid({}) is None


def test_labelled_strangers_are_split_off():
    mine, stranger, other_owner = owned(pod("a")), owned(pod("b"), None), owned(pod("c"), "x")
    observed, foreign = owned_by(UID, [mine, stranger, other_owner], None)
    assert observed.pods == (mine,)
    assert foreign == [stranger, other_owner]


def test_a_foreign_head_service_is_not_ours_and_is_named():
    svc = ObservedService("rc-head-svc", "None", (), owner_uid=None)
    observed, _ = owned_by(UID, [], svc)
    assert observed.head_service is None and observed.foreign_head_service == "rc-head-svc"
    ours = dataclasses.replace(svc, owner_uid=UID)
    assert owned_by(UID, [], ours)[0].head_service == ours


def test_a_foreign_head_service_is_reported_and_never_replaced():
    observed, _ = owned_by(UID, [], ObservedService("rc-head-svc", "None", ()))
    body = cluster(worker_group("cpu", 1))
    p = run(body, service=None)
    assert [o["kind"] for o in p.ensure] == ["Service"]  # missing: created

    taken = plan(body, observed, BUILDERS)
    assert [o["kind"] for o in taken.ensure] == []
    assert [x.reason for x in taken.problems] == ["HeadServiceConflict"]
    assert "rc-head-svc" in taken.problems[0].message


def test_planner_and_status_agree_on_the_head_when_two_tie():
    """Two heads created in the same second, both ready: the planner keeps one and
    deletes the other, and the status must report the one kept."""
    a = head("rc-head-a", created="2026-01-01T00:00:00Z")
    b = head("rc-head-b", created="2026-01-01T00:00:00Z")
    assert choose_head([b, a]) is a
    body = cluster(worker_group("cpu", 0))
    deleted = {d.name for d in run(body, a, b).deletes}

    status = compute_status(body, Observed((b, a), SERVICE), None)
    assert deleted == {"rc-head-b"}
    assert status["head"]["podName"] == "rc-head-a"


def test_service_endpoints_are_reported_as_kuberay_does():
    svc = ObservedService.from_dict(
        {
            "metadata": {"name": "front"},
            "spec": {
                "type": "NodePort",
                "clusterIP": "10.0.0.9",
                "ports": [
                    {"name": "dashboard", "port": 8265, "targetPort": 8265, "nodePort": 31265},
                    {"name": "client", "port": 80, "targetPort": 10001},
                    {"name": "serve", "port": 81, "targetPort": "serve"},
                    {"name": "gcs", "port": 6379, "targetPort": "6379"},
                ],
            },
        }
    )
    assert svc.ports == (("dashboard", 31265), ("client", 10001), ("serve", "serve"), ("gcs", 6379))
