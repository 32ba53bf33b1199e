"""The planner, exhaustively: spec + observed pods -> creates and deletes
(docs/behaviour.md, Reconciliation).
Uses the real builders: they are pure, so nothing here needs a cluster."""

from __future__ import annotations

import copy

import pytest

from ray_operator import constants as c
from ray_operator.observed import Observed
from ray_operator.planner import (
    REASON_EXTRA_HEAD,
    REASON_FINISHED,
    REASON_OUTDATED,
    REASON_SURPLUS,
    REASON_SUSPEND,
    REASON_WORKERS_TO_DELETE,
    Plan,
    plan,
    template_hash,
)
from tests.manifests import worker_group
from tests.observed_pods import BUILDERS, SERVICE, cluster, head, pod, run


def creates(p: Plan, group: str) -> int:
    return sum(1 for x in p.creates if x.group == group)


def deleted(p: Plan, reason: str | None = None) -> set[str]:
    return {d.name for d in p.deletes if reason is None or d.reason == reason}


def test_empty_cluster_gets_head_service_and_workers():
    p = run(cluster(worker_group("cpu", 2), worker_group("gpu", 1, gpu="1")), service=None)
    assert creates(p, c.HEAD_GROUP) == 1
    assert creates(p, "cpu") == 2
    assert creates(p, "gpu") == 1
    assert [o["kind"] for o in p.ensure] == ["Service"]
    assert p.deletes == [] and p.problems == []


def test_converged_cluster_plans_nothing():
    p = run(cluster(worker_group("cpu", 2)), head(), pod("a"), pod("b"))
    assert (p.creates, p.deletes, p.ensure, p.problems) == ([], [], [], [])


@pytest.mark.parametrize(
    ("replicas", "min_", "max_", "hosts", "want"),
    [(3, 0, 5, 1, 3), (9, 0, 5, 1, 5), (0, 2, 5, 1, 2), (2, 0, 5, 2, 4), (0, 0, 0, 1, 0)],
)
def test_replicas_are_clamped_and_multiplied_by_hosts(replicas, min_, max_, hosts, want):
    group = worker_group("cpu", replicas, minReplicas=min_, maxReplicas=max_, numOfHosts=hosts)
    assert creates(run(cluster(group), head()), "cpu") == want


def test_missing_fields_take_api_defaults():
    group = {"groupName": "cpu", "template": worker_group("cpu", 0)["template"]}
    assert creates(run(cluster(group), head()), "cpu") == 0
    group["replicas"] = 3
    assert creates(run(cluster(group), head()), "cpu") == 3


def test_surplus_deleted_without_autoscaling_least_useful_first():
    p = run(
        cluster(worker_group("cpu", 2)),
        head(),
        pod("old-ready", created="2026-01-01T00:00:00Z"),
        pod("new-ready", created="2026-01-03T00:00:00Z"),
        pod("pending", phase="Pending", ready=False, created="2026-01-01T00:00:00Z"),
        pod("unready", ready=False, created="2026-01-01T00:00:00Z"),
    )
    assert deleted(p, REASON_SURPLUS) == {"pending", "unready"}
    p = run(
        cluster(worker_group("cpu", 1)),
        head(),
        pod("old", created="2026-01-01T00:00:00Z"),
        pod("new", created="2026-01-02T00:00:00Z"),
    )
    assert deleted(p, REASON_SURPLUS) == {"new"}


def test_surplus_kept_with_in_tree_autoscaling():
    p = run(
        cluster(worker_group("cpu", 1), enableInTreeAutoscaling=True),
        head(),
        pod("a"),
        pod("b"),
        pod("c"),
    )
    assert p.deletes == []


def test_workers_to_delete_are_deleted_and_not_replaced():
    group = worker_group("cpu", 1, scaleStrategy={"workersToDelete": ["a", "b", "gone"]})
    p = run(cluster(group, enableInTreeAutoscaling=True), head(), pod("a"), pod("b"), pod("c"))
    assert deleted(p, REASON_WORKERS_TO_DELETE) == {"a", "b"}
    assert creates(p, "cpu") == 0
    assert p.problems == []  # "gone" is normal: already deleted, not yet unlisted


def test_workers_to_delete_then_scale_up_creates_new_pods():
    group = worker_group("cpu", 3, scaleStrategy={"workersToDelete": ["a"]})
    p = run(cluster(group, enableInTreeAutoscaling=True), head(), pod("a"), pod("b"))
    assert deleted(p) == {"a"}
    assert creates(p, "cpu") == 2


