"""A real Kubernetes control plane as plain processes on 127.0.0.1.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (the fake kubelet
that moves scheduled pods to Running/Ready). Each run gets free loopback ports and its
own directory, keeps every component's log there, and stops exactly the processes it
started. Used by the pytest fixtures, `make cluster-up`, the demo and the benchmarks.
Fault tests can kill, stop, pause and restart one component at a time.
"""

from __future__ import annotations

import json
import os
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

from .nodes import NodePool, fake_nodes
from .pki import Pki, create_pki

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


class ControlPlaneError(RuntimeError):
    pass


def tools_bin_dir() -> Path:
    return DEFAULT_TOOLS.expanduser() / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    # Each component's command line, so a fault test can start it again identically.
    _commands: dict[str, list[str]] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def in_temp_dir(cls, **kwargs) -> ControlPlane:
        return cls(root=Path(tempfile.mkdtemp(prefix="ray-operator-cp-")), **kwargs)

    # -- paths -------------------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        return self.root / "admin.kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

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
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        self._pki = create_pki(self.root / "pki")
        for name in ("etcd", "etcd-peer", "apiserver", "kcm", "scheduler", "kwok", "kwok-metrics"):
            self.ports[name] = free_port()
        self._write_kubeconfig()
        deadline = time.monotonic() + timeout
        try:
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
        except BaseException:
            self.stop()
            raise
        self._write_state()
        return self

    def stop(self) -> None:
        """Stop every process this control plane started, newest first, paused ones
        included."""
        for name in reversed(list(self.processes)):
            _terminate(self.processes.pop(name))
        if self.state_file.exists():
            self._write_state()

    def cleanup(self) -> None:
        self.stop()
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
        self._spawn(component, self._commands[component])
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
        controller manager, scheduler and kwok /healthz."""
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
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.ports['apiserver']}",
            f"--cert-dir={self.root / 'apiserver-certs'}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            # Endpoints may not hold loopback addresses, and nothing dials this API
            # server through the in-cluster `kubernetes` Service anyway.
            "--endpoint-reconciler-type=none",
            # This plugin taints every new node not-ready:NoSchedule for the node
            # lifecycle controller to lift once the node is Ready; that controller does
            # not run here (see _kcm_args), so nodes are created schedulable instead.
            "--disable-admission-plugins=TaintNodesByCondition",
            "--profiling=false",
            "--v=1",
            *self._audit_args(),
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
            "--controllers=*,-endpoints-controller,-endpointslice-controller,"
            "-endpointslice-mirroring-controller,-node-lifecycle-controller",
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

    def _spawn(self, name: str, args: list[str]) -> None:
        self._commands[name] = args
        with self.log_path(name).open("ab") as log:  # appended to across restarts
            self.processes[name] = subprocess.Popen(
                [str(self.bin_dir / args[0]), *args[1:]],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
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
                        "server": f"https://127.0.0.1:{self.ports['apiserver']}",
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
        }
        tmp = self.state_file.with_suffix(".tmp")  # never half a file for `down`
        tmp.write_text(json.dumps(state, indent=2))
        os.replace(tmp, self.state_file)


def stop_from_state(root: Path, timeout: float = 10.0) -> list[str]:
    """Stop the processes recorded by a control plane started in another process.

    A pid is only signalled if its command line still names this run's directory, so a
    recycled pid is never touched."""
    state = json.loads((root / "state.json").read_text())
    stopped = []
    for name, pid in reversed(list(state["pids"].items())):
        try:  # our components name the run dir in their arguments or environment
            proc = Path(f"/proc/{pid}")
            identity = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
        except OSError:
            continue
        if str(root).encode() not in identity:
            continue
        os.kill(pid, signal.SIGCONT)  # a paused process would not act on SIGTERM
        os.kill(pid, signal.SIGTERM)
        end = time.monotonic() + timeout
        while Path(f"/proc/{pid}").exists() and time.monotonic() < end:
            if _is_zombie(pid):
                break
            time.sleep(0.1)
        if Path(f"/proc/{pid}").exists() and not _is_zombie(pid):
            os.kill(pid, signal.SIGKILL)
        stopped.append(name)
    return stopped


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
