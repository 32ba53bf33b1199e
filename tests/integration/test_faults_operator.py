"""Faults and hostile input that concern the operator alone, on the shared control
plane: strangers with a cluster's labels, a name that collides with an existing
ServiceAccount, children deleted behind the operator's back, a token revoked under
it, connections that go silent, and SIGKILL in the middle of a scale-down or a delete.

Faults that take the control plane itself down (API server, etcd) and leader election
live in test_faults_control_plane.py and test_faults_leader.py. Every wait is on a
fact (pods counted, an event, a status, a log line); each bound is stated where the
wait starts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from ray_operator import constants as c
from ray_operator_dev.devcluster import ControlPlane
from ray_operator_dev.devcluster.tokens import write_atomically
from tests.clusters import Clusters
from tests.faultproxy import FaultProxy, kubeconfig_via
from tests.kubehelpers import wait_for
from tests.manifests import raycluster, worker_group

ON = {"enableInTreeAutoscaling": True}
FAST = ["--watch-timeout=5", "--api-timeout=5"]  # silence detected within 5 + 15 s


@pytest.fixture
def core(api_client) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


def owned_workers(clusters: Clusters, name: str, group: str = "cpu") -> list[client.V1Pod]:
    """The pods of `name` that it controls (by ownerReference, not by label)."""
    uid = clusters.get(name)["metadata"]["uid"]
    return [
        p
        for p in clusters.core.list_namespaced_pod(
            clusters.ns, label_selector=f"{c.LABEL_GROUP}={group}"
        ).items
        if not p.metadata.deletion_timestamp
        and any(r.controller and r.uid == uid for r in p.metadata.owner_references or [])
    ]


def wait_owned(clusters: Clusters, name: str, count: int, timeout: float = 60) -> None:
    wait_for(
        lambda: len(owned_workers(clusters, name)) == count,
        timeout,
        what=f"{count} workers owned by {name}",
    )


def alive(core: client.CoreV1Api, namespace: str, name: str) -> bool:
    try:
        return core.read_namespaced_pod(name, namespace).metadata.deletion_timestamp is None
    except ApiException as err:
        if err.status == 404:
            return False
        raise


# -- ownership before labels ----------------------------------------------------------


def test_a_worker_relabelled_into_another_cluster(clusters, core, namespace, run_operator):
    """The cluster that lost it replaces it at once; the one it joined neither counts
    nor deletes it, and says so."""
    run_operator(namespace)
    clusters.create(raycluster("a", worker_group("cpu", 2)))
    clusters.create(raycluster("b", worker_group("cpu", 2)))
    moved = clusters.wait_pods("a", 2, "cpu")[0].metadata.name
    clusters.wait_pods("b", 2, "cpu")
    core.patch_namespaced_pod(moved, namespace, {"metadata": {"labels": {c.LABEL_CLUSTER: "b"}}})

    warning = clusters.wait_warning("b", "ForeignPodIgnored")
    assert moved in warning.message
    clusters.wait_pods("a", 2, "cpu")  # a made a new one: the moved pod no longer counts
    # A pass of b after the relabel that provably ran: it scales b to 3.
    clusters.patch(
        "b", [{"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 3}]
    )
    wait_owned(clusters, "b", 3)
    clusters.wait_state("b")
    assert alive(core, namespace, moved)  # never deleted by b
    assert len(clusters.pods("b", "cpu")) == 4  # 3 of b's own + the stranger
    assert clusters.get("b")["status"]["availableWorkerReplicas"] == 3


def test_a_hand_made_pod_with_worker_labels(clusters, core, namespace, run_operator):
    """A pod with a worker's labels and no ownerReference is not a worker: replicas 1
    makes one real worker, and scaling to 0 leaves the stranger alone."""
    labels = {c.LABEL_CLUSTER: "c", c.LABEL_NODE_TYPE: c.NODE_TYPE_WORKER, c.LABEL_GROUP: "cpu"}
    core.create_namespaced_pod(namespace, {
        "metadata": {"name": "impostor", "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    })  # fmt: skip
    run_operator(namespace)
    clusters.create(raycluster("c", worker_group("cpu", 1)))
    wait_owned(clusters, "c", 1)
    clusters.wait_state("c")
    assert "impostor" in clusters.wait_warning("c", "ForeignPodIgnored").message
    clusters.patch(
        "c", [{"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 0}]
    )
    wait_owned(clusters, "c", 0)
    wait_for(lambda: clusters.get("c").get("status", {}).get("desiredWorkerReplicas") == 0)
    clusters.wait_state("c")
    assert alive(core, namespace, "impostor")


def test_a_cluster_named_like_an_existing_service_account(
    clusters, namespace, run_operator, api_client
):
    """`default` exists in every namespace: binding the autoscaler's Role to it would
    give every pod in the namespace the right to patch pods and RayClusters."""
    run_operator(namespace)
    clusters.create(raycluster("default", worker_group("cpu", 1), **ON))
    warning = clusters.wait_warning("default", "AutoscalerRBACConflict")
    assert warning.message.startswith("metadata.name: ServiceAccount 'default' already exists")
    assert "serviceAccountName" in warning.message
    failure = wait_for(lambda: clusters.condition("default", c.COND_REPLICA_FAILURE))
    assert failure["reason"] == "AutoscalerRBACConflict"
    rbac = client.RbacAuthorizationV1Api(api_client)
    assert [r.metadata.name for r in rbac.list_namespaced_role(namespace).items] == []
    assert [b.metadata.name for b in rbac.list_namespaced_role_binding(namespace).items] == []
    review = client.AuthorizationV1Api(api_client).create_subject_access_review({
        "spec": {
            "user": f"system:serviceaccount:{namespace}:default",
            "resourceAttributes": {"namespace": namespace, "verb": "patch", "resource": "pods"},
        }
    })  # fmt: skip
    assert not review.status.allowed


# -- the periodic resync ----------------------------------------------------------------


def test_a_resync_restores_what_no_watch_reports(clusters, namespace, run_operator, api_client):
    """Nothing watches the autoscaler's RoleBinding: deleted by hand, it comes back at
    the next resync (every 2 s here)."""
    op = run_operator(namespace, extra_args=["--resync-seconds=2"])
    clusters.create(raycluster("r", worker_group("cpu", 1), **ON))
    clusters.wait_state("r")
    rbac = client.RbacAuthorizationV1Api(api_client)
    first = rbac.read_namespaced_role_binding("r", namespace).metadata.uid
    rbac.delete_namespaced_role_binding("r", namespace)

    def recreated() -> bool:
        try:
            return rbac.read_namespaced_role_binding("r", namespace).metadata.uid != first
        except ApiException as err:
            if err.status == 404:
                return False
            raise

    wait_for(recreated, timeout=30, what="the RoleBinding back")
    assert op.metric("ray_operator_resyncs_total") >= 1


# -- credentials that change under the operator ----------------------------------------


class BoundTokens:
    """TokenRequest tokens bound to a Secret each: deleting the Secret revokes the token
    at once, as expiry would (a real expiry takes 10 minutes at the least)."""

    def __init__(self, core: client.CoreV1Api, namespace: str, account: str) -> None:
        self.core, self.ns, self.account = core, namespace, account

    def issue(self, secret: str) -> str:
        created = self.core.create_namespaced_secret(
            self.ns, {"metadata": {"name": secret}, "type": "Opaque"}
        )
        spec = {
            "audiences": [],
            "expirationSeconds": 3600,
            "boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": secret,
                               "uid": created.metadata.uid},
        }  # fmt: skip
        return self.core.create_namespaced_service_account_token(
            self.account, self.ns, {"spec": spec}
        ).status.token

    def revoke(self, secret: str) -> None:
        self.core.delete_namespaced_secret(secret, self.ns)


@pytest.fixture
def operator_account(api_client, namespace) -> Iterator[str]:
    """A ServiceAccount with what a namespaced operator needs (test-only, generous)."""
    core, rbac = client.CoreV1Api(api_client), client.RbacAuthorizationV1Api(api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "op"}})
    subject = [{"kind": "ServiceAccount", "name": "op", "namespace": namespace}]
    binding = f"ray-operator-test-{namespace}"
    rbac.create_cluster_role_binding({
        "metadata": {"name": binding},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "cluster-admin"},
        "subjects": subject,
    })  # fmt: skip
    yield "op"
    rbac.delete_cluster_role_binding(binding)


def test_a_revoked_token_is_replaced_from_its_file(
    clusters, core, namespace, control_plane, operator_account, tmp_path, run_operator
):
    tokens = BoundTokens(core, namespace, operator_account)
    token_file = tmp_path / "token"
    write_atomically(token_file, tokens.issue("t1"))
    kubeconfig = tmp_path / "op.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "op",
        "clusters": [{"name": "local", "cluster": {
            "server": control_plane.server,
            "certificate-authority": str(control_plane.pki.ca_cert)}}],
        "users": [{"name": "op", "user": {"tokenFile": str(token_file)}}],
        "contexts": [{"name": "op", "context": {"cluster": "local", "user": "op"}}],
    }))  # fmt: skip
    op = run_operator(namespace, kubeconfig=kubeconfig, extra_args=[*FAST, "--resync-seconds=0"])
    clusters.create(raycluster("t", worker_group("cpu", 1)))
    clusters.wait_state("t")

    # Rotated, then the old token revoked: the next calls use the new one.
    write_atomically(token_file, tokens.issue("t2"))
    tokens.revoke("t1")
    scale(clusters, "t", 2)
    scale(clusters, "t", 3)

    # Revoked before the file is rotated: calls fail with 401 until it is. Every
    # request reads the file, watches included: the RayCluster watch, refused when it
    # renews (5 s), brings the next spec change only with the new token (no resync).
    tokens.revoke("t2")
    wait_for(lambda: "401" in op.log_tail(400), timeout=60, what="a refused call")
    write_atomically(token_file, tokens.issue("t3"))
    scale(clusters, "t", 1)
    assert op.alive(), op.log_tail(60)


def set_replicas(clusters: Clusters, name: str, replicas: int) -> None:
    clusters.patch(
        name, [{"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": replicas}]
    )


def scale(clusters: Clusters, name: str, replicas: int, timeout: float = 60) -> None:
    set_replicas(clusters, name, replicas)
    clusters.wait_pods(name, replicas, "cpu", timeout=timeout)
    clusters.wait_state(name, timeout=timeout)


# -- connections that go silent ---------------------------------------------------------


@pytest.fixture
def proxy(control_plane: ControlPlane) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", control_plane.ports["apiserver"]) as proxy:
        yield proxy


def test_silently_dropped_connections(
    clusters, core, namespace, control_plane, proxy, tmp_path, run_operator
):
    """A NAT or load balancer that forgets its connections: nothing is closed, nothing
    arrives. Every wait of the operator is bounded, so it notices (watch timeout 5 s +
    15 s of read slack) and carries on over new connections."""
    kubeconfig = kubeconfig_via(proxy, control_plane.kubeconfig, tmp_path / "proxied")
    op = run_operator(namespace, kubeconfig=kubeconfig, extra_args=[*FAST, "--resync-seconds=0"])
    clusters.create(raycluster("s", worker_group("cpu", 1)))
    clusters.wait_state("s")

    proxy.blackhole_existing()
    started = time.monotonic()
    scale(clusters, "s", 3, timeout=90)  # a spec change
    print(f"spec change applied {time.monotonic() - started:.1f}s after the drop")
    victim = clusters.pods("s", "cpu")[0].metadata.name
    core.delete_namespaced_pod(victim, namespace, grace_period_seconds=0)
    wait_for(lambda: not alive(core, namespace, victim), what="the victim gone")
    clusters.wait_pods("s", 3, "cpu")  # a deleted worker replaced
    clusters.wait_state("s")

    # Nothing gets through at all: /healthz fails within its bound (2 x 20 s) and
    # names the watches, then recovers with the network.
    proxy.blackhole_all()
    started = time.monotonic()
    _, body = wait_for(
        lambda: (r := op.healthz())[0] == 500 and r, timeout=90, what="/healthz failing"
    )
    print(f"/healthz failed {time.monotonic() - started:.1f}s into the outage: {body}")
    # Any watch may trip first; the eventless ones (Jobs, RayJobs) have the least lead.
    assert any(p.startswith("watch /") and f"/namespaces/{namespace}/" in p
               for p in body["problems"])  # fmt: skip
    assert op.metric("ray_operator_stalled") == 1
    proxy.forward()
    wait_for(lambda: op.healthz()[0] == 200, timeout=90, what="/healthz healthy again")
    scale(clusters, "s", 1, timeout=90)
    assert op.alive()


# -- SIGKILL in the middle of things --------------------------------------------------


def test_sigkill_mid_scale_down(clusters, namespace, run_operator):
    op = run_operator(namespace)
    clusters.create(raycluster("down", worker_group("cpu", 60)))
    clusters.wait_state("down", timeout=120)
    set_replicas(clusters, "down", 10)
    wait_for(lambda: len(clusters.pods("down", "cpu")) < 60, what="the scale-down started")
    op.kill()
    run_operator(namespace)
    wait_owned(clusters, "down", 10, timeout=90)
    clusters.wait_state("down")
    pods = clusters.pods("down")
    assert len(pods) == 11 and len({p.metadata.name for p in pods}) == 11


def test_sigkill_mid_delete_behind_the_idle_finalizer(clusters, namespace, run_operator):
    """Ray's autoscaler deletes an idle cluster behind a finalizer that the operator
    removes once the pods are gone: a crash half way must neither strand the cluster
    nor leave pods behind."""
    op = run_operator(namespace)
    body = raycluster("idle", worker_group("cpu", 40))
    body["metadata"]["finalizers"] = [c.IDLE_TERMINATION_FINALIZER]
    clusters.create(body)
    clusters.wait_state("idle", timeout=120)
    clusters.delete("idle")
    wait_for(lambda: len(clusters.pods("idle")) < 41, what="the pods going")
    op.kill()
    run_operator(namespace)

    def gone() -> bool:
        try:
            clusters.get("idle")
            return False
        except ApiException as err:
            return err.status == 404

    wait_for(gone, timeout=90, what="the RayCluster gone")
    wait_for(lambda: clusters.pods("idle", alive=False) == [], timeout=90, what="no pods left")


def test_delete_with_the_operator_dead_leaves_nothing(clusters, namespace, run_operator):
    op = run_operator(namespace)
    clusters.create(raycluster("orphan", worker_group("cpu", 5), **ON))
    clusters.wait_state("orphan")
    op.kill()
    clusters.delete("orphan")
    wait_for(lambda: clusters.pods("orphan", alive=False) == [], timeout=90, what="GC done")
    run_operator(namespace)
    # A fact that the restarted operator has listed and reconciled: a new cluster ready.
    clusters.create(raycluster("after", worker_group("cpu", 1)))
    clusters.wait_state("after")
    assert clusters.pods("orphan", alive=False) == []


def not_found_gets(control_plane: ControlPlane) -> float:
    """RayCluster GETs the API server answered 404 (any client), from its /metrics."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in control_plane.metrics().splitlines()
        if line.startswith("apiserver_request_total{")
        and 'code="404"' in line
        and 'resource="rayclusters"' in line
        and 'verb="GET"' in line
    )


def test_deleted_clusters_cost_at_most_one_lookup_each(
    clusters, namespace, run_operator, control_plane
):
    """Garbage collection deleting a cluster's pods used to wake it for every pod: about
    five 404 GETs per deleted cluster. Now its uid is remembered and those wakes dropped."""
    run_operator(namespace)
    names = [f"gone{i}" for i in range(5)]
    for name in names:
        clusters.create(raycluster(name, worker_group("cpu", 3)))
    for name in names:
        clusters.wait_state(name)
    before = not_found_gets(control_plane)
    for name in names:
        clusters.delete(name)
    wait_for(
        lambda: not clusters.core.list_namespaced_pod(namespace).items,
        timeout=90,
        what="every pod collected",
    )
    # A pass that provably ran after every deletion event: a new cluster reconciled.
    clusters.create(raycluster("after", worker_group("cpu", 1)))
    clusters.wait_state("after")
    lookups = not_found_gets(control_plane) - before
    print(f"404 GETs for {len(names)} deleted clusters: {lookups:.0f}")
    assert lookups <= len(names)
