"""Faults on the local control plane: with etcd down or the API server killed for a
while, every pod stays (or is again) Ready; pause, restart and stop work on single
components, paused ones included; and the fault proxy stalls a pooled connection.

These tests break their control plane on purpose, so they start their own (one for
the module, or one per test) instead of using the session's."""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import urllib3
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from ray_operator_dev.devcluster import ControlPlane, stop_from_state
from tests.faultproxy import FaultProxy, kubeconfig_via
from tests.kubehelpers import wait_for, wait_for_default_service_account

OUTAGE = 30.0  # how long a component stays down: the fault itself
# Before the fix, kube-controller-manager marked every pod Ready=False once it had not
# seen a node lease renewed for its 50 s node-monitor-grace-period, counted from the
# start of the outage. The pods must stay Ready well past that point.
HOLD_UNTIL_AFTER_FAULT = 50.0 + 25.0
CALL = 5  # seconds: bound on every API call made while the control plane recovers
REPLICAS = 3


@pytest.fixture(scope="module")
def own_cp() -> Iterator[ControlPlane]:
    cp = ControlPlane.in_temp_dir().start()
    yield cp
    cp.cleanup()


@pytest.fixture
def admin(own_cp: ControlPlane, request: pytest.FixtureRequest) -> Iterator[client.ApiClient]:
    """An admin client for the module's control plane; component log tails are
    printed if the test failed (teardown output is shown with the failure)."""
    failed_before = request.session.testsfailed
    api = config.new_client_from_config(config_file=str(own_cp.kubeconfig))
    yield api
    api.close()
    if request.session.testsfailed > failed_before:
        for component in ("kube-apiserver", "kube-controller-manager", "kwok", "etcd"):
            print(f"--- {component} log (tail) ---\n{own_cp.log_tail(component, 40)}")


@pytest.fixture
def workload(admin: client.ApiClient) -> Iterator[str]:
    """A namespace with a Deployment of REPLICAS pods and one bare pod, all Ready."""
    core, apps = client.CoreV1Api(admin), client.AppsV1Api(admin)
    ns = f"faults-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns}})
    wait_for_default_service_account(core, ns)
    apps.create_namespaced_deployment(ns, _deployment(REPLICAS))
    core.create_namespaced_pod(ns, {"metadata": {"name": "bare"}, "spec": _pod_spec()})
    wait_for(lambda: _all_ready(core, ns, REPLICAS + 1), timeout=60, what="pods Ready")
    yield ns
    core.delete_namespace(ns, _request_timeout=CALL)


def test_client_through_proxy_stalls_on_blackholed_pooled_connection(
    own_cp: ControlPlane, admin: client.ApiClient, tmp_path: Path
):
    with FaultProxy("127.0.0.1", own_cp.ports["apiserver"]) as proxy:
        kubeconfig = kubeconfig_via(proxy, own_cp.kubeconfig, tmp_path / "proxy.kubeconfig")
        old = _client(kubeconfig)
        try:
            assert client.CoreV1Api(old).list_namespace(_request_timeout=CALL).items
            assert (proxy.accepted, proxy.open_connections) == (1, 1)  # now pooled
            proxy.blackhole_existing()
            started = time.monotonic()
            with pytest.raises(urllib3.exceptions.ReadTimeoutError):
                client.CoreV1Api(old).list_namespace(_request_timeout=(2, 2))
            assert 1.5 < time.monotonic() - started < 10
            assert proxy.accepted == 1  # the call went down the pooled connection
        finally:
            old.close()
        fresh = _client(kubeconfig)
        try:
            assert client.CoreV1Api(fresh).list_namespace(_request_timeout=CALL).items
            assert proxy.accepted == 2
        finally:
            fresh.close()


