"""The benchmark environment: a local control plane sized for the run, the operator as a
separate process under its own identity, and the small verbs the scenarios use."""

from __future__ import annotations

import copy
import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from ray_operator import constants as c
from ray_operator.builders.pod import build_worker_pod
from ray_operator_dev import kuberay
from ray_operator_dev.devcluster import ControlPlane, NodePool
from ray_operator_dev.devcluster.controlplane import free_port
from ray_operator_dev.devcluster.pki import _signed_cert
from tests.kubehelpers import apply_crds, wait_for, wait_for_default_service_account
from tests.operator_process import OperatorProcess

from . import apimetrics
from .apimetrics import OPERATOR_USER, Snapshot
from .loadgen import LoadGen, Target

log = logging.getLogger("bench")
REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
BENCH_LABEL = "bench.ray.io/kind"  # on every pod the harness creates or templates
OURS, KUBERAY = "ray-operator", "kuberay"  # the operators a run can measure


class KubeRayOperator(kuberay.KubeRayProcess):
    """KubeRay's operator with the few verbs the bench uses on ours."""

    def alive(self) -> bool:
        return self.running()


@dataclass(frozen=True)
class ProcStats:
    rss_kib: int
    hwm_kib: int  # peak RSS
    cpu_s: float  # user + system


def proc_stats(pid: int) -> ProcStats:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(
        (k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in status.splitlines())
    )
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return ProcStats(
        rss_kib=int(fields["VmRSS"].split()[0]),
        hwm_kib=int(fields["VmHWM"].split()[0]),
        cpu_s=(int(stat[11]) + int(stat[12])) / CLK_TCK,
    )


