"""Real Ray, on loopback, for the pods the operator creates on the local control plane.

kwok makes pods Running and gives them IPs from 127.64.0.0/16, but runs nothing in
them. `RayHarness` plays the kubelet for Ray: for every Running pod of one RayCluster it
starts the pod's own `ray start` command (taken from the pod's
`KUBERAY_GEN_RAY_START_CMD`, so the resources are exactly what the operator gave the
pod) as a real Ray node bound to the pod's IP, with the pod's identity
(`RAY_CLOUD_INSTANCE_ID` = pod name, `RAY_NODE_TYPE_NAME` = group); when the pod is
deleted it stops that node. Linux answers all of 127.0.0.0/8 on `lo`, so every node
gets its own address and nothing leaves the machine. (Ray rewrites 127.0.0.1 into an
outward address; pod IPs never are 127.0.0.1.)

It also runs the head pod's `autoscaler` sidecar: the container's own command
(`ray kuberay-autoscaler ...`, Ray's real entry point) with the container's env,
authenticated as the ServiceAccount the head pod runs as. Only how Ray finds the API
server, its CA and the token is replaced (`KUBERNETES_SERVICE_HOST`/
`KUBERNETES_SERVICE_PORT_HTTPS`, `RAY_KUBERAY_CA_CERT_PATH` and the module constant
`IN_CLUSTER_TOKEN_PATH`), see `python -m tests.ray_harness kuberay-autoscaler`.

With `dashboard=True` the head also serves Ray's dashboard (and so the job REST API
RayJobs use) on its pod IP, at the port of the Ray container's `dashboard` port (the
test picks a free one), as a head pod does at 8265. `SubmitterRunner` plays the kubelet
for a RayJob's submitter Job: it runs the pod's own command line here and writes the
exit into the pod's status, so the Job controller completes or retries the Job.

What differs from a pod, on purpose: ports (every node of the machine needs its own,
so the command's fixed ports are replaced by free ones and the head's GCS port is not
6379), a 100 MB object store, dashboard (unless asked for) and log monitor off, usage
stats off and never reported (see `base_env` and `RayHarness.in_pod_env`: with Ray's
defaults the head contacts usage-stats.ray.io and cloud metadata endpoints), and the
exit of a Ray node is not reflected back into its pod's status (kwok does not model
containers; `SubmitterRunner` does it for submitter pods). Each
node has its own temp dir, as each pod has its own /tmp/ray; the sidecar finds the
head's through the GCS, as it would through the shared /tmp/ray volume.

Every process is started in its own process group and killed by group at the end;
finally any process still naming the harness's private directory is killed by PID.
Nothing here ever runs `ray stop` (it would kill every Ray process of the machine).
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client

from ray_operator import constants as c
from ray_operator_dev.devcluster.controlplane import free_port
from tests.kubehelpers import wait_for

RAY = str(Path(sys.executable).with_name("ray"))
OBJECT_STORE_BYTES = 100 * 1024 * 1024
JOINED_MARKER = "Ray runtime started"
# From the pod's `ray start`: what the node is (its resources and role). Ports, the
# head address and dashboard settings are the harness's business.
KEPT_FLAGS = frozenset(
    {"head", "block", "no-monitor", "num-cpus", "num-gpus", "memory", "resources", "labels"}
)
# From the Ray container's env: the pod's identity as Ray sees it.
KEPT_ENV = frozenset(
    {
        "RAY_CLOUD_INSTANCE_ID",
        "RAY_NODE_TYPE_NAME",
        "RAY_enable_autoscaler_v2",
        "RAY_USAGE_STATS_KUBERAY_IN_USE",
        # authOptions: Ray refuses a node or client without the cluster's token.
        "RAY_AUTH_MODE",
        "RAY_AUTH_TOKEN",
    }
)
# Never inherited from the test process: each would point Ray somewhere else.
DROPPED_ENV = (
    "RAY_ADDRESS",
    "KUBECONFIG",
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
    "KUBERNETES_SERVICE_PORT_HTTPS",
)


# -- timeline ----------------------------------------------------------------------------


class Timeline:
    """Thread-safe record of what happened when (monotonic seconds since creation)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self._events: list[tuple[float, str, str]] = []
        self._lock = threading.Lock()

    def mark(self, event: str, detail: str = "") -> float:
        now = time.monotonic() - self.t0
        with self._lock:
            self._events.append((now, event, detail))
        return now

    def events(self, event: str | None = None) -> list[tuple[float, str, str]]:
        with self._lock:
            return [e for e in self._events if event is None or e[1] == event]

    def first(self, event: str, detail: str | None = None) -> float | None:
        return next((t for t, _, d in self.events(event) if detail is None or d == detail), None)

    def render(self) -> str:
        return "\n".join(f"{t:8.2f}s  {event:<26} {detail}" for t, event, detail in self.events())


