"""GCS fault-tolerant RayClusters migrated from KubeRay's own operator (v1.6.1, the
test peer): the finalizer KubeRay added, and the cleanup Job KubeRay already started,
are finished by this operator with a real Redis (tests/redis_cleanup_harness.py).

A control plane of its own: KubeRay's CRDs replace ours while it runs. The migration
is what a user does: stop KubeRay, install ours (its CRD), start ours."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from ray_operator_dev import kuberay
from ray_operator_dev.devcluster import ControlPlane
from tests.clusters import Clusters
from tests.conftest import REPO
from tests.integration.test_gcs_ft_cleanup import (
    GCS,
    cleanup_jobs,
    ft_cluster,
    reasons,
    wait_gone,
    wait_job,
)
from tests.kubehelpers import apply_crds, create_namespace, wait_for
from tests.operator_process import OperatorProcess
from tests.redis_cleanup_harness import MISSING, RedisServer, job_pod, redis_server, run_cleanup_pod

pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


@pytest.fixture(scope="module")
def plane() -> Iterator[ControlPlane]:
    with ControlPlane.in_temp_dir().start() as cp:
        yield cp


@pytest.fixture
def api(plane: ControlPlane) -> client.ApiClient:
    return config.new_client_from_config(str(plane.kubeconfig))


@pytest.fixture
def ns(api: client.ApiClient) -> Iterator[str]:
    core = client.CoreV1Api(api)
    name = f"migrate-{uuid.uuid4().hex[:6]}"
    yield create_namespace(core, name)
    core.delete_namespace(name)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as server:
        yield server


class Peers:
    """KubeRay, then ours, on the module's control plane; logs shown on failure."""

    def __init__(self, plane: ControlPlane, api: client.ApiClient, tmp_path: Path) -> None:
        self.plane, self.api, self.tmp_path = plane, api, tmp_path
        self.kuberay: kuberay.KubeRayProcess | None = None
        self.ours: OperatorProcess | None = None

    def start_kuberay(self, namespace: str) -> None:
        apply_crds(self.api, kuberay.crd_files())
        self.kuberay = kuberay.KubeRayProcess(
            self.plane.kubeconfig, self.tmp_path / "kuberay.log", namespaces=[namespace],
            lease_namespace=namespace,
        ).start()  # fmt: skip
        wait_for(self.kuberay.ready, timeout=60, what="KubeRay's readyz")

    def migrate(self, namespace: str) -> OperatorProcess:
        """Stop KubeRay, install our CRD, start ours; returns once it has been through
        the namespace's clusters (a finished pass, nothing queued)."""
        assert self.kuberay is not None
        self.kuberay.stop()
        apply_crds(self.api, sorted((REPO / "crds").glob("*.yaml")))
        self.ours = OperatorProcess(
            self.plane.kubeconfig, [namespace], self.tmp_path / "ours.log"
        ).start()
        ours = self.ours
        wait_for(
            lambda: ours.metric("ray_operator_reconcile_duration_seconds_count") >= 1
            and ours.metric("ray_operator_queue_depth") == 0,
            timeout=60, what="a finished pass of our operator",
        )  # fmt: skip
        return ours

    def stop(self) -> None:
        for proc in (self.kuberay, self.ours):
            if proc is not None:
                proc.stop()
                print(f"--- {proc.log_path.name} (tail) ---\n{proc.log_tail(80)}")


@pytest.fixture
def peers(plane: ControlPlane, api: client.ApiClient, tmp_path: Path) -> Iterator[Peers]:
    p = Peers(plane, api, tmp_path)
    yield p
    p.stop()


def kuberay_finalized(clusters: Clusters, name: str) -> dict:
    def finalized() -> dict | None:
        body = clusters.get(name)
        ready = len(clusters.pods(name)) == 2
        return body if ready and GCS in (body["metadata"].get("finalizers") or []) else None

    return wait_for(finalized, timeout=60, what=f"KubeRay's finalizer on {name} and its pods")


def test_a_finalizer_kuberay_added_is_honoured_by_our_operator(
    api, ns, redis, peers: Peers
) -> None:
    clusters = Clusters(api, ns)
    peers.start_kuberay(ns)
    clusters.create(ft_cluster("legacy", redis.address))
    storage = kuberay_finalized(clusters, "legacy")["metadata"]["uid"]
    redis.seed(storage)
    redis.seed("another-cluster")
    peers.migrate(ns)
    assert clusters.get("legacy")["metadata"]["finalizers"] == [GCS]  # kept, not doubled

    clusters.delete("legacy")
    job = wait_job(client.BatchV1Api(api), ns, "legacy")
    run = run_cleanup_pod(clusters.core, job_pod(clusters.core, ns, job.metadata.name))
    assert run.exit_code == 0, run.output
    wait_gone(clusters, "legacy")
    assert redis.keys(storage) == set()
    assert len(redis.keys("another-cluster")) == 4
    assert "CreatedRedisCleanupJob" in reasons(clusters, "legacy")


def test_a_cleanup_job_kuberay_started_is_finished_by_our_operator(
    api, ns, redis, peers: Peers
) -> None:
    """KubeRay deleted the pods and created its Job, then was replaced: ours follows
    that Job (KubeRay's own command, run against the real Redis) and creates none."""
    clusters = Clusters(api, ns)
    batch = client.BatchV1Api(api)
    peers.start_kuberay(ns)
    clusters.create(ft_cluster("midway", redis.address))
    storage = kuberay_finalized(clusters, "midway")["metadata"]["uid"]
    redis.seed(storage)
    clusters.delete("midway")
    theirs = wait_job(batch, ns, "midway")
    peers.migrate(ns)
    assert [j.metadata.uid for j in cleanup_jobs(batch, ns, "midway")] == [theirs.metadata.uid]

    run = run_cleanup_pod(clusters.core, job_pod(clusters.core, ns, theirs.metadata.name))
    assert run.exit_code == 0, run.output
    wait_gone(clusters, "midway")
    assert redis.keys(storage) == set()

    def ours() -> list:
        return [e for e in clusters.events("midway") if e.reporting_component == "ray-operator"]

    # Events are posted off the pass, so the last one may land after the cluster is gone.
    wait_for(lambda: "RedisCleanupCompleted" in [e.reason for e in ours()],
             what="our RedisCleanupCompleted event")  # fmt: skip
    assert not [e for e in ours() if e.reason in ("CreatedRedisCleanupJob",
                                                  "FailedToCreateRedisCleanupJob")]  # fmt: skip
