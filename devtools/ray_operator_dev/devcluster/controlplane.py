"""A real Kubernetes control plane as plain processes on 127.0.0.1.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (the fake kubelet
that moves scheduled pods to Running/Ready); with `real_nodes=1`, also a real node
(containerd, kubelet, kube-proxy, CoreDNS; see realnode.py and podnet.py) where pods
that ask for it really run. Each run gets free loopback ports and its
own directory, keeps every component's log there, and stops exactly the processes it
started. Used by the pytest fixtures, `make cluster-up`, the demo and the benchmarks.
Fault tests can kill, stop, pause and restart one component at a time.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from http.client import HTTPException
from pathlib import Path

import yaml

from . import podnet
from .nodeimages import busybox_archive, import_archive, pause_archive
from .nodes import NodePool, fake_nodes
from .pki import Pki, create_pki
from .realnode import NO_REGISTRY_ENV, NODE_NAME, RealNode, missing_host_tools

DEFAULT_TOOLS = Path(os.environ.get("RAY_OPERATOR_TOOLS", "~/.cache/ray-operator-tools"))
SERVICE_CIDR = "10.96.0.0/16"  # cluster IPs are only ever written into objects, never dialled
STAGES = Path(__file__).with_name("kwok-stages.yaml")
# Metadata of every write, once per request (at ResponseComplete); reads are not kept.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted, Panic]
rules:
  - level: Metadata
    verbs: [create, update, patch, delete, deletecollection]
  - level: None
"""
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
NODE_COMPONENTS = ("containerd", "kubelet", "kube-proxy", "coredns")
NODE_TOOLS = ("kubelet", "kube-proxy", "coredns", "pause")


class ControlPlaneError(RuntimeError):
    pass


def tools_bin_dir() -> Path:
    return DEFAULT_TOOLS.expanduser() / "bin"


# Ports handed out come from below the kernel's ephemeral range (32768+ by default).
# A port chosen by binding port 0 comes from that range, so between our choice and
# the component's own bind any outgoing connection (the API server dialling etcd, a
# test's client) could take it: CI saw kwok fail with "address already in use" that
# way. Below 20000 lies Ray's default worker port range, so neither is used.
PORT_RANGE = range(20000, 32768)
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback TCP port nothing listens on, never handed out before by this
    process, and outside the range the kernel picks outgoing connections' ports from."""
    low, high = _ephemeral_range()
    candidates = [p for p in PORT_RANGE if not low <= p <= high and p not in _handed_out]
    for port in random.sample(candidates, min(len(candidates), 200)):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise ControlPlaneError(f"no free loopback port in {PORT_RANGE} after 200 tries")


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