# -- reading a pod the way a kubelet would --------------------------------------------------


def _field_value(pod: client.V1Pod, path: str) -> str | None:
    if path == "metadata.name":
        return pod.metadata.name
    if path == "metadata.namespace":
        return pod.metadata.namespace
    match = re.fullmatch(r"metadata\.labels\['([^']+)'\]", path)
    if match:
        return (pod.metadata.labels or {}).get(match.group(1))
    return None


SecretReader = Callable[[str, str, str], str | None]  # (namespace, name, key) -> value


def container_env(
    pod: client.V1Pod, container: client.V1Container, secrets: SecretReader | None = None
) -> dict[str, str]:
    """The container's env as the kubelet resolves it: values, the fieldRefs the
    operator uses (name, namespace, labels) and, given `secrets`, secretKeyRefs (the
    auth token). Other sources are skipped."""
    env: dict[str, str] = {}
    for var in container.env or []:
        source = var.value_from
        if var.value is not None:
            env[var.name] = expand(var.value, env)
        elif source is not None and source.field_ref is not None:
            value = _field_value(pod, source.field_ref.field_path)
            if value is not None:
                env[var.name] = value
        elif source is not None and source.secret_key_ref is not None and secrets is not None:
            ref = source.secret_key_ref
            value = secrets(pod.metadata.namespace, ref.name, ref.key)
            if value is not None:
                env[var.name] = value
    return env


def secret_reader(core: client.CoreV1Api) -> SecretReader:
    def read(namespace: str, name: str, key: str) -> str | None:
        try:
            data = core.read_namespaced_secret(name, namespace).data or {}
        except client.ApiException as err:
            if err.status == 404:
                return None  # a kubelet would not start the container: tests see that
            raise
        return base64.b64decode(data[key]).decode() if key in data else None

    return read


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion in command and args."""
    return re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), text)


def ray_start_flags(command: str) -> dict[str, str | None]:
    """`ray start --a=1 --b` -> {"a": "1", "b": None}, parsed as bash would split it."""
    words = shlex.split(command)
    if words[:2] != ["ray", "start"]:
        raise ValueError(f"not a ray start command: {command!r}")
    flags: dict[str, str | None] = {}
    for word in words[2:]:
        if not word.startswith("--"):
            raise ValueError(f"unexpected word {word!r} in {command!r}")
        key, eq, value = word[2:].partition("=")
        flags[key] = value if eq else None
    return flags


def pod_group(pod: client.V1Pod) -> str:
    return (pod.metadata.labels or {}).get(c.LABEL_GROUP, "")


def is_head(pod: client.V1Pod) -> bool:
    return (pod.metadata.labels or {}).get(c.LABEL_NODE_TYPE) == c.NODE_TYPE_HEAD


def running_ip(pod: client.V1Pod) -> str | None:
    status = pod.status
    if pod.metadata.deletion_timestamp or status is None or status.phase != "Running":
        return None
    return status.pod_ip


# -- processes -------------------------------------------------------------------------------


def base_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    # With usage stats off, Ray's dashboard still tells its usage server so: aim that
    # (Ray's test-only override) at a closed loopback port.
    env["RAY_USAGE_STATS_REPORT_URL"] = "http://127.0.0.1:1/"
    env.update(extra or {})
    return env


def kill_group(proc: subprocess.Popen, grace: float = 3.0) -> None:
    """SIGTERM the process group `proc` leads, SIGKILL it after `grace` seconds."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    # `ray start --block` may be gone while daemons it started linger in its group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def kill_processes_naming(marker: str) -> list[int]:
    """SIGKILL every process whose command line contains `marker` (a private temp dir,
    so only processes this harness started match)."""
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
    return killed


