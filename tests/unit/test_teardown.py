"""The planner for deletion (teardown.py) and the finalizer the planner adds: every
decision of the GCS FT Redis cleanup lifecycle, with the clock as an argument."""

from __future__ import annotations

import datetime as dt

import pytest

from ray_operator import constants as c
from ray_operator.errors import InvalidSpecError
from ray_operator.observed import JOB_COMPLETE, JOB_FAILED, ObservedJob
from ray_operator.planner import default_builders
from ray_operator.teardown import deletion_timeout, finalizer_to_add, plan_teardown
from tests.manifests import worker_group
from tests.observed_pods import cluster, head, pod, run

FT = {"redisAddress": "redis:6379"}
GCS = c.GCS_FT_REDIS_CLEANUP_FINALIZER
IDLE = c.IDLE_TERMINATION_FINALIZER
DELETED_AT = "2026-11-28T12:00:00Z"
T0 = dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC).timestamp()
BUILD = default_builders().redis_cleanup_job


def ft(*finalizers: str, deleting: bool = True, **annotations: str) -> dict:
    body = cluster(worker_group("cpu", 1), gcsFaultToleranceOptions=dict(FT))
    meta = body["metadata"]
    meta["finalizers"] = list(finalizers)
    if deleting:
        meta["deletionTimestamp"] = DELETED_AT
    if annotations:
        meta["annotations"] = annotations
    return body


def job(outcome: str | None, message: str = "") -> ObservedJob:
    return ObservedJob("rc-redis-cleanup", "uid-1", outcome, message)


def teardown(body, pods=(), jobs=(), after: float = 1.0, redis_cleanup=True, build=BUILD):
    return plan_teardown(body, pods, jobs, T0 + after, redis_cleanup, build)


# -- adding the finalizer ------------------------------------------------------------


def test_fault_tolerant_clusters_get_the_finalizer_first():
    assert run(ft(deleting=False), head(), pod("a")).add_finalizer == GCS
    legacy = cluster(worker_group("cpu", 1))
    legacy["metadata"]["annotations"] = {c.ANNOTATION_FT_ENABLED: "True"}  # any case
    assert finalizer_to_add(legacy, True) == GCS


def test_no_finalizer_without_fault_tolerance_twice_or_with_the_cleanup_off():
    assert run(cluster(worker_group("cpu", 1)), head()).add_finalizer is None
    assert finalizer_to_add(ft(GCS, deleting=False), True) is None  # already there
    assert finalizer_to_add(ft(deleting=False), False) is None  # --no-gcs-ft-redis-cleanup


def test_the_finalizer_is_added_to_a_suspended_cluster_too():
    body = ft(deleting=False)
    body["spec"]["suspend"] = True
    assert run(body, head()).add_finalizer == GCS


# -- deleting ------------------------------------------------------------------------


def test_without_our_finalizers_nothing_is_done():
    body = ft("example.com/other")
    t = teardown(body, [head(), pod("a")])
    assert (t.deletes, t.create_job, t.removals, t.requeue) == ([], None, [], None)


def test_pods_are_deleted_and_the_job_waits_for_the_head_to_go():
    t = teardown(ft(GCS), [head(), pod("a"), pod("b", terminating=True)])
    assert {d.name for d in t.deletes} == {"rc-head-x", "a"}
    assert {d.reason for d in t.deletes} == {"ClusterDeleted"}
    assert t.create_job is None and t.removals == []
    assert t.requeue == 10.0  # pod events wake it sooner


def test_a_terminating_head_still_holds_the_job_back():
    t = teardown(ft(GCS), [head(terminating=True)])
    assert t.deletes == [] and t.create_job is None and t.removals == []


def test_workers_left_do_not_hold_the_job_back():
    t = teardown(ft(GCS), [pod("a", terminating=True)])
    assert t.create_job is not None
    assert t.create_job["metadata"]["name"] == "rc-redis-cleanup"
    assert t.requeue == pytest.approx(299.5)  # the deadline bounds the wait


def test_no_second_job_while_one_runs():
    t = teardown(ft(GCS), jobs=[job(None)], after=100)
    assert t.create_job is None and t.removals == []
    assert t.requeue == pytest.approx(200.5)


