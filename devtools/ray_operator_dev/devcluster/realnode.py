"""A real node beside the kwok ones: containerd + runc (Debian packages), the kubelet
and kube-proxy of the pinned Kubernetes release, and CoreDNS for cluster DNS, all
plain processes on this machine. Pods that ask for it (node selector + toleration)
really boot here; the network rule is in podnet.py.

This module writes the components' configuration and command lines; ControlPlane
starts and stops the processes. Teardown (`drain`, then `sweep`) removes every
container, mount and network namespace the node made, each by its own id.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import podnet
from .nodeimages import PAUSE_IMAGE
from .pki import Pki, client_cert

NODE_NAME = "real-0"
LABEL = "ray-operator.dev/real-node"  # label and NoSchedule taint of the real node
# Every registry request of this containerd goes to a closed local port, so a pod
# naming an image that was not imported fails at once instead of reaching a registry.
NO_REGISTRY_ENV = {"HTTPS_PROXY": "http://127.0.0.1:1", "HTTP_PROXY": "http://127.0.0.1:1",
                   "NO_PROXY": ""}  # fmt: skip
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
REQUIRED_HOST_TOOLS = ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "iptables", "ip")
CNI_BIN_DIR = Path("/usr/lib/cni")


def missing_host_tools() -> list[str]:
    """What this machine lacks to run a real node (installed by `make real-node-deps`)."""
    path = f"{os.environ.get('PATH', '')}:{SYSTEM_PATH}"
    missing = [t for t in REQUIRED_HOST_TOOLS if shutil.which(t, path=path) is None]
    missing += [f"{CNI_BIN_DIR}/{p}" for p in ("bridge", "host-local", "loopback")
                if not (CNI_BIN_DIR / p).exists()]  # fmt: skip
    if os.geteuid() != 0:
        missing.append("root (bridges, mounts and containers need it)")
    return missing


@dataclass
class RealNode:
    root: Path
    pki: Pki
    server: str  # the API server's URL on the bridge address
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def containerd_socket(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    @property
    def pod_logs_dir(self) -> Path:
        return self.root / "pod-logs"

    def container_log_tails(self, lines: int = 40) -> dict[str, str]:
        """The end of every container's log on this node: `ns/pod/container` -> text."""
        tails = {}
        for log in sorted(self.pod_logs_dir.glob("*/*/*.log")):
            ns, pod, _uid = log.parent.parent.name.split("_", 2)
            text = log.read_text(errors="replace").splitlines()[-lines:]
            tails[f"{ns}/{pod}/{log.parent.name}/{log.name}"] = "\n".join(text)
        return tails

    @property
    def runc_root(self) -> Path:
        return self.root / "runc"

    @property
    def network(self) -> podnet.PodNetwork:
        return podnet.PodNetwork(self.root / "cni")

    def prepare(self) -> None:
        """Write every config file and credential; the ports must be set."""
        (self.root / "containerd").mkdir(parents=True, exist_ok=True)
        (self.root / "containerd.toml").write_text(self._containerd_config())
        (self.root / "resolv.conf").write_text("")  # the host's resolvers stay out of pods
        certs = self.root / "certs"
        certs.mkdir(exist_ok=True)
        node_cert = client_cert(self.pki, certs, "kubelet",
                                f"/O=system:nodes/CN=system:node:{NODE_NAME}")  # fmt: skip
        proxy_cert = client_cert(self.pki, certs, "kube-proxy", "/CN=system:kube-proxy")
        self._kubeconfig("kubelet", *node_cert)
        self._kubeconfig("kube-proxy", *proxy_cert)
        (self.root / "kubelet.yaml").write_text(yaml.safe_dump(self._kubelet_config()))
        (self.root / "kube-proxy.yaml").write_text(yaml.safe_dump(self._kube_proxy_config()))

    def _kubeconfig(self, name: str, cert: Path, key: Path) -> Path:
        path = self.root / f"{name}.kubeconfig"
        path.write_text(yaml.safe_dump(kubeconfig(self.server, self.pki.ca_cert, cert, key)))
        return path

    # -- containerd --------------------------------------------------------------------

    def _containerd_config(self) -> str:
        c = self.root / "containerd"
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        return f"""\
version = 2
root = "{c / "root"}"
state = "{c / "state"}"
# Only what a CRI node needs; no tracing exporters, no other snapshotters.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{self.containerd_socket}"
[ttrpc]
  address = "{c / "containerd.sock.ttrpc"}"
[debug]
  address = ""
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{c / "opt"}"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # root here lacks CAP_SYS_RESOURCE: without this every sandbox fails in runc with
  # "can't get final child's PID from pipe: EOF" (it may not lower oom_score_adj).
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_cdi = false
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  # runc's state in our run dir, so teardown finds every container by id.
  Root = "{self.runc_root}"
[{cri}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{self.network.conf_dir}"
  max_conf_num = 1
"""

    def containerd_args(self) -> list[str]:
        return [
            shutil.which("containerd", path=SYSTEM_PATH) or "containerd",
            f"--config={self.root / 'containerd.toml'}",
            "--log-level=warn",
        ]

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        ctr = shutil.which("ctr", path=SYSTEM_PATH) or "ctr"
        return subprocess.run(
            [ctr, "--address", str(self.containerd_socket), "-n", "k8s.io", *args],
            capture_output=True, text=True, check=check, timeout=60,
        )  # fmt: skip

    def containerd_healthy(self) -> bool:
        return self.containerd_socket.exists() and self.ctr("version", check=False).returncode == 0

    # -- kubelet -----------------------------------------------------------------------

    def _kubelet_config(self) -> dict:
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": podnet.HOST_IP,  # logs/exec from the API server arrive here
            "port": self.ports["kubelet"],
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": self.ports["kubelet-healthz"],
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(self.pki.ca_cert)},
            },
            "authorization": {"mode": "Webhook"},
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            # This machine has v1 cgroup controllers plus a cgroup2 mount (hybrid):
            # cgroupfs, no QoS tree and no node-allocatable enforcement.
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupsPerQOS": False,
            "enforceNodeAllocatable": [],
            "failSwapOn": False,
            "clusterDNS": [podnet.CLUSTER_DNS_IP],
            "clusterDomain": "cluster.local",
            "resolvConf": str(self.root / "resolv.conf"),
            "podLogsDir": str(self.pod_logs_dir),  # not /var/log/pods: all in the run dir
            "registerWithTaints": [{"key": LABEL, "value": "true", "effect": "NoSchedule"}],
            # The imported images are all there is: never collect them, never evict
            # for a fuller disk than a developer machine usually has.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
            },
            "serializeImagePulls": False,
            "maxPods": 110,
            "rotateCertificates": False,
            "serverTLSBootstrap": False,
            "tlsCertFile": "",
        }

    def kubelet_args(self) -> list[str]:
        return [
            "kubelet",
            f"--config={self.root / 'kubelet.yaml'}",
            f"--kubeconfig={self.root / 'kubelet.kubeconfig'}",
            f"--root-dir={self.root / 'kubelet'}",
            f"--cert-dir={self.root / 'kubelet-certs'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={podnet.HOST_IP}",
            f"--node-labels={LABEL}=true",
            "--v=1",
        ]

    # -- kube-proxy --------------------------------------------------------------------

    def _kube_proxy_config(self) -> dict:
        return {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(self.root / "kube-proxy.kubeconfig")},
            "hostnameOverride": NODE_NAME,
            "mode": "iptables",
            "healthzBindAddress": f"127.0.0.1:{self.ports['kube-proxy-healthz']}",
            "metricsBindAddress": f"127.0.0.1:{self.ports['kube-proxy-metrics']}",
            # NodePorts only on the bridge address: no route_localnet, nothing on eth0.
            "nodePortAddresses": [f"{podnet.HOST_IP}/32"],
            "iptables": {"localhostNodePorts": False, "masqueradeAll": False},
            # 0 = leave the host's conntrack sysctls alone.
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
        }

    def kube_proxy_args(self) -> list[str]:
        return ["kube-proxy", f"--config={self.root / 'kube-proxy.yaml'}", "--v=1"]

    def kube_proxy_cleanup(self, bin_dir: Path) -> None:
        """Remove every KUBE-* rule kube-proxy made (run after it stopped)."""
        subprocess.run([str(bin_dir / "kube-proxy"), "--cleanup", "--v=0"],
                       capture_output=True, timeout=60)  # fmt: skip

    # -- CoreDNS -----------------------------------------------------------------------

    def coredns_args(self, admin_kubeconfig: Path) -> list[str]:
        corefile = self.root / "Corefile"
        # Only the cluster zone and the reverse zones of its ranges: no `forward`, so
        # other names get REFUSED here and never leave this machine.
        corefile.write_text(f"""\
cluster.local:53 198.18.0.0/15:53 {{
    bind {podnet.CLUSTER_DNS_IP}
    health 127.0.0.1:{self.ports["coredns-health"]}
    errors
    cache 5
    kubernetes cluster.local 198.18.0.0/15 {{
        kubeconfig {admin_kubeconfig} local
        pods insecure
    }}
}}
""")
        return ["coredns", "-conf", str(corefile)]

    # -- teardown ----------------------------------------------------------------------

    def running_tasks(self) -> list[str]:
        out = self.ctr("tasks", "ls", check=False).stdout.splitlines()[1:]
        return [line.split()[0] for line in out if line.split()[-1:] == ["RUNNING"]]

    def containers(self) -> dict[str, dict]:
        """Every container containerd holds (pod sandboxes included): id -> its
        Kubernetes labels and network namespace path, from its OCI spec."""
        found = {}
        for cid in self.ctr("containers", "ls", "-q", check=False).stdout.split():
            try:
                info = json.loads(self.ctr("containers", "info", cid, check=False).stdout)
            except ValueError:
                continue  # removed in between
            namespaces = ((info.get("Spec") or {}).get("linux") or {}).get("namespaces") or []
            netns = next((n.get("path", "") for n in namespaces if n.get("type") == "network"), "")
            found[cid] = {"labels": info.get("Labels") or {}, "netns": netns}
        return found

    def netns_paths(self) -> set[str]:
        """The network namespace of every pod sandbox containerd knows."""
        return {
            c["netns"]
            for c in self.containers().values()
            if c["netns"].startswith("/var/run/netns/")
        }

    def remove_containers(self) -> list[str]:
        """Through containerd, while it runs: kill and delete each task, then each
        container (and its snapshot)."""
        removed = []
        for cid in self.ctr("containers", "ls", "-q", check=False).stdout.split():
            self.ctr("tasks", "kill", "-s", "SIGKILL", cid, check=False)
            self.ctr("tasks", "delete", "-f", cid, check=False)
            if self.ctr("containers", "delete", cid, check=False).returncode == 0:
                removed.append(f"container {cid[:12]}")
        return removed

    def sweep(self, netns: set[str]) -> list[str]:
        """After containerd stopped: what a crash leaves behind. runc containers in our
        runc root, shims of our containerd, mounts under our run dir, the given pod
        network namespaces, then the pod network. Each by its own id."""
        removed = []
        runc = shutil.which("runc", path=SYSTEM_PATH) or "runc"
        ns_root = self.runc_root / "k8s.io"
        if ns_root.exists():
            netns = netns | _runc_netns(ns_root)  # known even when containerd is gone
            for cid in sorted(p.name for p in ns_root.iterdir()):
                subprocess.run([runc, "--root", str(ns_root), "kill", cid, "KILL"],
                               capture_output=True)  # fmt: skip
                subprocess.run([runc, "--root", str(ns_root), "delete", "--force", cid],
                               capture_output=True)  # fmt: skip
                removed.append(f"runc container {cid[:12]}")
        for pid in _pids_naming(str(self.containerd_socket)):
            _kill(pid)
            removed.append(f"process {pid}")
        for mount in _mounts_under(self.root):
            if subprocess.run(["umount", "-l", mount], capture_output=True).returncode == 0:
                removed.append(f"mount {mount}")
        for path in sorted(netns):
            subprocess.run(["umount", path], capture_output=True)
            if Path(path).exists():
                Path(path).unlink(missing_ok=True)
                removed.append(f"netns {path}")
        removed += remove_kubelet_iptables()
        removed += self.network.teardown()
        return removed