@dataclass
class RayNode:
    pod: str
    group: str
    ip: str
    proc: subprocess.Popen
    log_path: Path
    started: float
    joined: float | None = None
    exited: float | None = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class AutoscalerCredentials:
    """Where the sidecar finds the API server and its ServiceAccount token."""

    server: str  # https://127.0.0.1:<port>
    ca_cert: Path
    token_file: Path


def service_account_token(core: client.CoreV1Api, namespace: str, name: str) -> str:
    """A TokenRequest token of an existing ServiceAccount (the kind a pod gets)."""
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
    )
    return core.create_namespaced_service_account_token(name, namespace, request).status.token


def service_account_exists(core: client.CoreV1Api, namespace: str, name: str) -> bool:
    found = core.list_namespaced_service_account(namespace, field_selector=f"metadata.name={name}")
    return bool(found.items)


def autoscaler_credentials(
    core: client.CoreV1Api, namespace: str, account: str, server: str, ca_cert: Path, folder: Path
) -> AutoscalerCredentials:
    """What the autoscaler sidecar of a head pod gets: waits for the ServiceAccount the
    operator makes for it, then writes a TokenRequest token of it into `folder`."""
    wait_for(
        lambda: service_account_exists(core, namespace, account),
        what=f"the autoscaler's ServiceAccount {account}",
    )
    token_file = folder / "token"
    token_file.write_text(service_account_token(core, namespace, account))
    return AutoscalerCredentials(server, ca_cert, token_file)


def kuberay_client_env(creds: AutoscalerCredentials) -> dict[str, str]:
    """The env vars Ray's KubeRay client reads (at import time) to find the API server."""
    host, _, port = creds.server.removeprefix("https://").rpartition(":")
    return {
        "KUBERNETES_SERVICE_HOST": host,
        "KUBERNETES_SERVICE_PORT_HTTPS": port,
        "RAY_KUBERAY_CA_CERT_PATH": str(creds.ca_cert),
    }


@contextlib.contextmanager
def kuberay_client(creds: AutoscalerCredentials, head_pod: str | None = None) -> Iterator[Any]:
    """Ray's KubeRay client modules in this process, aimed at `creds`: yields a namespace
    with `node_provider`, `cloud_provider` (v2) and `autoscaling_config`.

    Ray reads the server, the CA path, `KUBERAY_CRD_VER` and `RAY_HEAD_POD_NAME` from the
    env when `node_provider` is imported (the v2 module copies some of those names), so
    both are re-imported with the sidecar's env set; the token path is the module
    constant `IN_CLUSTER_TOKEN_PATH`. Env and modules are restored on exit."""
    import importlib
    from types import SimpleNamespace

    from ray.autoscaler._private.kuberay import autoscaling_config, node_provider
    from ray.autoscaler.v2.instance_manager.cloud_providers.kuberay import cloud_provider

    env = {**kuberay_client_env(creds), "KUBERAY_CRD_VER": c.VERSION}
    if head_pod:
        env["RAY_HEAD_POD_NAME"] = head_pod
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        importlib.reload(node_provider)
        node_provider.IN_CLUSTER_TOKEN_PATH = str(creds.token_file)
        importlib.reload(cloud_provider)
        yield SimpleNamespace(
            node_provider=node_provider,
            cloud_provider=cloud_provider,
            autoscaling_config=autoscaling_config,
        )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        importlib.reload(node_provider)
        importlib.reload(cloud_provider)