def nodes_for(peak_pods: int, pods_per_node: int) -> int:
    """Enough fake nodes for the peak number of pods, with 10 % headroom."""
    return max(4, -(-int(peak_pods * 1.1) // pods_per_node))


class Bench:
    def __init__(self, workdir: Path, nodes: int, pods_per_node: int, operator: str = OURS) -> None:
        self.workdir = workdir
        self.which = operator  # OURS or KUBERAY: whose operator and CRDs this run uses
        self.nodes, self.pods_per_node = nodes, pods_per_node
        self.cp = ControlPlane(
            root=workdir / "control-plane",
            # Big CPU and memory: only the pod count limits what fits on a node.
            node_pools=(
                NodePool("kwok-bench", nodes, cpu="4000", memory="16Ti", pods=pods_per_node),
            ),
        )
        self.operator: OperatorProcess | KubeRayOperator | None = None
        self.operator_env: dict[str, str] = {}
        self.operator_args: list[str] = []
        self.peer_args: list[str] = []  # extra flags for KubeRay's operator
        self._operators_started = 0
        self.py_spy: str = ""  # path of a py-spy binary: profile every operator process
        self._profilers: list[subprocess.Popen] = []
        self._relay: subprocess.Popen | None = None
        self._relay_stats = 0

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Bench:
        started = time.monotonic()
        self.cp.start(timeout=300)
        self.admin = config.new_client_from_config(config_file=str(self.cp.kubeconfig))
        self.admin.configuration.connection_pool_maxsize = 16
        self.core = client.CoreV1Api(self.admin)
        self.custom = client.CustomObjectsApi(self.admin)
        ours = sorted((REPO / "crds").glob("*.yaml"))
        crds = kuberay.crd_files() if self.which == KUBERAY else ours
        apply_crds(self.admin, crds)
        self._operator_identity()
        log.info(
            "control plane up in %.1fs: %d kwok nodes x %d pods (%s)",
            time.monotonic() - started,
            self.nodes,
            self.pods_per_node,
            self.cp.root,
        )
        return self

    def stop(self, keep: bool = False) -> None:
        self.stop_operator()
        if self._relay is not None:
            self._relay.terminate()
            self._relay.wait()
        if keep:
            self.cp.stop()
        else:
            self.cp.cleanup()

    def _operator_identity(self) -> None:
        """A client certificate for user `ray-operator-bench`, bound to cluster-admin,
        and the FlowSchemas that count its requests (see apimetrics)."""
        pki = self.cp.pki
        cert, key = _signed_cert(
            pki.ca_cert.parent,
            "operator-bench",
            f"/O=ray-bench/CN={OPERATOR_USER}",
            pki.ca_cert,
            pki.ca_key,
            "extendedKeyUsage=clientAuth\n",
        )
        kubeconfig = yaml.safe_load(self.cp.kubeconfig.read_text())
        kubeconfig["users"][0]["user"] = {"client-certificate": str(cert), "client-key": str(key)}
        kubeconfig["clusters"][0]["cluster"]["server"] = self._start_relay(
            kubeconfig["clusters"][0]["cluster"]["server"]
        )
        self.operator_kubeconfig = self.workdir / "operator.kubeconfig"
        self.operator_kubeconfig.write_text(yaml.safe_dump(kubeconfig))
        client.RbacAuthorizationV1Api(self.admin).create_cluster_role_binding(
            {
                "metadata": {"name": "ray-operator-bench"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": OPERATOR_USER}
                ],
            }
        )
        flow = client.FlowcontrolApiserverV1Api(self.admin)
        for schema in apimetrics.flow_schemas():
            flow.create_flow_schema(schema)
        # The API server reads FlowSchemas through an informer: wait until they count.
        probe = f'flow_schema="{apimetrics.schema_name("get", "namespaces")}"'
        as_operator = client.CoreV1Api(
            config.new_client_from_config(config_file=str(self.operator_kubeconfig))
        )

        def counted() -> bool:
            as_operator.read_namespace("default", _preload_content=False)
            return probe in self.metrics_text()

        wait_for(counted, timeout=60, what="FlowSchemas loaded")

    def _start_relay(self, server: str) -> str:
        """The byte-counting relay (bench/relay.py) the operator talks through; returns
        the server URL to give the operator."""
        scheme, _, hostport = server.partition("://")
        listen, self._relay_stats = free_port(), free_port()
        self._relay = subprocess.Popen(
            [sys.executable, "-m", "bench.relay", str(listen), hostport, str(self._relay_stats)],
            cwd=REPO,
        )
        wait_for(lambda: self.relay_bytes() is not None, timeout=30, what="byte relay")
        return f"{scheme}://127.0.0.1:{listen}"

    def relay_bytes(self) -> dict[str, int] | None:
        """Bytes through the relay so far: down (API server -> operator) and up."""
        try:
            with socket.create_connection(("127.0.0.1", self._relay_stats), timeout=5) as s:
                down, up = s.makefile().readline().split()
        except (OSError, ValueError):
            return None
        return {"down": int(down), "up": int(up)}

    # -- observation ---------------------------------------------------------------------

    def metrics_text(self) -> str:
        return self.cp.metrics()

    def snapshot(self) -> Snapshot:
        snap = Snapshot.parse(self.cp.metrics())
        snap.relay.update(self.relay_bytes() or {})
        return snap

    def component_cpu(self) -> dict[str, float]:
        """CPU seconds so far of each control-plane process (and the operator)."""
        out = {
            name: proc_stats(proc.pid).cpu_s
            for name, proc in self.cp.processes.items()
            if proc.poll() is None
        }
        if self.operator is not None and self.operator.alive():
            out["ray-operator"] = self.op_stats().cpu_s
        return out

    def op_stats(self) -> ProcStats:
        assert self.operator is not None and self.operator.proc is not None
        return proc_stats(self.operator.proc.pid)

    def reset_peak_rss(self) -> None:
        """Start the operator's VmHWM afresh (Linux: 5 to /proc/<pid>/clear_refs), so
        the peak read later is that of the phase, not of the process's whole life."""
        assert self.operator is not None and self.operator.proc is not None
        Path(f"/proc/{self.operator.proc.pid}/clear_refs").write_text("5")

    def op_reconciles(self) -> float:
        """The operator's own count of reconcile passes (for idle detection): ours
        `ray_operator_reconcile_total`, KubeRay's controller-runtime counter."""
        if isinstance(self.operator, KubeRayOperator):
            return self.operator.reconciles()
        return self.op_metrics().get("ray_operator_reconcile_total", 0.0)

    def op_metrics(self) -> dict[str, float]:
        """The operator's own Prometheus counters (context only, never API cost)."""
        assert self.operator is not None
        url = f"http://127.0.0.1:{self.operator.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("#") or " " not in line:
                continue
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                continue
        return out

    # -- the operator --------------------------------------------------------------------

    def start_operator(self) -> OperatorProcess | KubeRayOperator:
        """`ray-operator run --all-namespaces` (or KubeRay's operator, with its chart's
        default flags) as its own process; returns once it serves its metrics endpoint."""
        self._operators_started += 1
        if self.which == KUBERAY:
            return self._start_kuberay()
        proc = OperatorProcess(
            self.operator_kubeconfig,
            [],
            self.workdir / f"operator-{self._operators_started}.log",
            extra_args=["--all-namespaces", *self.operator_args],
            env=dict(self.operator_env),
        ).start()
        self.operator = proc

        def serving() -> bool:
            if not proc.alive():
                raise RuntimeError(f"operator exited:\n{proc.log_tail()}")
            try:
                self.op_metrics()
                return True
            except OSError:
                return False

        wait_for(serving, timeout=60, interval=0.05, what="operator metrics endpoint")
        if self.py_spy:
            out = self.workdir / f"operator-{self._operators_started}.pyspy.txt"
            self._profilers.append(
                subprocess.Popen(
                    [self.py_spy, "record", "--pid", str(proc.proc.pid), "--format", "raw",
                     "--rate", "200", "--nonblocking", "--output", str(out)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
            log.info("py-spy recording operator %d into %s", proc.proc.pid, out)
        return proc

    def _start_kuberay(self) -> KubeRayOperator:
        proc = KubeRayOperator(
            self.operator_kubeconfig,
            self.workdir / f"kuberay-{self._operators_started}.log",
            extra_args=list(self.peer_args),
        ).start()
        self.operator = proc

        def serving() -> bool:
            if not proc.alive():
                raise RuntimeError(f"KubeRay's operator exited:\n{proc.log_tail()}")
            try:
                proc.metrics_text()
                return True
            except OSError:
                return False

        wait_for(serving, timeout=60, interval=0.05, what="KubeRay's metrics endpoint")
        return proc

    def stop_operator(self) -> None:
        if self.operator is not None:
            self.operator.stop()
            self.operator = None
        for profiler in self._profilers:  # py-spy writes its file when the target exits
            try:
                profiler.wait(timeout=30)
            except subprocess.TimeoutExpired:
                profiler.terminate()
        self._profilers.clear()

    def wait_operator_leading(self, timeout: float = 300) -> float:
        """Until the operator leads: KubeRay with its chart's defaults waits for the
        Lease of the process it replaces (15 s) before its controllers start; ours runs
        without leader election here. Returns the seconds waited."""
        started = time.monotonic()
        if isinstance(self.operator, KubeRayOperator):
            wait_for(self.operator.leading, timeout=timeout, interval=0.1, what="leadership")
        return time.monotonic() - started

    def wait_operator_reconciled(self, passes: int, timeout: float = 300) -> float:
        """Until the operator's reconcile counter (which starts at 0 with the process)
        reaches `passes`; returns the seconds waited."""
        started = time.monotonic()
        wait_for(
            lambda: self.op_reconciles() >= passes,
            timeout=timeout,
            interval=0.05,
            what=f"{passes} reconcile passes",
        )
        return time.monotonic() - started

    def wait_operator_idle(self, quiet: float = 3.0, timeout: float = 300) -> float:
        """Until the operator's reconcile counter has not moved for `quiet` seconds."""
        started = time.monotonic()
        last, since = -1.0, time.monotonic()
        while time.monotonic() - started < timeout:
            now_count = self.op_reconciles()
            if now_count != last:
                last, since = now_count, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return time.monotonic() - started
            time.sleep(0.25)
        raise TimeoutError("operator never went idle")

    # -- namespaces, RayClusters and pods ------------------------------------------------

    def namespace(self, prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:5]}"
        self.core.create_namespace({"metadata": {"name": name}})
        wait_for_default_service_account(self.core, name)
        return name

    def create_cluster(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.custom.create_namespaced_custom_object(
            c.GROUP, c.VERSION, namespace, c.PLURAL, body
        )

    def patch_cluster(self, namespace: str, name: str, patch: list[dict[str, Any]]) -> None:
        self.custom.patch_namespaced_custom_object(
            c.GROUP,
            c.VERSION,
            namespace,
            c.PLURAL,
            name,
            patch,
            _content_type="application/json-patch+json",
        )

    def pod_names(self, namespace: str, cluster: str, group: str) -> list[str]:
        response = self.core.list_namespaced_pod(
            namespace,
            label_selector=f"{c.LABEL_CLUSTER}={cluster},{c.LABEL_GROUP}={group}",
            _preload_content=False,
        )
        return [
            p["metadata"]["name"]
            for p in json.loads(response.data)["items"]
            if not p["metadata"].get("deletionTimestamp")
        ]

    def clear_namespace(self, namespace: str, timeout: float = 900) -> None:
        """Delete every RayCluster and pod in `namespace` (pods at once, grace 0), and
        wait until the pods are gone. The namespace stays (deleting namespaces with
        thousands of pods is slow and measures nothing). Deleting 10,000 pods takes the
        API server longer than its 60 s request timeout: the delete is sent again until
        nothing is left."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.custom.delete_collection_namespaced_custom_object(
                    c.GROUP, c.VERSION, namespace, c.PLURAL
                )
                self.core.delete_collection_namespaced_pod(
                    namespace, grace_period_seconds=0, _preload_content=False,
                    _request_timeout=90,
                )  # fmt: skip
            except (ApiException, urllib3.exceptions.HTTPError) as err:
                if isinstance(err, ApiException) and err.status == 404:
                    return
                log.info("clearing %s: %s (sending the delete again)", namespace, err)
            try:
                wait_for(
                    lambda: self._empty(namespace),
                    timeout=min(120.0, max(1.0, deadline - time.monotonic())),
                    interval=0.5,
                    what=f"namespace {namespace} empty",
                )
                return
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise

    def _empty(self, namespace: str) -> bool:
        pods = self.core.list_namespaced_pod(namespace, limit=1, _preload_content=False)
        clusters = self.custom.list_namespaced_custom_object(
            c.GROUP, c.VERSION, namespace, c.PLURAL, limit=1
        )
        return not json.loads(pods.data)["items"] and not clusters["items"]

    def load_target(self) -> Target:
        pki = self.cp.pki
        return Target(self.cp.server, str(pki.ca_cert), str(pki.admin_cert), str(pki.admin_key))

    def bare_pods(
        self, namespace: str, count: int, kind: str, concurrency: int, shape: dict[str, Any]
    ) -> LoadGen:
        """Start POSTing `count` pods shaped like `shape` (a Ray worker pod body) but with
        no Ray labels and no owner: the operator never sees them."""
        body = copy.deepcopy(shape)
        meta = body["metadata"]
        meta.pop("ownerReferences", None)
        meta["namespace"] = namespace
        meta["generateName"] = f"{kind}-"
        meta["labels"] = {BENCH_LABEL: kind}
        return LoadGen(self.load_target(), namespace, body, count, concurrency).start()


def worker_pod_shape(cluster: dict[str, Any], group_index: int = 0) -> dict[str, Any]:
    """The pod the operator would create for that worker group (for bare-pod loads)."""
    body = copy.deepcopy(cluster)
    body["metadata"].setdefault("namespace", "shape")
    body["metadata"].setdefault("uid", str(uuid.uuid4()))
    return build_worker_pod(body, group_index)
