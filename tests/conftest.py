"""Shared fixtures. Tests under tests/integration/ run on a real local control plane.

Fixtures:
- `control_plane`: one ControlPlane for the whole session (etcd, API server, controller
  manager, scheduler, kwok with fake CPU and GPU nodes).
- `api_client`: an admin `kubernetes.client.ApiClient` for it.
- `namespace`: a fresh namespace per test (deleted afterwards).
- `sa_api_client(namespace, name)`: an ApiClient authenticated as that ServiceAccount
  with a real token from the TokenRequest API, for RBAC tests.
- `crd_installed`: the CRDs in `crds/` applied and Established.
On failure of a test that used the control plane, the component log tails are printed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from ray_operator_dev.devcluster import ControlPlane
from tests.clusters import Clusters
from tests.kubehelpers import (
    apply_crds,
    create_namespace,
    service_account_client,
    wait_for,
)
from tests.operator_process import OperatorProcess

REPO = Path(__file__).resolve().parent.parent
CALL_FAILED = pytest.StashKey[bool]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)
        if "/realnode/" in str(item.path):
            item.add_marker(pytest.mark.realnode)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    cp = ControlPlane.in_temp_dir(audit=True).start()
    yield cp
    cp.cleanup()


@pytest.fixture(scope="session")
def api_client(control_plane: ControlPlane) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(control_plane.kubeconfig))


@pytest.fixture
def namespace(api_client: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    core = client.CoreV1Api(api_client)
    base = request.node.name.lower().replace("_", "-")[:40].strip("-")
    name = f"{''.join(c for c in base if c.isalnum() or c == '-')}-{uuid.uuid4().hex[:6]}"
    yield create_namespace(core, name)
    core.delete_namespace(name)


@pytest.fixture
def clusters(api_client: client.ApiClient, namespace: str) -> Clusters:
    """RayClusters (and their pods and events) in the test's namespace."""
    return Clusters(api_client, namespace)


@pytest.fixture
def sa_api_client(api_client: client.ApiClient) -> Callable[[str, str], client.ApiClient]:
    def make(namespace: str, name: str) -> client.ApiClient:
        return service_account_client(api_client, namespace, name)

    return make


@pytest.fixture(scope="session")
def crd_installed(api_client: client.ApiClient) -> None:
    apply_crds(api_client, sorted((REPO / "crds").glob("*.yaml")))


@pytest.fixture
def run_operator(
    control_plane: ControlPlane, crd_installed: None, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., OperatorProcess]]:
    """Start `ray-operator run` as a separate process watching the given namespaces;
    every process started is stopped after the test, and its log attached on failure."""
    started: list[OperatorProcess] = []

    def start(
        *namespaces: str, extra_args: list[str] | None = None, kubeconfig: Path | None = None
    ) -> OperatorProcess:
        proc = OperatorProcess(
            kubeconfig or control_plane.kubeconfig,
            list(namespaces),
            tmp_path / f"operator-{len(started)}.log",
            extra_args=extra_args or [],
        ).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
    if request.node.stash.get(CALL_FAILED, False):
        for proc in started:  # printed in teardown: pytest shows it with the failure
            print(f"--- operator log {proc.log_path.name} (tail) ---\n{proc.log_tail(150)}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.failed and "control_plane" in getattr(item, "fixturenames", ()):
        cp = item.funcargs.get("control_plane") if hasattr(item, "funcargs") else None
        cp = cp or _session_control_plane(item)
        if cp is not None:
            for component in ("kube-apiserver", "kube-controller-manager", "kwok"):
                report.sections.append(
                    (f"{component} log (tail)", cp.log_tail(component, lines=40))
                )
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed
    return report


def _session_control_plane(item: pytest.Item) -> ControlPlane | None:
    try:
        return item._request.getfixturevalue("control_plane")  # type: ignore[attr-defined]
    except Exception:
        return None


__all__ = ["REPO", "wait_for"]