def test_pods_stay_ready_through_an_etcd_outage(
    own_cp: ControlPlane, admin: client.ApiClient, workload: str
):
    core = client.CoreV1Api(admin)
    before = _pod_uids(core, workload)
    fault_started = time.monotonic()
    own_cp.stop_component("etcd")
    wait_for(lambda: not own_cp.healthy("kube-apiserver"), timeout=30, what="readyz failing")
    _outage(fault_started)
    own_cp.restart("etcd")
    own_cp.wait_healthy("kube-apiserver", timeout=60)
    _recovered(admin, workload, before, fault_started)


def test_pods_stay_ready_after_the_api_server_is_killed(
    own_cp: ControlPlane, admin: client.ApiClient, workload: str
):
    core = client.CoreV1Api(admin)
    before = _pod_uids(core, workload)
    old_pid = own_cp.processes["kube-apiserver"].pid
    fault_started = time.monotonic()
    own_cp.kill("kube-apiserver")
    assert not own_cp.running("kube-apiserver")
    assert "kube-apiserver" not in _recorded_pids(own_cp)
    _outage(fault_started)
    own_cp.restart("kube-apiserver")  # same port and certificates: same kubeconfig
    new_pid = own_cp.processes["kube-apiserver"].pid
    assert new_pid != old_pid
    assert _recorded_pids(own_cp)["kube-apiserver"] == new_pid
    _recovered(admin, workload, before, fault_started)


def test_pause_hangs_the_api_server_until_resumed(own_cp: ControlPlane):
    api = _client(own_cp.kubeconfig)
    try:
        own_cp.pause("kube-apiserver")
        try:
            # The kernel still accepts the connection; nothing answers on it.
            with pytest.raises(urllib3.exceptions.TimeoutError):
                client.CoreV1Api(api).list_namespace(_request_timeout=(2, 2))
        finally:
            own_cp.resume("kube-apiserver")
        listed = wait_for(
            _tolerant(lambda: client.CoreV1Api(api).list_namespace(_request_timeout=CALL)),
            timeout=30,
            what="the API server answering again",
        )
        assert listed.items
    finally:
        api.close()


def test_restarted_kwok_takes_over_the_nodes_at_once(own_cp: ControlPlane, admin: client.ApiClient):
    """kwok's node leases are off: a new kwok (a new identity) need not wait for the old
    one's leases to expire (40 s) before it runs pods."""
    old_pid = own_cp.processes["kwok"].pid
    own_cp.restart("kwok")
    assert own_cp.processes["kwok"].pid != old_pid
    assert _recorded_pids(own_cp)["kwok"] == own_cp.processes["kwok"].pid
    core = client.CoreV1Api(admin)
    name = f"after-kwok-restart-{uuid.uuid4().hex[:6]}"
    core.create_namespaced_pod("default", {"metadata": {"name": name}, "spec": _pod_spec()})
    try:
        wait_for(
            lambda: _pod_ready(core.read_namespaced_pod(name, "default")),
            timeout=20,
            what="a new pod Ready soon after kwok restarted",
        )
    finally:
        core.delete_namespaced_pod(name, "default")


def test_stop_stops_paused_components():
    """`stop()` resumes a paused process before SIGTERM: it exits by itself instead of
    being SIGKILLed after the timeout; the state file then records no pid."""
    cp = ControlPlane.in_temp_dir().start()
    try:
        cp.pause("kwok")
        cp.pause("kube-controller-manager")
        procs = dict(cp.processes)
        cp.stop()
        assert all(p.returncode is not None for p in procs.values())
        for name in ("kwok", "kube-controller-manager"):
            assert procs[name].returncode != -signal.SIGKILL, name
        assert json.loads(cp.state_file.read_text())["pids"] == {}
    finally:
        cp.cleanup()


def test_devcluster_down_stops_paused_components():
    """`stop_from_state` (what `devcluster down` runs from another process) also stops
    a paused process, and uses the pid recorded by the latest restart."""
    cp = ControlPlane.in_temp_dir().start()
    try:
        cp.restart("kube-scheduler")
        cp.pause("kube-scheduler")
        procs = dict(cp.processes)
        stopped = stop_from_state(cp.root)
        assert sorted(stopped) == sorted(procs)
        for name, proc in procs.items():
            assert proc.wait(timeout=10) is not None, name
        assert procs["kube-scheduler"].returncode != -signal.SIGKILL
    finally:
        cp.cleanup()