@dataclass
class ControlPlane:
    """One local control plane. `start()` brings it up, `stop()` tears it down."""

    root: Path
    bin_dir: Path = field(default_factory=tools_bin_dir)
    node_pools: tuple[NodePool, ...] = field(default_factory=lambda: fake_nodes())
    # kwok hands out fake pod IPs from this loopback range: anything that dials a pod
    # IP in a test stays on this machine (and a Ray node can bind that address).
    pod_cidr: str = "127.64.0.0/16"
    # Record every write request (who, what, when) in logs/audit.log: fault tests
    # count the writes of one operator replica by its User-Agent.
    audit: bool = False
    # Real nodes (0 or 1): containers really run there. Opt-in: it needs root, the
    # Debian packages and tools of `make real-node-deps`, and one per machine.
    real_nodes: int = 0
    # kube-apiserver --feature-gates, e.g. ("WatchList=false",): how the operator copes
    # with an API server that lacks a feature
    apiserver_feature_gates: tuple[str, ...] = ()
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    # Each component's command line, so a fault test can start it again identically.
    _commands: dict[str, list[str]] = field(default_factory=dict, init=False, repr=False)
    _envs: dict[str, dict[str, str]] = field(default_factory=dict, init=False, repr=False)
    node: RealNode | None = field(default=None, init=False)

    @classmethod
    def in_temp_dir(cls, **kwargs) -> ControlPlane:
        return cls(root=Path(tempfile.mkdtemp(prefix="ray-operator-cp-")), **kwargs)

    # -- paths -------------------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        return self.root / "admin.kubeconfig"

    @property
    def host(self) -> str:
        """Where the API server listens: loopback, or with a real node the bridge
        address (pods reach it there through the `kubernetes` Service)."""
        return podnet.HOST_IP if self.real_nodes else "127.0.0.1"

    @property
    def server(self) -> str:
        return f"https://{self.host}:{self.ports['apiserver']}"

    @property
    def service_cidr(self) -> str:
        return podnet.SERVICE_CIDR if self.real_nodes else SERVICE_CIDR

    @property
    def pki(self) -> Pki:
        return self._pki

    def log_path(self, component: str) -> Path:
        return self.root / "logs" / f"{component}.log"

    def log_tail(self, component: str, lines: int = 60) -> str:
        path = self.log_path(component)
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> ControlPlane:
        for tool in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"):
            if not (self.bin_dir / tool).exists():
                raise ControlPlaneError(
                    f"{self.bin_dir / tool} is missing: run ci/build-tools.sh (or make tools)"
                )
        if self.real_nodes:
            self._check_real_node_prerequisites()
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        try:
            if self.real_nodes:  # the bridge first: it is the one-per-machine lock
                self.node = RealNode(self.root / "node", None, "")  # type: ignore[arg-type]
                self.node.root.mkdir(parents=True, exist_ok=True)
                self.node.network.setup()
                self._write_state()
            extra_ips = (podnet.HOST_IP, podnet.KUBERNETES_SERVICE_IP) if self.real_nodes else ()
            self._pki = create_pki(self.root / "pki", extra_ips)
            for name in ("etcd", "etcd-peer", "apiserver", "kcm", "scheduler", "kwok",
                         "kwok-metrics"):  # fmt: skip
                self.ports[name] = free_port()
            self._write_kubeconfig()
            self._spawn("etcd", self._etcd_args())
            self._wait("etcd", lambda: self.healthy("etcd"), deadline)
            self._spawn("kube-apiserver", self._apiserver_args())
            self._wait("kube-apiserver", lambda: self.healthy("kube-apiserver"), deadline)
            self._spawn("kube-controller-manager", self._kcm_args())
            self._spawn("kube-scheduler", self._scheduler_args())
            self._spawn("kwok", self._kwok_args())
            for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
                self._wait(name, lambda name=name: self.healthy(name), deadline)
            self._create_nodes()
            self._wait("kwok", self._nodes_ready, deadline)
            self._wait("kube-controller-manager", self._default_service_account_exists, deadline)
            if self.real_nodes:
                self._start_real_node(deadline)
        except BaseException:
            self.stop()
            raise
        self._write_state()
        return self

    def stop(self) -> None:
        """Stop every process this control plane started, newest first, paused ones
        included. A real node is drained first (its pods stopped through the kubelet),
        then whatever remains of its containers, mounts and network is removed."""
        if self.node is not None:
            for line in self._stop_real_node():
                print(f"[devcluster] removed {line}")
        for name in reversed(list(self.processes)):
            _terminate(self.processes.pop(name))
        if self.state_file.exists():
            self._write_state()

    # -- the real node -----------------------------------------------------------------

    def _check_real_node_prerequisites(self) -> None:
        if self.real_nodes != 1:
            raise ControlPlaneError(
                "real_nodes must be 0 or 1 (one real node per machine: see podnet.py)"
            )
        missing = missing_host_tools()
        missing += [str(self.bin_dir / t) for t in NODE_TOOLS if not (self.bin_dir / t).exists()]
        if missing:
            raise ControlPlaneError(
                f"a real node needs {', '.join(missing)}: run `make real-node-deps`"
            )

    def _start_real_node(self, deadline: float) -> None:
        node = self.node
        assert node is not None
        node.pki, node.server = self._pki, self.server
        for name in ("kubelet", "kubelet-healthz", "kube-proxy-healthz", "kube-proxy-metrics",
                     "coredns-health"):  # fmt: skip
            node.ports[name] = self.ports[name] = free_port()
        node.prepare()
        env = {**os.environ, **NO_REGISTRY_ENV}
        self._spawn("containerd", node.containerd_args(), env=env)
        self._wait("containerd", node.containerd_healthy, deadline)
        images = self.root / "images"
        import_archive(node.containerd_socket, pause_archive(self.bin_dir, images / "pause.tar"))
        import_archive(node.containerd_socket, busybox_archive(images / "busybox.tar"))
        self._spawn("kubelet", node.kubelet_args())
        self._spawn("kube-proxy", node.kube_proxy_args())
        self._spawn("coredns", node.coredns_args(self.kubeconfig))
        for name in ("kubelet", "kube-proxy", "coredns"):
            self._wait(name, lambda name=name: self.healthy(name), deadline)
        self._wait("kube-proxy", podnet.kube_proxy_jump_installed, deadline)
        podnet.forbid_masquerade()  # above kube-proxy's jump: see podnet's NETWORK RULE
        self._wait("kubelet", lambda: self._node_ready(NODE_NAME), deadline)

    def _node_ready(self, name: str) -> bool:
        node = self.request(f"/api/v1/nodes/{name}")
        return any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in node.get("status", {}).get("conditions", [])
        )

    def _stop_real_node(self) -> list[str]:
        node = self.node
        assert node is not None
        netns: set[str] = set()
        removed: list[str] = []
        if self.running("containerd"):
            netns = node.netns_paths()
            # No new pods for the node while it drains (Deployments would recreate them).
            if self.running("kube-scheduler"):
                _terminate(self.processes.pop("kube-scheduler"))
            if self.running("kubelet") and self.running("kube-apiserver"):
                drain(self.request, node)
            netns |= node.netns_paths()
        for name in ("coredns", "kube-proxy", "kubelet"):
            if name in self.processes:
                _terminate(self.processes.pop(name))
        if "kube-proxy" in self._commands:
            node.kube_proxy_cleanup(self.bin_dir)
        if self.running("containerd"):
            removed += node.remove_containers()
        if "containerd" in self.processes:
            _terminate(self.processes.pop("containerd"))
        removed += node.sweep(netns)
        self.node = None
        return removed

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        """Stop everything and remove the run's files, unless the environment sets
        KEEP_CONTROL_PLANE_DIR: then the files (logs, audit log, etcd data) stay for a
        post-mortem and their folder is printed."""
        self.stop()
        if os.environ.get("KEEP_CONTROL_PLANE_DIR"):
            print(f"control plane files kept in {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- fault injection: one component at a time -------------------------------------

    def kill(self, component: str) -> None:
        """SIGKILL `component` (no chance to clean up, as in a crash) and reap it.
        `restart` brings it back."""
        proc = self._process(component)
        proc.kill()
        proc.wait()
        self._write_state()

    def stop_component(self, component: str, timeout: float = 10.0) -> None:
        """Stop `component` gracefully (SIGTERM, SIGKILL after `timeout`) and leave it
        down, e.g. etcd for an outage; `restart` brings it back."""
        _terminate(self._process(component), timeout)
        self._write_state()

    def restart(self, component: str, timeout: float = 60.0) -> None:
        """Start `component` again with the very same command line (same ports, data
        and certificates, so clients keep their kubeconfig) and wait until it is
        healthy (see `healthy`). Stops it first if it is still running or paused."""
        _terminate(self._process(component))
        self._spawn(component, self._commands[component], self._envs.get(component))
        self._write_state()
        self.wait_healthy(component, timeout)

    def pause(self, component: str) -> None:
        """SIGSTOP `component`, as a hung process: its sockets stay open, it answers
        nothing. Returns once the kernel reports it stopped."""
        proc = self._process(component)
        proc.send_signal(signal.SIGSTOP)
        self._wait(component, lambda: _proc_state(proc.pid) in ("T", "t"), time.monotonic() + 10)

    def resume(self, component: str) -> None:
        """SIGCONT a component `pause`d before. Returns once it runs again."""
        proc = self._process(component)
        proc.send_signal(signal.SIGCONT)
        self._wait(
            component, lambda: _proc_state(proc.pid) not in ("T", "t"), time.monotonic() + 10
        )

    def running(self, component: str) -> bool:
        """Whether `component`'s process exists (paused counts as running)."""
        proc = self.processes.get(component)
        return proc is not None and proc.poll() is None

    def healthy(self, component: str) -> bool:
        """One health probe: etcd /health, API server /readyz (which includes etcd),
        controller manager, scheduler and kwok /healthz; for a real node, containerd
        answering `ctr version`, kubelet /healthz, kube-proxy /livez, CoreDNS /health."""
        if component == "containerd":
            return self.node is not None and self.node.containerd_healthy()
        url, admin = self._health_url(component)
        try:
            return self._http_ok(url, admin=admin)
        except (OSError, HTTPException):  # refused, reset, timed out, 5xx, TLS ...
            return False

    def wait_healthy(self, component: str, timeout: float = 60.0) -> None:
        """Poll `healthy(component)`; raise ControlPlaneError on timeout or exit."""
        self._wait(component, lambda: self.healthy(component), time.monotonic() + timeout)

    def _process(self, component: str) -> subprocess.Popen:
        if component not in self.processes:
            raise ControlPlaneError(f"{component!r} is not part of this running control plane")
        return self.processes[component]

    def _health_url(self, component: str) -> tuple[str, bool]:
        if component == "kube-apiserver":
            return f"{self.server}/readyz", True
        scheme, port, path = {
            "etcd": ("http", "etcd", "health"),
            "kube-controller-manager": ("https", "kcm", "healthz"),
            "kube-scheduler": ("https", "scheduler", "healthz"),
            "kwok": ("http", "kwok", "healthz"),
            "kubelet": ("http", "kubelet-healthz", "healthz"),
            "kube-proxy": ("http", "kube-proxy-healthz", "livez"),
            "coredns": ("http", "coredns-health", "health"),
        }[component]
        return f"{scheme}://127.0.0.1:{self.ports[port]}/{path}", False

    # -- component command lines -------------------------------------------------------

    def _etcd_args(self) -> list[str]:
        client = f"http://127.0.0.1:{self.ports['etcd']}"
        peer = f"http://127.0.0.1:{self.ports['etcd-peer']}"
        return [
            "etcd",
            f"--data-dir={self.root / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            "--unsafe-no-fsync",
            "--quota-backend-bytes=8589934592",
            "--log-level=warn",
        ]

    def _apiserver_args(self) -> list[str]:
        pki = self._pki
        return [
            "kube-apiserver",
            f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
            f"--bind-address={self.host}",
            f"--advertise-address={self.host}",
            f"--secure-port={self.ports['apiserver']}",
            f"--cert-dir={self.root / 'apiserver-certs'}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            f"--service-cluster-ip-range={self.service_cidr}",
            "--allow-privileged=true",
            *self._endpoint_args(),
            # This plugin taints every new node not-ready:NoSchedule for the node
            # lifecycle controller to lift once the node is Ready; that controller does
            # not run here (see _kcm_args), so nodes are created schedulable instead.
            "--disable-admission-plugins=TaintNodesByCondition",
            "--profiling=false",
            "--v=1",
            *self._audit_args(),
            *[f"--feature-gates={gate}" for gate in self.apiserver_feature_gates],
        ]

    def _endpoint_args(self) -> list[str]:
        if not self.real_nodes:
            # Endpoints may not hold loopback addresses, and nothing dials this API
            # server through the in-cluster `kubernetes` Service anyway.
            return ["--endpoint-reconciler-type=none"]
        # Pods dial the `kubernetes` Service: its endpoint is the bridge address. The
        # API server reaches the kubelet (logs, exec) with the admin client cert.
        return [
            "--endpoint-reconciler-type=lease",
            f"--kubelet-client-certificate={self._pki.admin_cert}",
            f"--kubelet-client-key={self._pki.admin_key}",
            "--kubelet-preferred-address-types=InternalIP",
        ]

    def _audit_args(self) -> list[str]:
        if not self.audit:
            return []
        policy = self.root / "audit-policy.yaml"
        policy.write_text(AUDIT_POLICY)
        return [
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            "--audit-log-maxsize=0",
        ]

    @property
    def audit_log(self) -> Path:
        return self.root / "logs" / "audit.log"

    def audit_entries(self) -> list[dict]:
        """The audit log's events (writes only, one per completed request)."""
        if not self.audit_log.exists():
            return []
        return [json.loads(line) for line in self.audit_log.read_text().splitlines() if line]

    def _kcm_args(self) -> list[str]:
        kc = str(self.kubeconfig)
        return [
            "kube-controller-manager",
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.ports['kcm']}",
            f"--cert-dir={self.root / 'kcm-certs'}",
            f"--service-account-private-key-file={self._pki.sa_key}",
            f"--root-ca-file={self._pki.ca_cert}",
            "--use-service-account-credentials=true",
            "--leader-elect=false",
            # Endpoints may not hold the loopback pod IPs kwok hands out, and nothing
            # here routes Service traffic: without these controllers, no retry storm.
            # No node lifecycle controller: it judges a node by when it last *saw* the
            # node's lease renewed. After an API server or etcd outage its own watches
            # return with client-go's backoff (up to 30 s), so its view stays stale past
            # the 50 s grace period though kwok renewed at once: it marked every node
            # Unknown and every pod Ready=False, and nothing makes a Running pod Ready
            # again (a kwok stage doing so would also undo tests' deliberate Ready=False).
            # A longer grace period only moves the threshold; with no kubelet to lose,
            # the controller has nothing true to report here.
            # With a real node, kube-proxy and CoreDNS read EndpointSlices, so their
            # controller runs (slices, unlike Endpoints, take kwok's loopback IPs).
            "--controllers=*,-endpoints-controller,-endpointslice-mirroring-controller,"
            "-node-lifecycle-controller"
            + ("" if self.real_nodes else ",-endpointslice-controller"),
            # Fast namespace and garbage collection keeps tests short.
            "--concurrent-gc-syncs=20",
            "--concurrent-namespace-syncs=10",
            "--kube-api-qps=200",
            "--kube-api-burst=400",
            "--v=1",
        ]

    def _scheduler_args(self) -> list[str]:
        kc = str(self.kubeconfig)
        return [
            "kube-scheduler",
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.ports['scheduler']}",
            f"--cert-dir={self.root / 'scheduler-certs'}",
            "--leader-elect=false",
            "--kube-api-qps=500",
            "--kube-api-burst=1000",
            "--v=1",
        ]

    def _kwok_args(self) -> list[str]:
        return [
            "kwok",
            f"--kubeconfig={self.kubeconfig}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--server-address=127.0.0.1:{self.ports['kwok']}",
            # No node leases: nothing reads them (no node lifecycle controller, see
            # _kcm_args), and a restarted kwok has a new identity, so it would leave the
            # nodes unmanaged (new pods Pending) until the old instance's leases expire.
            "--node-lease-duration-seconds=0",
            f"--config={STAGES}",
            f"--cidr={self.pod_cidr}",
            "--node-ip=127.0.0.1",
            "--v=INFO",
        ]

    # -- helpers -----------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        """Start a component: a tool from bin_dir, or a system binary by absolute path.
        Each one names the run dir (the kubeconfig, or RAY_OPERATOR_RUN_DIR in its
        environment), which is how `stop_from_state` recognises it."""
        self._commands[name] = args
        env = {**(env or os.environ), "RAY_OPERATOR_RUN_DIR": str(self.root)}
        self._envs[name] = env
        exe = args[0] if os.path.isabs(args[0]) else str(self.bin_dir / args[0])
        with self.log_path(name).open("ab") as log:  # appended to across restarts
            self.processes[name] = subprocess.Popen(
                [exe, *args[1:]],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, not the children
            )

    def _wait(self, name: str, ready, deadline: float) -> None:
        while time.monotonic() < deadline:
            proc = self.processes.get(name)
            if proc is not None and proc.poll() is not None:
                raise ControlPlaneError(
                    f"{name} exited with {proc.returncode}; log tail:\n{self.log_tail(name)}"
                )
            try:
                if ready():
                    return
            except (OSError, ssl.SSLError, subprocess.SubprocessError):
                pass
            time.sleep(0.2)
        raise ControlPlaneError(f"{name} not ready in time; log tail:\n{self.log_tail(name)}")

    def _ssl_context(self, admin: bool) -> ssl.SSLContext:
        if not admin:  # controller-manager/scheduler serve self-signed certs on loopback
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        ctx = ssl.create_default_context(cafile=str(self._pki.ca_cert))
        ctx.load_cert_chain(str(self._pki.admin_cert), str(self._pki.admin_key))
        return ctx

    def _http_ok(self, url: str, admin: bool = False) -> bool:
        ctx = self._ssl_context(admin) if url.startswith("https") else None
        with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
            return resp.status == 200

    def request(self, path: str, method: str = "GET", body: dict | None = None) -> dict:
        """A raw admin request to the API server (used before any client exists)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.server}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10, context=self._ssl_context(True)) as resp:
            return json.loads(resp.read() or b"{}")

    def metrics(self) -> str:
        """The API server's own /metrics text (used by the benchmarks for API cost)."""
        req = urllib.request.Request(f"{self.server}/metrics")
        with urllib.request.urlopen(req, timeout=10, context=self._ssl_context(True)) as resp:
            return resp.read().decode()

    def _create_nodes(self) -> None:
        for pool in self.node_pools:
            for node in pool.nodes():
                self.request("/api/v1/nodes", "POST", node)

    def _nodes_ready(self) -> bool:
        nodes = self.request("/api/v1/nodes")["items"]
        expected = sum(pool.count for pool in self.node_pools)
        ready = [
            n
            for n in nodes
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in n.get("status", {}).get("conditions", [])
            )
        ]
        return len(ready) >= expected

    def _default_service_account_exists(self) -> bool:
        try:
            self.request("/api/v1/namespaces/default/serviceaccounts/default")
            return True
        except urllib.error.HTTPError:
            return False

    def _write_kubeconfig(self) -> None:
        pki = self._pki
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority": str(pki.ca_cert),
                    },
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {
                        "client-certificate": str(pki.admin_cert),
                        "client-key": str(pki.admin_key),
                    },
                }
            ],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin"}}],
            "current-context": "local",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))

    # -- state file, so `devcluster down` in another process stops exactly our pids ----

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    def _write_state(self) -> None:
        """Record the live pids; rewritten after every kill, stop and restart."""
        state = {
            "pids": {name: p.pid for name, p in self.processes.items() if p.poll() is None},
            "ports": self.ports,
            "kubeconfig": str(self.kubeconfig),
            "real_node": str(self.node.root) if self.node is not None else None,
        }
        tmp = self.state_file.with_suffix(".tmp")  # never half a file for `down`
        tmp.write_text(json.dumps(state, indent=2))
        os.replace(tmp, self.state_file)