def test_a_completed_job_removes_the_finalizer():
    t = teardown(ft(GCS), jobs=[job(JOB_COMPLETE)])
    assert [r.finalizer for r in t.removals] == [GCS]
    note = t.removals[0].note
    assert (note.type, note.reason) == ("Normal", "RedisCleanupCompleted")
    assert t.requeue is None


def test_a_failed_job_removes_the_finalizer_with_a_warning_naming_the_namespace():
    t = teardown(ft(GCS), jobs=[job(JOB_FAILED, "BackoffLimitExceeded Job has reached")])
    note = t.removals[0].note
    assert (note.type, note.reason) == ("Warning", "RedisCleanupFailed")
    assert "'uid-1'" in note.message and "RAYuid-1@*" in note.message
    assert "BackoffLimitExceeded" in note.message


@pytest.mark.parametrize(
    ("annotation", "timeout"), [(None, 300), ("30", 30), ("0", 300), ("-5", 300), ("x", 300)]
)
def test_deletion_timeout_annotation(annotation, timeout):
    body = (
        ft(GCS)
        if annotation is None
        else ft(GCS, **{c.ANNOTATION_GCS_FT_DELETION_TIMEOUT: annotation})
    )
    assert deletion_timeout(body) == timeout


def test_the_timeout_forces_the_finalizer_off_whatever_the_job_does():
    body = ft(GCS, **{c.ANNOTATION_GCS_FT_DELETION_TIMEOUT: "30"})
    assert teardown(body, jobs=[job(None)], after=29).removals == []
    t = teardown(body, [head()], jobs=[job(None)], after=31)
    note = t.removals[0].note
    assert (note.type, note.reason) == ("Warning", "ForceDeletedStuckCluster")
    assert "'uid-1'" in note.message and "30s" in note.message
    assert t.create_job is None


def test_a_cluster_no_longer_fault_tolerant_just_loses_the_finalizer():
    body = ft(GCS)
    del body["spec"]["gcsFaultToleranceOptions"]
    t = teardown(body, [head()])
    assert t.create_job is None
    assert (t.removals[0].finalizer, t.removals[0].note.reason) == (GCS, "RedisCleanupSkipped")


def test_cleanup_switched_off_removes_the_finalizer_with_a_warning():
    t = teardown(ft(GCS), redis_cleanup=False)
    assert t.removals[0].note.reason == "RedisCleanupDisabled"
    assert t.removals[0].note.type == "Warning"


def test_a_job_that_cannot_be_built_removes_the_finalizer_with_a_warning():
    def refuse(_body):
        raise InvalidSpecError("spec.headGroupSpec.template.spec.containers", "is empty")

    t = teardown(ft(GCS), build=refuse)
    assert t.create_job is None
    note = t.removals[0].note
    assert note.reason == "FailedToCreateRedisCleanupJob"
    assert "spec.headGroupSpec.template.spec.containers" in note.message


def test_idle_termination_finalizer_waits_for_every_pod():
    body = ft(IDLE)
    t = teardown(body, [pod("a", terminating=True)])
    assert t.removals == [] and t.requeue == 1.0
    assert [r.finalizer for r in teardown(body).removals] == [IDLE]


def test_both_finalizers_go_in_one_pass_when_both_are_done():
    t = teardown(ft(IDLE, GCS), jobs=[job(JOB_COMPLETE)])
    assert sorted(r.finalizer for r in t.removals) == sorted([IDLE, GCS])
    assert t.requeue is None


@pytest.mark.parametrize(
    ("conditions", "outcome"),
    [
        ([], None),
        ([{"type": "Complete", "status": "True"}], JOB_COMPLETE),
        ([{"type": "SuccessCriteriaMet", "status": "True"}], JOB_COMPLETE),
        ([{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}], JOB_FAILED),
        (
            [{"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"}],
            JOB_FAILED,
        ),
        ([{"type": "Failed", "status": "False"}], None),
    ],
)
def test_job_outcome_from_its_conditions(conditions, outcome):
    observed = ObservedJob.from_dict(
        {"metadata": {"name": "j", "ownerReferences": [{"uid": "u", "controller": True}]},
         "status": {"conditions": conditions}}
    )  # fmt: skip
    assert (observed.owner_uid, observed.outcome) == ("u", outcome)
    if outcome == JOB_FAILED:
        assert conditions[0]["reason"] in observed.message