# The kubelet adds these chains (canaries, a hint, and a rule dropping packets from elsewhere to
# 127.0.0.0/8) and never removes them; kube-proxy --cleanup leaves them too.
KUBELET_CHAINS = ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT")


def remove_kubelet_iptables() -> list[str]:
    removed = []
    for cmd in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            rules = subprocess.run([cmd, "-t", table, "-S"], capture_output=True, text=True)
            for line in rules.stdout.splitlines():
                words = line.split()
                jumps = any(f"-j {c}" in line for c in KUBELET_CHAINS)
                if words[:1] == ["-A"] and jumps and words[1] not in KUBELET_CHAINS:
                    subprocess.run([cmd, "-t", table, "-D", *words[1:]], capture_output=True)
            for chain in KUBELET_CHAINS:
                if f"-N {chain}" in rules.stdout.splitlines():
                    subprocess.run([cmd, "-t", table, "-F", chain], capture_output=True)
                    subprocess.run([cmd, "-t", table, "-X", chain], capture_output=True)
                    removed.append(f"{cmd} -t {table} chain {chain}")
    return removed


def kubeconfig(server: str, ca: Path, cert: Path, key: Path) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server,
                                                   "certificate-authority": str(ca)}}],
        "users": [{"name": "user", "user": {"client-certificate": str(cert),
                                            "client-key": str(key)}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "user"}}],
        "current-context": "local",
    }  # fmt: skip


def _runc_netns(ns_root: Path) -> set[str]:
    """Pod network namespaces named in runc's state of our containers (the sandboxes
    create them; containerd's own record is gone when it was killed)."""
    paths = set()
    for state in ns_root.glob("*/state.json"):
        try:
            namespaces = json.loads(state.read_text())["config"]["namespaces"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        for ns in namespaces or []:
            if ns.get("type") == "NEWNET" and ns.get("path", "").startswith("/var/run/netns/"):
                paths.add(ns["path"])
    return paths


def _pids_naming(text: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if text.encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def _kill(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        return
    end = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and time.monotonic() < end:
        time.sleep(0.05)


def _mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root`, deepest first (so each can be unmounted)."""
    prefix = str(root.resolve())
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(set(points), key=len, reverse=True)
