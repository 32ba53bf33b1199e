"""KubeRay's own operator as a peer: the migration tests run it before and after ours,
and the benchmarks run it side by side.

`ci/build-tools.sh` builds it from its Go module (version `KUBERAY_VERSION` in
`ci/versions.env`) into the tool cache as `kuberay-operator`, with the module's CRDs
next to it. It is a test subject only: nothing in the product depends on it.

`KubeRayProcess` starts it outside the cluster with the flags its Helm chart passes by
default, so what we compare against is what a KubeRay user runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from . import toolcache
from .devcluster.controlplane import free_port

# What the v1.6.1 chart's Deployment passes when its values are left alone.
CHART_DEFAULT_FLAGS = (
    "--enable-leader-election=true",
    "--enable-metrics=true",
    "--reconcile-concurrency=1",
    "--qps=100",
    "--burst=200",
    "--feature-gates=RayClusterStatusConditions=true,RayJobDeletionPolicy=true,"
    "RayMultiHostIndexing=true,RayServiceIncrementalUpgrade=false,RayCronJob=false",
)


def home() -> Path:
    """The tool-cache folder of the pinned KubeRay build (`bin/`, `crds/`)."""
    return toolcache.folder("kuberay", "KUBERAY_VERSION")


def binary() -> Path:
    return home() / "bin" / "kuberay-operator"


def crd_files() -> list[Path]:
    """KubeRay's own CRDs from its module (RayCluster, RayJob, RayService, RayCronJob)."""
    return sorted((home() / "crds").glob("*.yaml"))


@dataclass
class KubeRayProcess:
    """One `kuberay-operator` process talking to a local control plane.

    `namespaces` empty watches every namespace, as the chart's cluster-wide install does.
    The leader-election Lease lives in `lease_namespace`: out of cluster there is no pod
    namespace to default to.
    """

    kubeconfig: Path
    log_path: Path
    namespaces: list[str] = field(default_factory=list)
    lease_namespace: str = "default"
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    metrics_port: int = field(default_factory=free_port)
    probe_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        args = [
            str(binary()),
            f"--kubeconfig={self.kubeconfig}",
            f"--metrics-addr=127.0.0.1:{self.metrics_port}",
            f"--health-probe-bind-address=127.0.0.1:{self.probe_port}",
            f"--leader-election-namespace={self.lease_namespace}",
            "--log-stdout-encoder=console",
            *CHART_DEFAULT_FLAGS,
            *self.extra_args,
        ]
        if self.namespaces:
            args.append(f"--watch-namespace={','.join(self.namespaces)}")
        return args

    def start(self) -> KubeRayProcess:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), **self.env}
        env.pop("KUBERNETES_SERVICE_HOST", None)  # out of cluster, whatever runs the tests
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env)
        return self

    def ready(self) -> bool:
        """controller-runtime's readyz ping: the manager has started."""
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.probe_port}/readyz", timeout=5
            ) as resp:
                return resp.status == 200
        except (urllib.error.URLError, ConnectionError):
            return False

    def metrics_text(self) -> str:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as r:
            return r.read().decode()

    def reconciles(self, controller: str = "raycluster") -> float:
        """controller-runtime's reconcile counter for one controller, all results summed."""
        total = 0.0
        for line in self.metrics_text().splitlines():
            if line.startswith("controller_runtime_reconcile_total{") and (
                f'controller="{controller}"' in line
            ):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def leading(self) -> bool:
        """Whether this process holds the leader Lease (controller-runtime's
        `leader_election_master_status`; a standby has the gauge at 0 or not at all).
        Only the leader starts its controllers and their watches."""
        for line in self.metrics_text().splitlines():
            if line.startswith("leader_election_master_status{"):
                return float(line.rsplit(" ", 1)[1]) == 1.0
        return False

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill."""
        if self.running():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        """SIGTERM: controller-runtime releases its Lease and exits."""
        if self.running():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self, lines: int = 100) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""
