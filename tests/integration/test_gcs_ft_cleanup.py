"""GCS fault tolerance on delete: the finalizer, the pods, the Redis cleanup Job, the
finalizer's removal (docs/behaviour.md, GCS fault tolerance).

A real `redis-server` on loopback holds the clusters' keys. The Job's pod runs on a
kwok node, so nothing runs in it: the test runs the pod's own command line here with
Ray 2.60 (tests/redis_cleanup_harness.py) and reports its exit through the pod's
phase; the real Job controller marks the Job Complete or Failed and the operator
sees that through its Job watch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from ray_operator import constants as c
from ray_operator.builders.redis_cleanup import cleanup_job_selector
from ray_operator_dev.devcluster.controlplane import free_port
from tests.clusters import Clusters
from tests.integration.test_chart import (  # noqa: F401 (fixtures)
    ChartOperators,
    Helm,
    chart_operators,
    helm_cli,
    release_name,
)
from tests.kubehelpers import wait_for
from tests.manifests import raycluster, worker_group
from tests.redis_cleanup_harness import MISSING, RedisServer, job_pod, redis_server, run_cleanup_pod

pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
GCS = c.GCS_FT_REDIS_CLEANUP_FINALIZER


@pytest.fixture
def batch(api_client) -> client.BatchV1Api:
    return client.BatchV1Api(api_client)


@pytest.fixture
def redis(tmp_path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as server:
        yield server


def ft_cluster(name: str, address: str, **meta: Any) -> dict[str, Any]:
    body = raycluster(
        name, worker_group("cpu", 1), gcsFaultToleranceOptions={"redisAddress": address}
    )
    body["metadata"].update(meta)
    return body


def cleanup_jobs(batch: client.BatchV1Api, namespace: str, name: str) -> list[client.V1Job]:
    return batch.list_namespaced_job(namespace, label_selector=cleanup_job_selector(name)).items


def wait_job(batch: client.BatchV1Api, namespace: str, name: str) -> client.V1Job:
    return wait_for(lambda: next(iter(cleanup_jobs(batch, namespace, name)), None), timeout=60,
                    what=f"the cleanup Job of {name}")  # fmt: skip


def gone(clusters: Clusters, name: str) -> bool:
    try:
        clusters.get(name)
        return False
    except ApiException as err:
        return err.status == 404


def wait_gone(clusters: Clusters, name: str, timeout: float = 60) -> None:
    wait_for(lambda: gone(clusters, name), timeout=timeout, what=f"RayCluster {name} gone")


def reasons(clusters: Clusters, name: str) -> list[str]:
    return [e.reason for e in clusters.events(name)]


def ready_with_finalizer(clusters: Clusters, name: str) -> dict[str, Any]:
    clusters.wait_state(name)

    def finalized() -> dict[str, Any] | None:
        body = clusters.get(name)
        return body if GCS in (body["metadata"].get("finalizers") or []) else None

    return wait_for(finalized, timeout=30, what=f"finalizer {GCS}")


def test_delete_cleans_the_clusters_keys_from_redis(
    clusters, batch, namespace, redis, run_operator
):
    run_operator(namespace)
    clusters.create(ft_cluster("ft", redis.address))
    body = ready_with_finalizer(clusters, "ft")
    storage = body["metadata"]["uid"]  # the default storage namespace
    redis.seed(storage)
    redis.seed("another-cluster")
    assert len(redis.keys(storage)) == 4

    clusters.delete("ft")
    job = wait_job(batch, namespace, "ft")
    # The head (the GCS, which would write its keys back) was gone before the Job came.
    heads = [p for p in clusters.pods("ft", alive=False)
             if p.metadata.labels.get(c.LABEL_NODE_TYPE) == c.NODE_TYPE_HEAD]  # fmt: skip
    assert heads == []
    assert job.metadata.name == "ft-redis-cleanup"
    assert job.metadata.owner_references[0].uid == storage
    assert (job.spec.backoff_limit, job.spec.active_deadline_seconds) == (0, 300)
    assert GCS in clusters.get("ft")["metadata"]["finalizers"]  # held until the Job ends

    run = run_cleanup_pod(clusters.core, job_pod(clusters.core, namespace, job.metadata.name))
    assert run.exit_code == 0, run.output
    wait_gone(clusters, "ft")
    assert redis.keys(storage) == set()
    assert len(redis.keys("another-cluster")) == 4  # other clusters' keys stay
    seen = reasons(clusters, "ft")
    assert seen.count("CreatedRedisCleanupJob") == 1
    assert "RedisCleanupCompleted" in seen
    assert not clusters.warnings("ft", "RedisCleanupFailed")


def test_unreachable_redis_fails_the_job_and_the_cluster_still_goes(
    clusters, batch, namespace, run_operator
):
    run_operator(namespace)
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    clusters.create(ft_cluster("lost", dead))
    ready_with_finalizer(clusters, "lost")
    clusters.delete("lost")
    job = wait_job(batch, namespace, "lost")
    # Ray retries the connection 120 x 500 ms as the Job sets it; 4 tries fail the same
    # way, a minute sooner.
    run = run_cleanup_pod(
        clusters.core, job_pod(clusters.core, namespace, job.metadata.name),
        env_overrides={"RAY_redis_db_connect_retries": "4"},
    )  # fmt: skip
    assert run.exit_code != 0, run.output
    wait_gone(clusters, "lost")
    warning = clusters.wait_warning("lost", "RedisCleanupFailed")
    uid = job.metadata.owner_references[0].uid
    assert f"'{uid}'" in warning.message and "by hand" in warning.message
    assert "BackoffLimitExceeded" in warning.message  # the Job controller's verdict


def test_the_deletion_timeout_removes_the_finalizer_of_a_stuck_cleanup(
    clusters, batch, namespace, redis, run_operator
):
    """The Job never ends (its pod stays Running): after the annotation's 5 s the
    finalizer goes anyway, with a Warning naming the namespace left in Redis."""
    run_operator(namespace)
    timeout = {c.ANNOTATION_GCS_FT_DELETION_TIMEOUT: "5"}
    clusters.create(ft_cluster("stuck", redis.address, annotations=timeout))
    body = ready_with_finalizer(clusters, "stuck")
    storage = body["metadata"]["uid"]
    redis.seed(storage)
    clusters.delete("stuck")
    wait_job(batch, namespace, "stuck")
    wait_gone(clusters, "stuck", timeout=60)
    warning = clusters.wait_warning("stuck", "ForceDeletedStuckCluster")
    assert f"'{storage}'" in warning.message
    assert len(redis.keys(storage)) == 4  # nothing cleaned: the Warning says so


def test_operator_killed_mid_delete_creates_no_second_job(
    clusters, batch, namespace, redis, run_operator
):
    op = run_operator(namespace)
    clusters.create(ft_cluster("crash", redis.address))
    storage = ready_with_finalizer(clusters, "crash")["metadata"]["uid"]
    redis.seed(storage)
    clusters.delete("crash")
    job = wait_job(batch, namespace, "crash")
    op.kill()
    restarted = run_operator(namespace)
    # A fact that the new process has been through the cluster (the only one here): a
    # finished pass, and nothing queued.
    wait_for(
        lambda: restarted.metric("ray_operator_reconcile_duration_seconds_count") >= 1
        and restarted.metric("ray_operator_queue_depth") == 0,
        timeout=60, what="a finished pass of the restarted operator",
    )  # fmt: skip
    assert [j.metadata.uid for j in cleanup_jobs(batch, namespace, "crash")] == [job.metadata.uid]
    run = run_cleanup_pod(clusters.core, job_pod(clusters.core, namespace, job.metadata.name))
    assert run.exit_code == 0, run.output
    wait_gone(clusters, "crash")
    assert redis.keys(storage) == set()
    assert reasons(clusters, "crash").count("CreatedRedisCleanupJob") == 1
    assert not clusters.warnings("crash", "FailedToCreateRedisCleanupJob")


def test_a_finalizer_kuberay_added_is_honoured_after_migration(
    clusters, batch, namespace, redis, run_operator
):
    """A cluster KubeRay made fault tolerant the older way (annotation, the user's own
    RAY_REDIS_ADDRESS, a storage namespace annotation) and already finalized: this
    operator takes it over and cleans it up on delete."""
    body = raycluster("old", worker_group("cpu", 1))
    body["metadata"].update(
        annotations={c.ANNOTATION_FT_ENABLED: "true", c.ANNOTATION_EXTERNAL_STORAGE_NS: "old-ns"},
        finalizers=[GCS],
    )
    head = body["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    head["env"] = [{"name": "RAY_REDIS_ADDRESS", "value": f"redis://{redis.address}"}]
    clusters.create(body)  # before any operator runs, as KubeRay left it
    redis.seed("old-ns")
    redis.seed("another-cluster")
    run_operator(namespace)
    clusters.wait_state("old")
    assert clusters.get("old")["metadata"]["finalizers"] == [GCS]  # not added twice

    clusters.delete("old")
    job = wait_job(batch, namespace, "old")
    run = run_cleanup_pod(clusters.core, job_pod(clusters.core, namespace, job.metadata.name))
    assert run.exit_code == 0, run.output
    wait_gone(clusters, "old")
    assert redis.keys("old-ns") == set()
    assert len(redis.keys("another-cluster")) == 4


def test_cleanup_switched_off_adds_no_finalizer_and_frees_a_finalized_cluster(
    clusters, batch, namespace, redis, run_operator
):
    run_operator(namespace, extra_args=["--no-gcs-ft-redis-cleanup"])
    clusters.create(ft_cluster("plain", redis.address))
    clusters.wait_state("plain")
    clusters.settle("plain")  # a pass that provably ran: it added no finalizer
    assert GCS not in (clusters.get("plain")["metadata"].get("finalizers") or [])
    finalized = ft_cluster("kept", redis.address, finalizers=[GCS])  # e.g. from KubeRay
    clusters.create(finalized)
    clusters.wait_state("kept")
    clusters.delete("kept")
    wait_gone(clusters, "kept")
    assert cleanup_jobs(batch, namespace, "kept") == []
    warning = clusters.wait_warning("kept", "RedisCleanupDisabled")
    assert "by hand" in warning.message


def test_the_lifecycle_under_the_charts_rbac(
    helm_cli: Helm, chart_operators: ChartOperators, release_name: str,  # noqa: F811
    clusters, batch, namespace, redis, crd_installed,
):  # fmt: skip
    """The finalizer patch, the Job watch, list and create, as the chart's Role grants
    them (a single-namespace install): no denial anywhere."""
    values = {"crds": {"install": False}, "rbac": {"aggregateUserRoles": False},
              "watchNamespaces": [namespace]}  # fmt: skip
    helm_cli.install(release_name, namespace, values)
    proc = chart_operators.start(release_name, namespace)
    clusters.create(ft_cluster("charted", redis.address))
    storage = ready_with_finalizer(clusters, "charted")["metadata"]["uid"]
    redis.seed(storage)
    clusters.delete("charted")
    job = wait_job(batch, namespace, "charted")
    run = run_cleanup_pod(clusters.core, job_pod(clusters.core, namespace, job.metadata.name))
    assert run.exit_code == 0, run.output
    wait_gone(clusters, "charted")
    assert redis.keys(storage) == set()
    chart_operators.assert_alive(proc)
    chart_operators.assert_no_denials()
    assert f"watch /apis/batch/v1/namespaces/{namespace}/jobs failed" not in proc.log_tail(100_000)


def test_other_finalizers_are_kept_when_ours_is_added_and_removed(
    clusters, batch, namespace, redis, run_operator
):
    run_operator(namespace)
    other = "example.com/keep"
    clusters.create(ft_cluster("both", redis.address, finalizers=[other]))
    body = ready_with_finalizer(clusters, "both")
    assert body["metadata"]["finalizers"] == [other, GCS]
    clusters.delete("both")
    job = wait_job(batch, namespace, "both")
    run = run_cleanup_pod(clusters.core, job_pod(clusters.core, namespace, job.metadata.name))
    assert run.exit_code == 0, run.output
    wait_for(lambda: clusters.get("both")["metadata"]["finalizers"] == [other], timeout=60,
             what="our finalizer removed, the other kept")  # fmt: skip
    clusters.patch("both", {"metadata": {"finalizers": None}})
    wait_gone(clusters, "both")


def test_a_job_the_api_server_refuses_is_reported_once_and_the_timeout_frees_the_cluster(
    clusters, batch, namespace, redis, run_operator
):
    """A quota allows no Job: one Warning naming the refusal (not one per retry), and
    the deletion timeout ends the wait."""
    clusters.core.create_namespaced_resource_quota(namespace, client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name="no-jobs"),
        spec=client.V1ResourceQuotaSpec(hard={"count/jobs.batch": "0"}),
    ))  # fmt: skip
    run_operator(namespace)
    timeout = {c.ANNOTATION_GCS_FT_DELETION_TIMEOUT: "8"}
    clusters.create(ft_cluster("quota", redis.address, annotations=timeout))
    ready_with_finalizer(clusters, "quota")
    clusters.delete("quota")
    warning = clusters.wait_warning("quota", "FailedToCreateRedisCleanupJob")
    assert "quota-redis-cleanup" in warning.message and "exceeded quota" in warning.message
    wait_gone(clusters, "quota")
    clusters.wait_warning("quota", "ForceDeletedStuckCluster")
    assert len(clusters.warnings("quota", "FailedToCreateRedisCleanupJob")) == 1
    assert cleanup_jobs(batch, namespace, "quota") == []


def test_a_head_spec_no_job_can_be_built_from_frees_the_cluster_at_once(
    clusters, batch, namespace, redis, run_operator
):
    run_operator(namespace)
    body = ft_cluster("broken", redis.address)
    body["spec"]["headGroupSpec"]["rayStartParams"] = {"num-cpus": "0.5"}
    clusters.create(body)
    clusters.wait_warning("broken", "InvalidHeadGroupSpec")
    wait_for(lambda: GCS in (clusters.get("broken")["metadata"].get("finalizers") or []),
             timeout=30, what="the finalizer")  # fmt: skip
    clusters.delete("broken")
    wait_gone(clusters, "broken")
    warning = clusters.wait_warning("broken", "FailedToCreateRedisCleanupJob")
    assert 'spec.headGroupSpec.rayStartParams["num-cpus"]' in warning.message
    assert cleanup_jobs(batch, namespace, "broken") == []