def drain(request, node: RealNode, timeout: float = 60.0) -> None:
    """Delete every pod bound to the real node and wait until the kubelet has stopped
    their containers (and with them torn down each pod's network). `request` is
    ControlPlane.request or the same call built from a state file."""
    try:
        pods = request(f"/api/v1/pods?fieldSelector=spec.nodeName%3D{NODE_NAME}")
        for pod in pods["items"]:
            meta = pod["metadata"]
            path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
            request(path, "DELETE", {"gracePeriodSeconds": 0})
    except (OSError, HTTPException, ValueError):
        return  # the API server is unreachable: sweep() removes what remains
    end = time.monotonic() + timeout
    while node.running_tasks() and time.monotonic() < end:
        time.sleep(0.2)


def stop_from_state(root: Path, timeout: float = 10.0) -> list[str]:
    """Stop the processes recorded by a control plane started in another process; a
    real node is drained and swept first, as `ControlPlane.stop` does.

    A pid is only signalled if its command line still names this run's directory, so a
    recycled pid is never touched."""
    state = json.loads((root / "state.json").read_text())
    pids: dict[str, int] = dict(state["pids"])
    stopped = []

    def stop(name: str) -> None:
        pid = pids.pop(name, None)
        if pid is not None and _stop_pid(root, pid, timeout):
            stopped.append(name)

    if state.get("real_node"):
        node = _node_from_state(root, state)
        netns = node.netns_paths() if node.containerd_healthy() else set()
        stop("kube-scheduler")
        if "kubelet" in pids and "kube-apiserver" in pids and node.containerd_healthy():
            drain(_state_request(root, state), node)
            netns |= node.netns_paths()
        for name in ("coredns", "kube-proxy", "kubelet"):
            stop(name)
        node.kube_proxy_cleanup(tools_bin_dir())
        if node.containerd_healthy():
            node.remove_containers()
        stop("containerd")
        for line in node.sweep(netns):
            print(f"[devcluster] removed {line}")
    for name in reversed(list(pids)):
        stop(name)
    return stopped