@dataclass
class RayHarness:
    """Runs a real Ray node for each Running pod of RayCluster `cluster` (see module doc)."""

    core: client.CoreV1Api
    namespace: str
    cluster: str
    timeline: Timeline = field(default_factory=Timeline)
    credentials: AutoscalerCredentials | None = None  # None: no autoscaler sidecar
    extra_env: dict[str, str] = field(default_factory=dict)  # for every Ray process
    dashboard: bool = False  # the head serves the dashboard on its pod IP
    poll_interval: float = 0.2
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rh-", dir="/tmp")))
    nodes: dict[str, RayNode] = field(default_factory=dict)  # pod name -> node
    gone: list[RayNode] = field(default_factory=list)
    head_address: str | None = None  # <head pod IP>:<GCS port> once the head runs
    head_ip: str | None = None
    dashboard_url: str | None = None  # http://<head pod IP>:<port> with dashboard=True
    autoscaler: subprocess.Popen | None = None
    errors: list[str] = field(default_factory=list)
    drivers: list[subprocess.Popen] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @classmethod
    def with_autoscaler(
        cls, core: client.CoreV1Api, namespace: str, cluster: str, server: str, ca_cert: Path
    ) -> RayHarness:
        """A harness that also runs the head's autoscaler sidecar, as the ServiceAccount
        the operator made for it: the operator's Role then allows (or refuses) every
        call Ray's autoscaler makes."""
        harness = cls(core, namespace, cluster)
        harness.credentials = autoscaler_credentials(
            core, namespace, cluster, server, ca_cert, harness.workdir
        )
        return harness

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stoppers: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        self.home = self.workdir / "home"
        self.home.mkdir(exist_ok=True)
        (self.home / "ray_bootstrap_config.yaml").write_text("provider: {type: kuberay}\n")

    def in_pod_env(self) -> dict[str, str]:
        """Env every Ray process here gets, as in a pod: the API server's address, and a
        home directory of its own. Its `ray_bootstrap_config.yaml` names the platform:
        without one, the head's dashboard process probes cloud metadata endpoints
        (169.254.169.254, metadata.google.internal) at start-up to name it, even with
        usage stats off, and a test must never send traffic off this machine."""
        server = self.credentials.server if self.credentials else "https://127.0.0.1:443"
        host, _, port = server.removeprefix("https://").rpartition(":")
        return {
            "HOME": str(self.home),
            "KUBERNETES_SERVICE_HOST": host,
            "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port,
        }

    # -- lifecycle --

    def start(self) -> RayHarness:
        self._thread = threading.Thread(target=self._run, name="ray-harness", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for proc in self.drivers:
            kill_group(proc, grace=1.0)
        for stopper in self._stoppers:
            stopper.join(timeout=10)
        with self._lock:
            if self.autoscaler is not None:
                kill_group(self.autoscaler, grace=1.0)
            for node in list(self.nodes.values()):
                kill_group(node.proc)
        kill_processes_naming(str(self.workdir))

    def cleanup(self) -> None:
        """Remove the harness's files (logs included): call after `stop()`."""
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RayHarness:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.cleanup()

    # -- the watch loop --

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._sync()
            except Exception as err:  # keep watching; the test sees `errors`
                self.errors.append(repr(err))
            self._stop.wait(self.poll_interval)

    def _sync(self) -> None:
        pods = self.core.list_namespaced_pod(
            self.namespace, label_selector=f"{c.LABEL_CLUSTER}={self.cluster}"
        ).items
        by_name = {p.metadata.name: p for p in pods}
        with self._lock:
            for name, node in list(self.nodes.items()):
                pod = by_name.get(name)
                if pod is None or pod.metadata.deletion_timestamp:
                    # Stopped in the background (a kubelet's SIGTERM, then SIGKILL) so
                    # other pods are not kept waiting.
                    self.timeline.mark("ray node stopped", name)
                    stopper = threading.Thread(target=kill_group, args=(node.proc,), daemon=True)
                    stopper.start()
                    self._stoppers.append(stopper)
                    self.gone.append(self.nodes.pop(name))
                    continue
                if node.joined is None and JOINED_MARKER in node.log_text():
                    node.joined = self.timeline.mark("ray node joined", name)
                if node.exited is None and node.proc.poll() is not None:
                    node.exited = self.timeline.mark(
                        "ray node exited", f"{name} rc={node.proc.returncode}"
                    )
            head = next((p for p in pods if is_head(p) and running_ip(p)), None)
            # One head per harness: a replaced head (a new Ray cluster) is out of scope.
            if head is not None and head.metadata.name not in self.nodes and not self.head_address:
                self._start_node(head)
            head_node = self.nodes.get(head.metadata.name) if head is not None else None
            if head_node is None or head_node.joined is None:
                return  # workers wait for the GCS, as the operator's init container does
            if self.credentials is not None and self.autoscaler is None:
                self._start_autoscaler(head)
            for pod in pods:
                if not is_head(pod) and running_ip(pod) and pod.metadata.name not in self.nodes:
                    self._start_node(pod)

    # -- Ray nodes --

    def _start_node(self, pod: client.V1Pod) -> None:
        ray = pod.spec.containers[c.RAY_CONTAINER_INDEX]
        pod_env = container_env(pod, ray, secret_reader(self.core))
        missing = {"RAY_CLOUD_INSTANCE_ID", "RAY_NODE_TYPE_NAME", "KUBERAY_GEN_RAY_START_CMD"}
        missing -= set(pod_env)
        if missing:  # the operator must give every Ray container its identity
            raise AssertionError(f"pod {pod.metadata.name} lacks env {sorted(missing)}")
        flags = {
            k: v
            for k, v in ray_start_flags(pod_env["KUBERAY_GEN_RAY_START_CMD"]).items()
            if k in KEPT_FLAGS
        }
        ip = running_ip(pod)
        assert ip is not None
        flags.update(
            {
                "node-ip-address": ip,
                "block": None,
                # Each pod has its own /tmp/ray (nodes sharing one collide on sockets);
                # short, as Ray's socket paths must stay under 108 bytes.
                "temp-dir": str(self.workdir / f"n{len(self.nodes) + len(self.gone)}"),
                "object-store-memory": str(OBJECT_STORE_BYTES),
                "include-log-monitor": "false",
                "disable-usage-stats": None,
                "min-worker-port": "0",
                "max-worker-port": "0",
                "metrics-export-port": str(free_port()),
                "dashboard-agent-listen-port": str(free_port()),
            }
        )
        if is_head(pod):
            gcs_port = free_port()
            flags.update(
                {
                    "port": str(gcs_port),
                    "include-dashboard": "false",
                    "dashboard-port": str(free_port()),
                }
            )
            if self.dashboard:
                port = next(
                    (p.container_port for p in ray.ports or [] if p.name == "dashboard"),
                    c.DASHBOARD_PORT,
                )
                flags.update(
                    {"include-dashboard": "true", "dashboard-host": ip, "dashboard-port": str(port)}
                )
                self.dashboard_url = f"http://{ip}:{port}"
            self.head_ip, self.head_address = ip, f"{ip}:{gcs_port}"
        else:
            assert self.head_address is not None
            flags["address"] = self.head_address
        args = [RAY, "start"] + [f"--{k}" if v is None else f"--{k}={v}" for k, v in flags.items()]
        identity = {k: v for k, v in pod_env.items() if k in KEPT_ENV}
        env = base_env({**self.in_pod_env(), **self.extra_env, **identity})
        log_path = self.workdir / "logs" / f"{pod.metadata.name}.log"
        proc = self._spawn(args, env, log_path)
        started = self.timeline.mark("ray node starting", pod.metadata.name)
        self.nodes[pod.metadata.name] = RayNode(
            pod.metadata.name, pod_group(pod), ip, proc, log_path, started
        )

    # -- the autoscaler sidecar --

    def _start_autoscaler(self, head: client.V1Pod) -> None:
        assert self.credentials is not None and self.head_address is not None
        sidecar = next(x for x in head.spec.containers if x.name == c.AUTOSCALER_CONTAINER_NAME)
        env = container_env(head, sidecar, secret_reader(self.core))
        command = [expand(w, env) for w in [*(sidecar.command or []), *(sidecar.args or [])]]
        # ["/bin/bash", "-c", "--", "ray kuberay-autoscaler --cluster-name X ..."]
        script = command[-1]
        words = shlex.split(script)
        if words[:2] != ["ray", "kuberay-autoscaler"]:
            raise AssertionError(f"unexpected sidecar command {command}")
        # In a pod the GCS is at <pod IP>:6379; here the head has its own port.
        words += ["--gcs-address", self.head_address]
        args = [
            sys.executable,
            "-m",
            "tests.ray_harness",
            "kuberay-autoscaler",
            "--token-file",
            str(self.credentials.token_file),
            "--",
            *words[2:],
        ]
        full_env = base_env(
            {
                **self.in_pod_env(),
                **self.extra_env,
                **env,
                **kuberay_client_env(self.credentials),
                "AUTOSCALER_METRIC_PORT": str(free_port()),
                "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
            }
        )
        self.autoscaler = self._spawn(args, full_env, self.workdir / "logs" / "autoscaler.log")
        self.timeline.mark("autoscaler started", head.metadata.name)

    def _spawn(self, args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
        """A process in its own session (so a kill reaches its children), logging to
        `log_path` after the command line it runs."""
        with log_path.open("ab") as log:
            log.write(f"$ {shlex.join(args)}\n".encode())
            log.flush()
            return subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                cwd=self.workdir,
            )

    # -- helpers for tests --

    def joined(self) -> dict[str, RayNode]:
        with self._lock:
            return {n: x for n, x in self.nodes.items() if x.joined is not None}

    def autoscaler_log(self) -> str:
        path = self.workdir / "logs" / "autoscaler.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self, tail: int = 40) -> str:
        """The tail of every log (harness logs and Ray's own monitor log), for failures."""
        parts = []
        paths = sorted((self.workdir / "logs").glob("*.log"))
        paths += sorted(self.workdir.glob("n*/session_*/logs/monitor*.log"))
        for path in paths:
            lines = path.read_text(errors="replace").splitlines()[-tail:]
            parts.append(f"--- {path.name} ---\n" + "\n".join(lines))
        return "\n".join(parts)

    def run_driver(
        self,
        script: str,
        *args: str,
        on_line: Callable[[str], None] | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen:
        """Start a Ray driver (`python -c script <head address> <head ip> *args`) on the
        head node, with `env` added; each stdout line goes to `on_line`. Returns the
        process."""
        assert self.head_address is not None and self.head_ip is not None
        proc = subprocess.Popen(
            [sys.executable, "-c", script, self.head_address, self.head_ip, *args],
            stdout=subprocess.PIPE,
            stderr=(self.workdir / "logs" / "driver.log").open("ab"),
            env=base_env({**self.in_pod_env(), **self.extra_env, **(env or {})}),
            start_new_session=True,
            cwd=self.workdir,
            text=True,
        )

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                if on_line is not None:
                    on_line(line.rstrip("\n"))

        threading.Thread(target=pump, name="ray-driver-output", daemon=True).start()
        self.drivers.append(proc)
        return proc


# -- a RayJob's submitter -------------------------------------------------------------------

# Put first on PYTHONPATH of a submitter: resolves the names in HARNESS_HOSTS
# ("name=ip,...") as the cluster's DNS would, so the pod's command line runs unchanged.
SITECUSTOMIZE = """
import os, socket
_hosts = dict(x.split("=", 1) for x in os.environ.get("HARNESS_HOSTS", "").split(",") if x)
_real = socket.getaddrinfo
def _lookup(host, *args, **kwargs):
    return _real(_hosts.get(host, host), *args, **kwargs)
socket.getaddrinfo = _lookup
"""


@dataclass
class SubmitterRunner:
    """Runs the Ray container's command of every Running pod of batch Job `job` on
    this machine (the venv's `ray` first on PATH, the pod's env, `hosts` resolved to
    loopback IPs), then sets the pod's phase from the exit code, as a kubelet would:
    Succeeded or Failed. Each pod runs once."""

    core: client.CoreV1Api
    namespace: str
    job: str
    hosts: dict[str, str] = field(default_factory=dict)  # DNS name -> IP
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sr-", dir="/tmp")))
    runs: dict[str, subprocess.Popen] = field(default_factory=dict)  # pod -> process
    command_lines: list[list[str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> SubmitterRunner:
        (self.workdir / "site").mkdir(parents=True, exist_ok=True)
        (self.workdir / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
        self._thread = threading.Thread(target=self._run, name="submitter", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for proc in self.runs.values():
            kill_group(proc, grace=1.0)
        kill_processes_naming(str(self.workdir))
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log(self, pod: str) -> str:
        path = self.workdir / f"{pod}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._sync()
            except Exception as err:
                self.errors.append(repr(err))
            self._stop.wait(0.2)

    def _sync(self) -> None:
        pods = self.core.list_namespaced_pod(
            self.namespace, label_selector=f"batch.kubernetes.io/job-name={self.job}"
        ).items
        for pod in pods:
            name = pod.metadata.name
            if name not in self.runs and running_ip(pod):
                self._start(pod)
            proc = self.runs.get(name)
            if proc is not None and proc.poll() is not None and pod.status.phase == "Running":
                self._finish(pod, proc.returncode)

    def _start(self, pod: client.V1Pod) -> None:
        container = pod.spec.containers[c.RAY_CONTAINER_INDEX]
        env = container_env(pod, container)
        args = [expand(w, env) for w in [*(container.command or []), *(container.args or [])]]
        self.command_lines.append(args)
        full_env = base_env(
            {
                **env,
                "HOME": str(self.workdir),
                "PYTHONPATH": str(self.workdir / "site"),
                "HARNESS_HOSTS": ",".join(f"{k}={v}" for k, v in self.hosts.items()),
            }
        )
        with (self.workdir / f"{pod.metadata.name}.log").open("ab") as log:
            self.runs[pod.metadata.name] = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, env=full_env,
                start_new_session=True, cwd=self.workdir,
            )  # fmt: skip

    def _finish(self, pod: client.V1Pod, code: int) -> None:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        container = pod.spec.containers[c.RAY_CONTAINER_INDEX]
        status = {
            "phase": "Succeeded" if code == 0 else "Failed",
            "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now}],
            "containerStatuses": [{
                "name": container.name, "image": container.image, "imageID": "",
                "ready": False, "restartCount": 0,
                "state": {"terminated": {"exitCode": code, "reason": "Completed" if code == 0
                                         else "Error", "startedAt": now, "finishedAt": now}},
            }],
        }  # fmt: skip
        self.core.patch_namespaced_pod_status(pod.metadata.name, self.namespace, {"status": status})


# -- the sidecar entry point ------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """`python -m tests.ray_harness kuberay-autoscaler --token-file F -- <args>`: Ray's
    own `ray kuberay-autoscaler <args>`, reading its bearer token from F instead of the
    in-cluster path (server and CA come from the env, see `kuberay_client_env`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] != ["kuberay-autoscaler", "--token-file"] or argv[3:4] != ["--"]:
        raise SystemExit(main.__doc__)
    token_file, rest = argv[2], argv[4:]
    from ray.autoscaler._private.kuberay import node_provider

    node_provider.IN_CLUSTER_TOKEN_PATH = token_file
    from ray.scripts.scripts import cli

    cli.main(args=["kuberay-autoscaler", *rest], prog_name="ray")


if __name__ == "__main__":
    main()