def test_workers_to_delete_naming_another_groups_pod_is_refused():
    group = worker_group("cpu", 1, scaleStrategy={"workersToDelete": ["g1"]})
    p = run(cluster(group, worker_group("gpu", 1)), head(), pod("c1"), pod("g1", group="gpu"))
    assert "g1" not in deleted(p)
    assert [x.reason for x in p.problems] == ["InvalidWorkersToDelete"]
    assert "workerGroupSpecs[0].scaleStrategy.workersToDelete" in p.problems[0].field
    assert "gpu" in p.problems[0].message


@pytest.mark.parametrize("phase", ["Failed", "Succeeded"])
def test_finished_pods_are_replaced(phase):
    p = run(
        cluster(worker_group("cpu", 2)), head(), pod("a"), pod("dead", phase=phase, ready=False)
    )
    assert deleted(p, REASON_FINISHED) == {"dead"}
    assert creates(p, "cpu") == 1
    p = run(cluster(worker_group("cpu", 0)), head(phase=phase, ready=False))
    assert deleted(p, REASON_FINISHED) == {"rc-head-x"}
    assert creates(p, c.HEAD_GROUP) == 1


def test_terminating_pods_are_not_counted_or_deleted_again():
    p = run(cluster(worker_group("cpu", 2)), head(), pod("a"), pod("going", terminating=True))
    assert creates(p, "cpu") == 1 and p.deletes == []


def test_duplicate_heads_keep_the_ready_one():
    p = run(
        cluster(),
        head("h1", ready=False, created="2026-01-01T00:00:00Z"),
        head("h2", created="2026-01-02T00:00:00Z"),
    )
    assert deleted(p, REASON_EXTRA_HEAD) == {"h1"}
    assert creates(p, c.HEAD_GROUP) == 0


@pytest.mark.parametrize("field", ["suspend", "idleSuspend"])
def test_cluster_suspend_deletes_every_pod_and_creates_nothing(field):
    p = run(
        cluster(worker_group("cpu", 2), **{field: True}),
        head(),
        pod("a"),
        pod("b", terminating=True),
    )
    assert deleted(p, REASON_SUSPEND) == {"rc-head-x", "a"}
    assert p.creates == []


def test_group_suspend_deletes_only_that_group():
    p = run(
        cluster(worker_group("cpu", 1, suspend=True), worker_group("gpu", 1)),
        head(),
        pod("a"),
        pod("g", group="gpu"),
    )
    assert deleted(p, REASON_SUSPEND) == {"a"}
    assert creates(p, "gpu") == 0


def test_pods_of_removed_groups_are_deleted():
    p = run(cluster(worker_group("cpu", 1)), head(), pod("a"), pod("x", group="retired"))
    assert deleted(p, REASON_SURPLUS) == {"x"}


def test_template_change_ignored_unless_recreate():
    body = cluster(worker_group("cpu", 1))
    current = template_hash(BUILDERS.worker_pod(body, 0))
    stale = run(body, head(), pod("a", template="stale"))
    assert (stale.creates, stale.deletes) == ([], [])
    recreate = copy.deepcopy(body)
    recreate["spec"]["upgradeStrategy"] = {"type": "Recreate"}
    head_hash = template_hash(BUILDERS.head_pod(recreate))
    p = run(
        recreate, head(template=head_hash), pod("a", template="stale"), pod("b", template=current)
    )
    assert deleted(p, REASON_OUTDATED) == {"a"}
    assert creates(p, "cpu") == 0  # b still serves; a comes back after it is gone


def test_recreate_with_new_head_template_restarts_everything():
    body = cluster(worker_group("cpu", 1), upgradeStrategy={"type": "Recreate"})
    p = run(body, head(template="stale"), pod("a"))
    assert deleted(p, REASON_OUTDATED) == {"rc-head-x", "a"}
    assert p.creates == []


def test_recreate_adopts_pods_without_a_hash_by_stamping_them():
    """KubeRay's pods carry no ray.io/pod-template-hash: after a migration they are
    stamped with the current hash, never deleted and recreated."""
    body = cluster(worker_group("cpu", 2), upgradeStrategy={"type": "Recreate"})
    head_hash = template_hash(BUILDERS.head_pod(body))
    worker_hash = template_hash(BUILDERS.worker_pod(body, 0))
    p = run(body, head(), pod("a"), pod("b", template=worker_hash))
    assert (p.creates, p.deletes) == ([], [])
    assert {(s.name, s.group, s.template_hash) for s in p.stamps} == {
        ("rc-head-x", c.HEAD_GROUP, head_hash),
        ("a", "cpu", worker_hash),
    }
    # Without Recreate the hash is not looked at: nothing to stamp.
    del body["spec"]["upgradeStrategy"]
    assert run(body, head(), pod("a"), pod("b")).stamps == []