def _node_from_state(root: Path, state: dict) -> RealNode:
    return RealNode(Path(state["real_node"]), None, "")  # type: ignore[arg-type]


def _state_request(root: Path, state: dict):
    """ControlPlane.request for a control plane recorded in `state`."""
    pki = root / "pki"
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    host = podnet.HOST_IP if state.get("real_node") else "127.0.0.1"
    server = f"https://{host}:{state['ports']['apiserver']}"

    def request(path: str, method: str = "GET", body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{server}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
            return json.loads(resp.read() or b"{}")

    return request


def _stop_pid(root: Path, pid: int, timeout: float) -> bool:
    try:  # our components name the run dir in their arguments or environment
        proc = Path(f"/proc/{pid}")
        identity = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
    except OSError:
        return False
    if str(root).encode() not in identity:
        return False
    os.kill(pid, signal.SIGCONT)  # a paused process would not act on SIGTERM
    os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and time.monotonic() < end:
        if _is_zombie(pid):
            break
        time.sleep(0.1)
    if Path(f"/proc/{pid}").exists() and not _is_zombie(pid):
        os.kill(pid, signal.SIGKILL)
    return True


def _terminate(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM (SIGCONT first: a paused process would not act on it), then SIGKILL
    after `timeout`; reaps the process."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGCONT)
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _proc_state(pid: int) -> str:
    """The state letter of /proc/<pid>/stat: R, S, T (stopped), Z, ..."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1]
    except (OSError, IndexError):
        return ""


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True