# -- helpers -------------------------------------------------------------------------


def _outage(fault_started: float) -> None:
    """The fault lasts OUTAGE seconds: a duration, not a synchronisation."""
    time.sleep(max(0.0, OUTAGE - (time.monotonic() - fault_started)))


def _recovered(admin: client.ApiClient, ns: str, before: dict[str, str], since: float) -> None:
    """The same pods (none replaced) are all Ready on Ready, untainted nodes, stay so
    past the point where the node lifecycle controller used to flip them, and the
    control plane still schedules and starts new pods."""
    core, apps = client.CoreV1Api(admin), client.AppsV1Api(admin)
    wait_for(_tolerant(lambda: _all_ready(core, ns, REPLICAS + 1)), timeout=60, what="Ready")
    wait_for(_tolerant(lambda: _nodes_ready(core)), timeout=60, what="nodes Ready")
    assert _pod_uids(core, ns) == before
    hold_until = since + HOLD_UNTIL_AFTER_FAULT
    while time.monotonic() < hold_until:
        assert _all_ready(core, ns, REPLICAS + 1), _describe(core, ns)
        assert _nodes_ready(core), [n.status.conditions for n in core.list_node().items]
        time.sleep(1)
    apps.patch_namespaced_deployment_scale(
        "web", ns, {"spec": {"replicas": REPLICAS + 1}}, _request_timeout=CALL
    )
    wait_for(lambda: _all_ready(core, ns, REPLICAS + 2), timeout=60, what="scaled up Ready")


def _tolerant(predicate: Callable[[], object]) -> Callable[[], object]:
    """While the API server recovers a call may fail: that is a 'not yet'."""

    def poll() -> object:
        try:
            return predicate()
        except (ApiException, urllib3.exceptions.HTTPError, OSError):
            return None

    return poll


def _all_ready(core: client.CoreV1Api, ns: str, count: int) -> bool:
    pods = core.list_namespaced_pod(ns, _request_timeout=CALL).items
    return len(pods) == count and all(_pod_ready(p) for p in pods)


def _pod_ready(pod: client.V1Pod) -> bool:
    return pod.status.phase == "Running" and any(
        c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or [])
    )


def _nodes_ready(core: client.CoreV1Api) -> bool:
    nodes = core.list_node(_request_timeout=CALL).items
    return bool(nodes) and all(
        not n.spec.taints
        and any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
        for n in nodes
    )


def _pod_uids(core: client.CoreV1Api, ns: str) -> dict[str, str]:
    pods = core.list_namespaced_pod(ns, _request_timeout=CALL).items
    return {p.metadata.name: p.metadata.uid for p in pods}


def _describe(core: client.CoreV1Api, ns: str) -> list[tuple[str, str, list]]:
    return [
        (p.metadata.name, p.status.phase, [(c.type, c.status) for c in p.status.conditions])
        for p in core.list_namespaced_pod(ns, _request_timeout=CALL).items
    ]


def _recorded_pids(cp: ControlPlane) -> dict[str, int]:
    return json.loads(cp.state_file.read_text())["pids"]


def _client(kubeconfig: Path) -> client.ApiClient:
    """A client without urllib3's retries: a GET that times out would otherwise be
    retried on a new connection, which the proxy forwards, hiding the stall."""
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    cfg.retries = False
    return client.ApiClient(cfg)


def _pod_spec() -> dict:
    return {
        "containers": [
            {
                "name": "c",
                "image": "example.invalid/web:1",
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
            }
        ]
    }


def _deployment(replicas: int) -> dict:
    labels = {"app": "web"}
    return {
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": _pod_spec()},
        },
    }