def test_autoscaling_ensures_rbac():
    p = run(cluster(worker_group("cpu", 1), enableInTreeAutoscaling=True), head(), pod("a"))
    assert sorted(o["kind"] for o in p.ensure) == ["Role", "RoleBinding", "ServiceAccount"]


def test_too_many_pods_is_a_problem_not_a_flood():
    p = plan(
        cluster(worker_group("cpu", 5000)),
        Observed((head(),), SERVICE),
        BUILDERS,
        max_pods_per_cluster=1000,
    )
    assert p.creates == []
    assert p.problems[0].reason == "TooManyPods"
    assert p.problems[0].field == "spec.workerGroupSpecs[0].replicas"


def test_invalid_group_is_reported_and_other_groups_proceed():
    bad = worker_group("bad", 2)
    bad["rayStartParams"] = {"num-cpus": "1\nrm -rf /"}
    p = run(cluster(bad, worker_group("good", 2)), head())
    assert creates(p, "good") == 2 and creates(p, "bad") == 0
    assert p.problems[0].reason == "InvalidWorkerGroupSpec"
    assert p.problems[0].field.startswith("spec.workerGroupSpecs[0].rayStartParams")


def test_invalid_head_blocks_everything_with_a_problem():
    body = cluster(worker_group("good", 2))
    body["spec"]["headGroupSpec"]["rayStartParams"] = {"bad key!": "1"}
    p = run(body)
    assert p.creates == [] and p.problems[0].reason == "InvalidHeadGroupSpec"


def test_enable_ingress_ensures_the_head_ingress_and_nothing_else_changes():
    body = cluster(worker_group("cpu", 1))
    body["spec"]["headGroupSpec"]["enableIngress"] = True
    p = run(body, head(), pod("a"))
    (ingress,) = [o for o in p.ensure if o["kind"] == "Ingress"]
    assert ingress["metadata"]["name"] == "rc-head-ingress"
    assert p.creates == [] and p.deletes == [] and p.problems == []
    assert not [o for o in run(cluster(worker_group("cpu", 1)), head(), pod("a")).ensure]


def _autoscaled_with_account(account: str) -> dict:
    body = cluster(worker_group("cpu", 1), enableInTreeAutoscaling=True)
    body["spec"]["headGroupSpec"]["template"]["spec"]["serviceAccountName"] = account
    return body


@pytest.mark.parametrize(("exists", "reported"), [(False, True), (True, False), (None, False)])
def test_a_missing_head_service_account_is_a_problem_only_when_seen_missing(exists, reported):
    """The reconciler looks the account up; None (not looked up, or the lookup failed)
    makes no Problem from a guess."""
    observed = Observed(pods=(head(),), head_service=SERVICE, head_service_account_exists=exists)
    p = plan(_autoscaled_with_account("ray-sa"), observed, BUILDERS)
    found = [x for x in p.problems if x.reason == "ServiceAccountNotFound"]
    assert bool(found) is reported
    if found:
        assert found[0].field == "spec.headGroupSpec.template.spec.serviceAccountName"
        assert "'ray-sa' does not exist in namespace 'ns'" in found[0].message


@pytest.mark.parametrize(
    ("found", "keys", "reason"),
    [
        (False, frozenset(), "AuthSecretNotFound"),
        (True, frozenset({"other"}), "AuthSecretKeyMissing"),
        (True, frozenset({"auth_token"}), None),
        (None, frozenset(), None),
    ],
)
def test_the_users_auth_secret_must_exist_and_hold_the_token(found, keys, reason):
    body = cluster(worker_group("cpu", 1), authOptions={"mode": "token", "secretName": "tok"})
    observed = Observed(
        pods=(head(),), head_service=SERVICE, auth_secret_found=found, auth_secret_keys=keys
    )
    problems = [x for x in plan(body, observed, BUILDERS).problems if x.reason.startswith("Auth")]
    assert [x.reason for x in problems] == ([reason] if reason else [])
    assert all(x.field == "spec.authOptions.secretName" and "'tok'" in x.message for x in problems)
