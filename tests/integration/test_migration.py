"""Migration from KubeRay and back, as `docs/migration.md` tells a user to do it, with
KubeRay v1.6.1's own operator (built from its Go module, run with its chart's default
flags) on a control plane of its own (KubeRay's CRDs replace ours).

1. KubeRay runs clusters of every kind until they are ready; then it is stopped.
2. `helm install --take-ownership` of our chart adopts the `rayclusters.ray.io` CRD; our
   operator runs with the chart's arguments and ServiceAccount. Not one pod is created
   or deleted (the API server's audit log, and the same uids), KubeRay's Services,
   Secret, autoscaler RBAC and finalizer stay, Recreate clusters are stamped, and the
   status is right. Ours then scales the adopted clusters.
3. Back: ours stopped and uninstalled, KubeRay's CRDs applied again, KubeRay started.
   Again no pod is touched, except in a Recreate cluster whose spec changed while ours
   ran: KubeRay restarts that one whole, by its own rule.

Each phase is a module-scoped fixture that acts and records what it saw; the tests
assert on the records, in order.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from ray_operator import constants as c
from ray_operator_dev import kuberay
from ray_operator_dev.devcluster import ControlPlane
from tests.chart.render import CHART, helm, tool
from tests.clusters import Clusters
from tests.integration.test_chart import ChartOperators
from tests.kubehelpers import apply_crds, wait_for, wait_for_default_service_account
from tests.manifests import raycluster, worker_group
from tests.operator_process import OperatorProcess

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
NS = "team-a"
RELEASE, CHART_NS = "rop", "ray-system"  # the chart's Deployment: rop-ray-operator
GCS_FT_FINALIZER = "ray.io/gcs-ft-redis-cleanup-finalizer"
KUBERAY_HASH = "ray.io/upgrade-strategy-recreate-hash"
OUR_HASH = c.ANNOTATION_TEMPLATE_HASH
OTHER_KUBERAY_CRDS = ("rayjobs.ray.io", "rayservices.ray.io", "raycronjobs.ray.io")
WRITES = {"create", "update", "patch", "delete", "deletecollection"}
RECREATE = {"type": "Recreate"}
CHILD_KINDS = ("services", "secrets", "serviceaccounts", "roles", "rolebindings")


def small_group(name: str, replicas: int, **extra: Any) -> dict[str, Any]:
    return worker_group(name, replicas, cpu="500m", memory="1Gi", **extra)


def every_kind() -> dict[str, dict[str, Any]]:
    """One RayCluster of each kind a KubeRay user runs, by name."""
    customsvc = raycluster("customsvc", small_group("cpu", 1))
    customsvc["spec"]["headGroupSpec"]["headService"] = {"metadata": {"name": "customsvc-head"}}
    gcs = {"redisAddress": "127.0.0.1:6379"}  # never dialled: kwok runs no container
    return {
        "plain": raycluster(
            "plain", small_group("cpu", 2), worker_group("gpu", 1, cpu="1", memory="2Gi", gpu=1)
        ),
        "recreate": raycluster("recreate", small_group("cpu", 1), upgradeStrategy=RECREATE),
        # a Recreate cluster whose worker template will change while ours runs
        "recreate-changed": raycluster(
            "recreate-changed", small_group("cpu", 1), upgradeStrategy=RECREATE
        ),
        "multihost": raycluster("multihost", small_group("tpu", 1, numOfHosts=2)),
        "recreate-multihost": raycluster(
            "recreate-multihost", small_group("tpu", 1, numOfHosts=2), upgradeStrategy=RECREATE
        ),
        "auth": raycluster("auth", small_group("cpu", 1), authOptions={"mode": "token"}),
        "customsvc": customsvc,
        "autoscaled": raycluster("autoscaled", small_group("cpu", 1), enableInTreeAutoscaling=True),
        "suspended": raycluster("suspended", small_group("cpu", 1), suspend=True),
        "gcsft": raycluster("gcsft", small_group("cpu", 1), gcsFaultToleranceOptions=gcs),
    }  # fmt: skip


# The pods (head and workers) each cluster starts with.
PODS = {"plain": 4, "recreate": 2, "recreate-changed": 2, "multihost": 3,
        "recreate-multihost": 3, "auth": 2, "customsvc": 2, "autoscaled": 2, "suspended": 0,
        "gcsft": 2}  # fmt: skip
RECREATE_CLUSTERS = ("recreate", "recreate-changed", "recreate-multihost")


# -- what a phase records --------------------------------------------------------------------


@dataclass
class Snapshot:
    """Every object of the namespace that a migration must keep, by name -> uid."""

    pods: dict[str, str]
    children: dict[str, dict[str, tuple[str, str | None]]]  # kind -> name -> (uid, controller)
    rayclusters: dict[str, dict[str, Any]]
    pod_objects: dict[str, client.V1Pod] = field(repr=False)

    def pods_of(self, cluster: str) -> dict[str, str]:
        return {
            n: uid for n, uid in self.pods.items()
            if self.pod_objects[n].metadata.labels[c.LABEL_CLUSTER] == cluster
        }  # fmt: skip


def snapshot(api: client.ApiClient) -> Snapshot:
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    pods = [p for p in core.list_namespaced_pod(NS).items if not p.metadata.deletion_timestamp]
    listed = {
        "services": core.list_namespaced_service(NS).items,
        "secrets": core.list_namespaced_secret(NS).items,
        "serviceaccounts": [
            sa for sa in core.list_namespaced_service_account(NS).items
            if sa.metadata.name != "default"
        ],
        "roles": rbac.list_namespaced_role(NS).items,
        "rolebindings": rbac.list_namespaced_role_binding(NS).items,
    }  # fmt: skip
    clusters = client.CustomObjectsApi(api).list_namespaced_custom_object(
        c.GROUP, c.VERSION, NS, c.PLURAL
    )["items"]
    return Snapshot(
        pods={p.metadata.name: p.metadata.uid for p in pods},
        children={
            kind: {o.metadata.name: (o.metadata.uid, controller(o)) for o in objs}
            for kind, objs in listed.items()
        },
        rayclusters={rc["metadata"]["name"]: rc for rc in clusters},
        pod_objects={p.metadata.name: p for p in pods},
    )


def controller(obj: Any) -> str | None:
    """The uid of an object's controller, if it has one."""
    refs = obj.metadata.owner_references or []
    return next((ref.uid for ref in refs if ref.controller), None)


