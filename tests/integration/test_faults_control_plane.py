"""The operator while the control plane itself fails: the API server SIGKILLed in the
middle of a scale-up, etcd down for 30 s. Afterwards the pods are exactly what the spec
asks for, with no duplicate and no orphan, and the cluster is `ready` again.

These tests take their control plane down on purpose, so the module starts its own."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from ray_operator_dev.devcluster import ControlPlane
from tests.clusters import Clusters
from tests.kubehelpers import apply_crds, wait_for, wait_for_default_service_account
from tests.manifests import raycluster, worker_group
from tests.operator_process import OperatorProcess

REPO = Path(__file__).resolve().parents[2]
OUTAGE = 30.0  # how long etcd stays down: the fault itself


@pytest.fixture(scope="module")
def own_cp() -> Iterator[ControlPlane]:
    cp = ControlPlane.in_temp_dir().start()
    api = config.new_client_from_config(config_file=str(cp.kubeconfig))
    apply_crds(api, sorted((REPO / "crds").glob("*.yaml")))
    yield cp
    cp.cleanup()


@pytest.fixture
def setup(
    own_cp: ControlPlane, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Clusters, OperatorProcess]]:
    api = config.new_client_from_config(config_file=str(own_cp.kubeconfig))
    core = client.CoreV1Api(api)
    namespace = f"cp-faults-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": namespace}})
    wait_for_default_service_account(core, namespace)
    op = OperatorProcess(own_cp.kubeconfig, [namespace], tmp_path / "operator.log").start()
    failed_before = request.session.testsfailed
    yield Clusters(api, namespace), op
    op.stop()
    if request.session.testsfailed > failed_before:
        print(f"--- operator log (tail) ---\n{op.log_tail(80)}")
        for component in ("kube-apiserver", "etcd", "kwok"):
            print(f"--- {component} (tail) ---\n{own_cp.log_tail(component, 30)}")
    core.delete_namespace(namespace, _request_timeout=10)


def converged(clusters: Clusters, name: str, workers: int, timeout: float = 120) -> float:
    """Wait for exactly `workers` workers and one head, all Ready (`ready` state);
    return how long that took."""
    started = time.monotonic()
    clusters.wait_pods(name, workers, "cpu", timeout=timeout)
    clusters.wait_state(name, timeout=timeout)
    pods = clusters.pods(name, alive=False)
    assert len(pods) == workers + 1, [p.metadata.name for p in pods]
    return time.monotonic() - started


def set_replicas(clusters: Clusters, name: str, replicas: int) -> None:
    clusters.patch(
        name, [{"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": replicas}]
    )


def test_api_server_killed_mid_scale_up(own_cp, setup):
    clusters, op = setup
    clusters.create(raycluster("big", worker_group("cpu", 0)))
    converged(clusters, "big", 0)
    set_replicas(clusters, "big", 150)
    wait_for(lambda: len(clusters.pods("big")) > 20, interval=0.05, what="the scale-up under way")
    own_cp.kill("kube-apiserver")
    own_cp.restart("kube-apiserver")
    took = converged(clusters, "big", 150)
    print(f"150 workers ready {took:.1f}s after the API server came back")
    assert op.alive()


def test_etcd_down_for_30_seconds(own_cp, setup):
    clusters, op = setup
    clusters.create(raycluster("store", worker_group("cpu", 10)))
    converged(clusters, "store", 10)
    set_replicas(clusters, "store", 60)
    own_cp.stop_component("etcd")
    deadline = time.monotonic() + OUTAGE
    while time.monotonic() < deadline:  # the outage itself, not a wait for a fact
        time.sleep(1)
    own_cp.restart("etcd")
    own_cp.wait_healthy("kube-apiserver")
    took = converged(clusters, "store", 60)
    print(f"60 workers ready {took:.1f}s after etcd came back")
    assert op.alive()