class Audit:
    """The API server's audit log (every write, once per request) over one phase:
    from its creation to `close()`, so a test sees only its phase's requests."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.start = len(plane.audit_entries())
        self.entries: list[dict[str, Any]] = []

    def close(self) -> Audit:
        self.entries = self.plane.audit_entries()[self.start :]
        return self

    def writes(
        self, resources: tuple[str, ...], verbs: set[str] = WRITES, skip_agent: str = "\0"
    ) -> list[tuple]:
        return [
            (e["verb"], e["objectRef"]["resource"], e["objectRef"].get("name"),
             e["user"]["username"], e["requestURI"])
            for e in self.entries
            if e["objectRef"].get("namespace") == NS
            and e["objectRef"].get("resource") in resources
            and not e["objectRef"].get("subresource")
            and e["verb"] in verbs
            and e["responseStatus"]["code"] < 300
            and not e.get("userAgent", "").startswith(skip_agent)
        ]  # fmt: skip

    def pod_churn(self) -> list[tuple]:
        """Pods created or deleted, by anyone but kwok, whose deletes only complete the
        graceful deletions others asked for (the kubelet's part)."""
        return self.writes(("pods",), {"create", "delete", "deletecollection"}, skip_agent="kwok/")


def probe_pass(clusters: Clusters, name: str, timeout: float = 90) -> dict[str, Any]:
    """Wait for a whole pass of the running operator (ours or KubeRay's) over `name`
    that starts after this call: raise the first group's `maxReplicas` by one (a change
    neither operator acts on, and outside KubeRay's Recreate hash) and wait until the
    status reports that generation. Returns the RayCluster then."""
    group = clusters.get(name)["spec"]["workerGroupSpecs"][0]
    generation = clusters.patch(name, [
        {"op": "test", "path": "/spec/workerGroupSpecs/0/maxReplicas",
         "value": group["maxReplicas"]},
        {"op": "replace", "path": "/spec/workerGroupSpecs/0/maxReplicas",
         "value": group["maxReplicas"] + 1},
    ])["metadata"]["generation"]  # fmt: skip

    def observed() -> dict[str, Any] | None:
        body = clusters.get(name)
        return body if body.get("status", {}).get("observedGeneration", 0) >= generation else None

    return wait_for(observed, timeout=timeout, what=f"a pass over {name} at {generation}")


def wait_converged(clusters: Clusters, timeout: float = 120) -> None:
    """Every cluster ready (suspended: suspended) with exactly its pods, all Running
    and Ready."""

    def converged() -> bool:
        for name, body in ((n, clusters.get(n)) for n in PODS):
            want = c.STATE_SUSPENDED if body["spec"].get("suspend") else c.STATE_READY
            if body.get("status", {}).get("state") != want:
                return False
            pods = clusters.pods(name)
            expected = sum(
                g["replicas"] * g.get("numOfHosts", 1) for g in body["spec"]["workerGroupSpecs"]
            ) + 1 if want == c.STATE_READY else 0  # fmt: skip
            if len(pods) != expected or not all(running_ready(p) for p in pods):
                return False
        return True

    wait_for(converged, timeout=timeout, interval=0.5, what="every cluster converged")


def running_ready(pod: client.V1Pod) -> bool:
    return pod.status.phase == "Running" and any(
        cond.type == "Ready" and cond.status == "True" for cond in pod.status.conditions or []
    )


def kubectl(plane: ControlPlane, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [tool("kubectl"), *args], capture_output=True, text=True, timeout=120,
        env={**os.environ, "KUBECONFIG": str(plane.kubeconfig)},
    )  # fmt: skip
    assert proc.returncode == 0 or not check, f"kubectl {' '.join(args)}: {proc.stderr}"
    return proc


def crd_json(api: client.ApiClient, name: str) -> dict[str, Any]:
    """A CRD as the API server serves it (raw JSON: every schema keyword kept)."""
    resp = client.ApiextensionsV1Api(api).read_custom_resource_definition(
        name, _preload_content=False
    )
    return json.loads(resp.data)


def metrics_of(proc: OperatorProcess) -> dict[str, float]:
    """Our operator's /metrics samples, summed over labels (at the chart's address)."""
    address = next(a for a in proc.extra_args if a.startswith("--metrics-address="))
    url = f"http://{address.split('=', 1)[1]}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.split("{", 1)[0].split(" ", 1)[0], line.rsplit(" ", 1)[1]
            totals[name] = totals.get(name, 0.0) + float(value)
    return totals


def load_yaml(path: Path) -> Any:
    """libyaml's loader: KubeRay's CRD (900 KB) takes seconds in pure Python."""
    return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def is_head(pod: client.V1Pod) -> bool:
    return pod.metadata.labels[c.LABEL_NODE_TYPE] == c.NODE_TYPE_HEAD


def env_of(pod: client.V1Pod) -> dict[str, Any]:
    return {e.name: e for e in pod.spec.containers[0].env or []}


def events(api: client.ApiClient, cluster: str) -> list[client.CoreV1Event]:
    return (
        client.CoreV1Api(api)
        .list_namespaced_event(
            NS, field_selector=f"involvedObject.name={cluster},involvedObject.kind=RayCluster"
        )
        .items
    )


# -- the phases -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plane() -> Iterator[ControlPlane]:
    cp = ControlPlane.in_temp_dir(audit=True).start()
    try:
        yield cp
    finally:
        cp.cleanup()  # KEEP_CONTROL_PLANE_DIR=1 keeps its files


@pytest.fixture(scope="module")
def admin(plane: ControlPlane) -> client.ApiClient:
    return config.new_client_from_config(str(plane.kubeconfig))


@dataclass
class UnderKubeRay:
    before: Snapshot
    other_crds: dict[str, str]  # name -> resourceVersion
    exit_code: int | None


@pytest.fixture(scope="module")
def under_kuberay(plane: ControlPlane, admin: client.ApiClient) -> UnderKubeRay:
    """KubeRay's CRDs and operator; every kind of cluster made and ready; KubeRay
    stopped (SIGTERM, as `kubectl scale --replicas=0` of its Deployment does)."""
    apply_crds(admin, kuberay.crd_files())
    core = client.CoreV1Api(admin)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    wait_for_default_service_account(core, NS)
    peer = kuberay.KubeRayProcess(plane.kubeconfig, plane.root / "kuberay-1.log").start()
    try:
        wait_for(peer.ready, timeout=60, what="KubeRay's readyz")
        clusters = Clusters(admin, NS)
        for body in every_kind().values():
            clusters.create(body)
        wait_converged(clusters)
        wait_for(
            lambda: GCS_FT_FINALIZER in (clusters.get("gcsft")["metadata"].get("finalizers") or []),
            timeout=30, what="KubeRay's GCS FT finalizer",
        )  # fmt: skip
    except BaseException:
        print(peer.log_tail(80))
        raise
    finally:
        peer.stop()
    ext = client.ApiextensionsV1Api(admin)
    other = {n: ext.read_custom_resource_definition(n).metadata.resource_version
             for n in OTHER_KUBERAY_CRDS}  # fmt: skip
    return UnderKubeRay(snapshot(admin), other, peer.proc.returncode)


@dataclass
class UnderOurs:
    audit: Audit
    after: Snapshot
    crd: dict[str, Any]
    other_crds: dict[str, str]
    kubectl_get: str
    refused: subprocess.CompletedProcess  # helm install without --take-ownership
    metrics: dict[str, float]
    operator: OperatorProcess
    operators: ChartOperators


@pytest.fixture(scope="module")
def under_ours(
    plane: ControlPlane, admin: client.ApiClient, under_kuberay: UnderKubeRay,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[UnderOurs]:  # fmt: skip
    """`helm install --take-ownership` of our chart, then our operator with the chart's
    arguments and ServiceAccount; one whole pass of it over every cluster."""
    audit = Audit(plane)
    env = {"KUBECONFIG": str(plane.kubeconfig)}
    install = ("install", RELEASE, str(CHART), "--namespace", CHART_NS, "--create-namespace")
    refused = helm(*install, check=False, env=env)  # the CRD is KubeRay's, not Helm's
    helm(*install, "--take-ownership", "--wait", "--timeout", "3m", env=env)
    operators = ChartOperators(plane, admin, tmp_path_factory.mktemp("ours"))
    proc = operators.start(RELEASE, CHART_NS)
    try:
        clusters = Clusters(admin, NS)
        for name in PODS:
            probe_pass(clusters, name)
            operators.assert_alive(proc)
        ext = client.ApiextensionsV1Api(admin)
        other = {n: ext.read_custom_resource_definition(n).metadata.resource_version
                 for n in OTHER_KUBERAY_CRDS}  # fmt: skip
        yield UnderOurs(
            audit=audit.close(), after=snapshot(admin), crd=crd_json(admin, c.CRD_NAME),
            other_crds=other, kubectl_get=kubectl(plane, "get", "rayclusters", "-n", NS).stdout,
            refused=refused, metrics=metrics_of(proc), operator=proc, operators=operators,
        )  # fmt: skip
    except BaseException:
        print(proc.log_tail(150))
        raise
    finally:
        operators.stop()


@dataclass
class Scaled:
    before: Snapshot  # just before the scaling
    plain_extra: str  # the pod ours added to plain/cpu, then removed
    multihost_new: list[client.V1Pod]
    auth_new: client.V1Pod
    customsvc_new: client.V1Pod
    recreate_new: client.V1Pod
    recreated: Snapshot  # after ours replaced recreate-changed's worker
    audit: Audit


def new_pods(clusters: Clusters, name: str, known: dict[str, str], count: int) -> list:
    """Wait until `name` has `count` pods, all Running and Ready; return those not in
    `known`."""

    def settled() -> list[client.V1Pod] | None:
        pods = clusters.pods(name)
        return pods if len(pods) == count and all(map(running_ready, pods)) else None

    pods = wait_for(settled, timeout=90, what=f"{count} ready pods of {name}")
    return [p for p in pods if p.metadata.name not in known]


def set_replicas(clusters: Clusters, name: str, group: int, replicas: int) -> None:
    path = f"/spec/workerGroupSpecs/{group}/replicas"
    clusters.patch(name, [{"op": "replace", "path": path, "value": replicas}])


@pytest.fixture(scope="module")
def scaled(plane: ControlPlane, admin: client.ApiClient, under_ours: UnderOurs) -> Scaled:
    """Ours manages what it adopted: scale up and down, a new multi-host replica, new
    workers of the token-auth and custom-Service clusters, and a Recreate template
    change."""
    clusters = Clusters(admin, NS)
    before = snapshot(admin)
    audit = Audit(plane)
    try:
        set_replicas(clusters, "plain", 0, 3)
        [extra] = new_pods(clusters, "plain", before.pods, 5)
        set_replicas(clusters, "plain", 0, 2)
        clusters.wait_pods("plain", 4)
        set_replicas(clusters, "multihost", 0, 2)
        multihost_new = new_pods(clusters, "multihost", before.pods, 5)
        set_replicas(clusters, "auth", 0, 2)
        [auth_new] = new_pods(clusters, "auth", before.pods, 3)
        set_replicas(clusters, "customsvc", 0, 2)
        [customsvc_new] = new_pods(clusters, "customsvc", before.pods, 3)
        # replica counts are outside KubeRay's Recreate hash
        clusters.patch(
            "recreate",
            [{"op": "replace", "path": "/spec/workerGroupSpecs/0/minReplicas", "value": 1}],
        )
        set_replicas(clusters, "recreate", 0, 2)
        [recreate_new] = new_pods(clusters, "recreate", before.pods, 3)
        clusters.patch("recreate-changed", [{
            "op": "add", "path": "/spec/workerGroupSpecs/0/template/spec/containers/0/env",
            "value": [{"name": "CHANGED_UNDER_OURS", "value": "1"}],
        }])  # fmt: skip
        wait_for(
            lambda: new_pods(clusters, "recreate-changed", before.pods, 2),
            timeout=90, what="recreate-changed's worker replaced",
        )  # fmt: skip
        wait_converged(clusters)
        under_ours.operators.assert_alive(under_ours.operator)
    except BaseException:
        print(under_ours.operator.log_tail(150))
        raise
    return Scaled(
        before, extra.metadata.name, multihost_new, auth_new, customsvc_new, recreate_new,
        snapshot(admin), audit.close(),
    )  # fmt: skip


@dataclass
class BackToKubeRay:
    audit: Audit
    after: Snapshot
    crd: dict[str, Any]
    kept_crd: bool
    client_side_apply: subprocess.CompletedProcess  # of KubeRay's CRD: refused
    unforced_apply: subprocess.CompletedProcess  # server-side, no --force-conflicts
    exit_code: int | None
    restart_events: list[str]


@pytest.fixture(scope="module")
def back_to_kuberay(
    plane: ControlPlane, admin: client.ApiClient, scaled: Scaled, under_ours: UnderOurs
) -> BackToKubeRay:
    """Ours stopped and uninstalled (the CRD stays), KubeRay's CRDs applied again
    (server-side, taking the fields over), KubeRay started; one pass of it over every
    cluster."""
    audit = Audit(plane)
    under_ours.operators.stop()
    env = {"KUBECONFIG": str(plane.kubeconfig)}
    helm("uninstall", RELEASE, "--namespace", CHART_NS, "--wait", env=env)
    kept = bool(crd_json(admin, c.CRD_NAME))
    crds = kuberay.home() / "crds"
    client_side = kubectl(plane, "apply", "-f", str(crds / "ray.io_rayclusters.yaml"), check=False)
    unforced = kubectl(plane, "apply", "--server-side", "-f", str(crds), check=False)
    kubectl(plane, "apply", "--server-side", "--force-conflicts", "-f", str(crds))
    peer = kuberay.KubeRayProcess(plane.kubeconfig, plane.root / "kuberay-2.log").start()
    clusters = Clusters(admin, NS)
    try:
        wait_for(peer.ready, timeout=60, what="KubeRay's readyz")
        for name in PODS:
            probe_pass(clusters, name)
        wait_converged(clusters)
        restarted = [
            e.message for e in events(admin, "recreate-changed")
            if e.reason == "DeletedPod" and "Recreate upgradeStrategy" in e.message
        ]  # fmt: skip
    except BaseException:
        print(peer.log_tail(80))
        raise
    finally:
        peer.stop()
    return BackToKubeRay(
        audit.close(), snapshot(admin), crd_json(admin, c.CRD_NAME), kept, client_side, unforced,
        peer.proc.returncode, restarted,
    )  # fmt: skip


# -- the tests ------------------------------------------------------------------------------


def test_kuberay_runs_every_kind_of_cluster(under_kuberay: UnderKubeRay) -> None:
    before = under_kuberay.before
    assert under_kuberay.exit_code == 0
    assert {name: len(before.pods_of(name)) for name in PODS} == PODS
    heads = [p for p in before.pod_objects.values() if is_head(p)]
    assert heads and all(KUBERAY_HASH in p.metadata.annotations for p in heads)
    assert not [
        p for p in before.pod_objects.values() if OUR_HASH in (p.metadata.annotations or {})
    ]
    assert {"customsvc-head", "multihost-headless", "plain-head-svc"} <= set(
        before.children["services"]
    )
    assert "auth" in before.children["secrets"]
    autoscaled = before.rayclusters["autoscaled"]["metadata"]["uid"]
    for kind in ("serviceaccounts", "roles", "rolebindings"):
        assert set(before.children[kind]) == {"autoscaled"}, kind
        assert before.children[kind]["autoscaled"][1] == autoscaled, kind  # its controller
    assert before.rayclusters["gcsft"]["metadata"]["finalizers"] == [GCS_FT_FINALIZER]
    assert before.rayclusters["suspended"]["status"]["desiredWorkerReplicas"] == 1
    multihost = [p for n, p in before.pod_objects.items() if n in before.pods_of("multihost")]
    replicas = {p.metadata.labels.get(c.LABEL_REPLICA_NAME) for p in multihost
                if not is_head(p)}  # fmt: skip
    assert len(replicas) == 1 and None not in replicas


def test_switching_to_ours_creates_or_deletes_no_pod(
    under_kuberay: UnderKubeRay, under_ours: UnderOurs
) -> None:
    before, after = under_kuberay.before, under_ours.after
    assert under_ours.audit.pod_churn() == []
    assert after.pods == before.pods  # the same pods: same names, same uids
    assert after.children == before.children
    # KubeRay's Services, token Secret and autoscaler RBAC are used as they are
    assert under_ours.audit.writes(CHILD_KINDS) == []
    # what a user can read off the operator: it created and deleted nothing
    metrics = under_ours.metrics
    assert metrics["ray_operator_reconcile_total"] >= len(PODS)
    assert metrics.get("ray_operator_pods_created_total", 0) == 0
    assert metrics.get("ray_operator_pods_deleted_total", 0) == 0


def test_the_crd_is_ours_and_only_it(under_kuberay: UnderKubeRay, under_ours: UnderOurs) -> None:
    crd = under_ours.crd
    mine = load_yaml(REPO / "crds" / "ray.io_rayclusters.yaml")
    assert crd["spec"]["versions"] == mine["spec"]["versions"]
    assert [(v["name"], v["served"], v["storage"]) for v in crd["spec"]["versions"]] == [
        ("v1", True, True), ("v1alpha1", True, False),
    ]  # fmt: skip
    # without --take-ownership Helm refuses a CRD it did not make
    assert under_ours.refused.returncode != 0
    assert "exists and cannot be imported into the current release" in under_ours.refused.stderr
    assert crd["metadata"]["annotations"]["meta.helm.sh/release-name"] == RELEASE
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    # The chart brings its RayJob CRD too (taken over the same way); RayService and
    # RayCronJob stay KubeRay's, untouched.
    moved = "rayjobs.ray.io"
    untouched = {k: v for k, v in under_kuberay.other_crds.items() if k != moved}
    assert {k: v for k, v in under_ours.other_crds.items() if k != moved} == untouched
    assert under_ours.other_crds[moved] != under_kuberay.other_crds[moved]


def test_ours_reports_the_adopted_clusters(
    admin: client.ApiClient, under_kuberay: UnderKubeRay, under_ours: UnderOurs
) -> None:
    after = under_ours.after
    for name, body in after.rayclusters.items():
        status = body["status"]
        pods = [after.pod_objects[n] for n in after.pods_of(name)]
        workers = [p for p in pods if not is_head(p)]
        if name == "suspended":
            assert status["state"] == c.STATE_SUSPENDED
            assert status["desiredWorkerReplicas"] == 0  # KubeRay: 1, see docs/migration.md
            continue
        assert status["state"] == c.STATE_READY, name
        assert status["observedGeneration"] == body["metadata"]["generation"]
        assert status["desiredWorkerReplicas"] == len(workers), name
        assert status["readyWorkerReplicas"] == len(workers), name
        assert status["availableWorkerReplicas"] == len(workers), name
        head = next(p for p in pods if is_head(p))
        assert status["head"]["podName"] == head.metadata.name
        ready = next(x for x in status["conditions"] if x["type"] == "HeadPodReady")
        assert ready["status"] == "True"
    # the same as KubeRay reported, but the suspended cluster's desired count
    same = ("state", "desiredWorkerReplicas", "readyWorkerReplicas", "availableWorkerReplicas",
            "desiredCPU", "desiredMemory", "desiredGPU", "head")  # fmt: skip
    for name, body in after.rayclusters.items():
        theirs = under_kuberay.before.rayclusters[name]["status"]
        differ = {k for k in same if body["status"].get(k, 0) != theirs.get(k, 0)}  # 0: omitted
        assert differ == ({"desiredWorkerReplicas", "desiredCPU", "desiredMemory"}
                          if name == "suspended" else set()), (name, differ)  # fmt: skip
    assert after.rayclusters["customsvc"]["status"]["head"]["serviceName"] == "customsvc-head"
    assert after.rayclusters["gcsft"]["metadata"]["finalizers"] == [GCS_FT_FINALIZER]
    rows = [line.split() for line in under_ours.kubectl_get.splitlines()[1:]]
    assert {row[0]: row[-2] for row in rows} == {
        name: "suspended" if name == "suspended" else "ready" for name in PODS
    }


def test_recreate_clusters_are_stamped_not_restarted(
    admin: client.ApiClient, under_kuberay: UnderKubeRay, under_ours: UnderOurs
) -> None:
    after = under_ours.after
    for name in RECREATE_CLUSTERS:
        pods = [after.pod_objects[n] for n in after.pods_of(name)]
        assert len(pods) == PODS[name] and all(OUR_HASH in p.metadata.annotations for p in pods)
        head = next(p for p in pods if is_head(p))
        assert KUBERAY_HASH in head.metadata.annotations  # KubeRay's is left alone
        [adopted] = [e for e in events(admin, name) if e.reason == "AdoptedPods"]
        assert all(p.metadata.name in adopted.message for p in pods)
    # pods of other clusters are not stamped: without Recreate no hash is compared
    stamped = {
        p.metadata.labels[c.LABEL_CLUSTER]
        for p in after.pod_objects.values()
        if OUR_HASH in (p.metadata.annotations or {})
    }
    assert stamped == set(RECREATE_CLUSTERS)
    patched = {w[2] for w in under_ours.audit.writes(("pods",), {"patch"})}
    assert patched == {n for name in RECREATE_CLUSTERS for n in after.pods_of(name)}


def test_ours_manages_the_adopted_clusters(under_kuberay: UnderKubeRay, scaled: Scaled) -> None:
    before, now = scaled.before, scaled.recreated
    kuberay_pods = under_kuberay.before.pod_objects
    # plain: up by one, down by one: the newest pod went, KubeRay's stayed
    assert now.pods_of("plain") == before.pods_of("plain")
    assert ("delete", "pods", scaled.plain_extra) in [w[:3] for w in scaled.audit.pod_churn()]
    # multihost: a new replica of two hosts, labelled as KubeRay labels its replicas
    labels = [p.metadata.labels for p in scaled.multihost_new]
    assert len(labels) == 2 and len({x[c.LABEL_REPLICA_NAME] for x in labels}) == 1
    old = {
        p.metadata.labels[c.LABEL_REPLICA_NAME]
        for n, p in kuberay_pods.items()
        if n in before.pods_of("multihost") and not is_head(p)
    }
    assert labels[0][c.LABEL_REPLICA_NAME] not in old
    assert sorted(x[c.LABEL_HOST_INDEX] for x in labels) == ["0", "1"]
    assert {x[c.LABEL_REPLICA_INDEX] for x in labels} == {"1"}
    # new workers join as KubeRay's do: the same token Secret, the same head Service
    kuberay_worker = {
        name: next(p for n, p in kuberay_pods.items() if n in under_kuberay.before.pods_of(name)
                   and not is_head(p))
        for name in ("auth", "customsvc")
    }  # fmt: skip
    made = [*scaled.multihost_new, scaled.auth_new, scaled.customsvc_new, scaled.recreate_new]
    assert all(OUR_HASH in p.metadata.annotations for p in made)
    token = env_of(scaled.auth_new)["RAY_AUTH_TOKEN"].value_from.secret_key_ref
    assert (token.name, token.key) == ("auth", "auth_token")
    theirs = env_of(kuberay_worker["auth"])["RAY_AUTH_TOKEN"].value_from.secret_key_ref
    assert (theirs.name, theirs.key) == (token.name, token.key)
    fq = env_of(scaled.customsvc_new)["FQ_RAY_IP"].value
    assert fq.startswith("customsvc-head.")
    assert fq == env_of(kuberay_worker["customsvc"])["FQ_RAY_IP"].value
    # Recreate, template of the worker group changed: that group replaced, head kept
    changed = before.pods_of("recreate-changed")
    head = next(n for n in changed if is_head(before.pod_objects[n]))
    assert now.pods_of("recreate-changed")[head] == changed[head]
    assert set(now.pods_of("recreate-changed")) - set(changed)
    # nothing else moved
    # Recreate, replicas raised: one more pod, the others kept
    assert set(now.pods_of("recreate")) == {
        *before.pods_of("recreate"),
        scaled.recreate_new.metadata.name,
    }
    for name in ("autoscaled", "gcsft", "suspended", "recreate-multihost"):
        assert now.pods_of(name) == before.pods_of(name), name


def test_back_to_kuberay_restarts_only_a_recreate_cluster_changed_meanwhile(
    scaled: Scaled, back_to_kuberay: BackToKubeRay
) -> None:
    back, before = back_to_kuberay, scaled.recreated
    assert back.exit_code == 0
    assert back.kept_crd
    # KubeRay's CRD does not fit the annotation a client-side apply writes
    assert back.client_side_apply.returncode != 0
    assert "Too long" in back.client_side_apply.stderr, back.client_side_apply.stderr
    # server-side, the fields Helm wrote conflict until --force-conflicts takes them over
    assert back.unforced_apply.returncode != 0
    assert "conflict" in back.unforced_apply.stderr and '"helm"' in back.unforced_apply.stderr
    kuberay_crd = load_yaml(kuberay.home() / "crds" / "ray.io_rayclusters.yaml")
    assert back.crd["spec"]["versions"] == kuberay_crd["spec"]["versions"]
    for name in PODS:
        if name != "recreate-changed":
            assert back.after.pods_of(name) == before.pods_of(name), name
    # KubeRay compares its hash of the whole spec (but replicas) with the one on the head
    # pod it made: the template changed under ours, so it deletes every pod at once and
    # makes new ones. Those are the only pods created or deleted.
    assert back.restart_events
    restarted = back.after.pods_of("recreate-changed")
    assert len(restarted) == 2 and not set(restarted) & set(before.pods_of("recreate-changed"))
    churn = back.audit.pod_churn()
    assert [w[0] for w in churn if w[0] == "create"] == ["create", "create"]
    deleted = [w for w in churn if w[0] != "create"]
    assert [w[0] for w in deleted] == ["deletecollection"]
    assert "ray.io%2Fcluster%3Drecreate-changed" in deleted[0][4]
    assert back.after.children == before.children
    assert back.after.rayclusters["gcsft"]["metadata"]["finalizers"] == [GCS_FT_FINALIZER]
    for name, body in back.after.rayclusters.items():
        state = c.STATE_SUSPENDED if name == "suspended" else c.STATE_READY
        assert body["status"]["state"] == state, name
    assert back.after.rayclusters["multihost"]["status"]["desiredWorkerReplicas"] == 4
