"""The main job, end to end on this machine (`make demo`):

1. a local control plane (left running for you to explore);
2. the chart installed: CRDs, RBAC, the operator Deployment (kwok "runs" its pod);
3. the operator running here as a process, with the chart's ServiceAccount token, so
   every call it makes goes through the chart's RBAC exactly as in a real cluster;
4. `helm upgrade` adds a heterogeneous RayCluster (CPU, GPU and high-memory groups)
   from the chart's example values; wait until it is `ready` and show it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from .controlplane import ControlPlane, tools_bin_dir

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "ray-operator"
EXAMPLE_VALUES = CHART / "examples" / "heterogeneous-values.yaml"
RELEASE, NAMESPACE = "ray-operator", "ray-system"


def _run(*args: str, kubeconfig: Path, check: bool = True) -> str:
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "PATH": f"{tools_bin_dir()}:{os.environ.get('PATH', '')}",
    }
    result = subprocess.run(args, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise SystemExit(f"$ {' '.join(args)}\n{result.stdout}{result.stderr}")
    return result.stdout


def _service_account(kubeconfig: Path) -> str:
    manifest = _run("helm", "get", "manifest", RELEASE, "-n", NAMESPACE, kubeconfig=kubeconfig)
    for doc in yaml.safe_load_all(manifest):
        if doc and doc.get("kind") == "ServiceAccount":
            return doc["metadata"]["name"]
    raise SystemExit("the chart rendered no ServiceAccount")


def _token_kubeconfig(cp: ControlPlane, account: str) -> Path:
    """A kubeconfig whose user reads its token from a file (`tokenFile`), kept fresh by
    a refresher process, as the kubelet keeps a pod's projected token: the operator
    re-reads the file, so it outlives every single token."""
    token = cp.root / "operator.token"
    _spawn(cp, "token-refresher", [
        sys.executable, "-m", "ray_operator_dev.devcluster.tokens",
        "--kubeconfig", str(cp.kubeconfig), "--namespace", NAMESPACE,
        "--account", account, "--file", str(token),
    ])  # fmt: skip
    deadline = time.monotonic() + 30
    while not token.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"no token in {token}; see {cp.root / 'logs'}/token-refresher.log")
        time.sleep(0.2)
    path = cp.root / "operator.kubeconfig"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "operator",
        "clusters": [
            {
                "name": "local",
                "cluster": {"server": cp.server, "certificate-authority": str(cp.pki.ca_cert)},
            }
        ],
        "users": [{"name": account, "user": {"tokenFile": str(token)}}],
        "contexts": [{"name": "operator", "context": {"cluster": "local", "user": account}}],
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def _spawn(cp: ControlPlane, name: str, args: list[str], env: dict[str, str] | None = None) -> int:
    """A background process that outlives the demo, recorded in state.json so that
    `make cluster-down` stops it with the control plane."""
    log = (cp.root / "logs" / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        args,
        env={**os.environ, **(env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    state_file = cp.root / "state.json"
    state = json.loads(state_file.read_text())
    state["pids"][name] = proc.pid
    state_file.write_text(json.dumps(state, indent=2))
    return proc.pid


def _start_operator(cp: ControlPlane, kubeconfig: Path) -> int:
    return _spawn(cp, "ray-operator", [
        sys.executable, "-m", "ray_operator.cli", "run", "--namespace", NAMESPACE,
        "--log-format=text", "--liveness=http://127.0.0.1:0/healthz", "--metrics-address=",
    ], env={"KUBECONFIG": str(kubeconfig)})  # fmt: skip


def _wait_ready(kubeconfig: Path, operator_pid: int, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{operator_pid}").exists():
            raise SystemExit(f"the operator exited; its log:\n{log.read_text()[-3000:]}")
        out = _run(
            "kubectl", "get", "rayclusters", "-n", NAMESPACE, "-o", "json", kubeconfig=kubeconfig
        )
        items = json.loads(out)["items"]
        if items and all(i.get("status", {}).get("state") == "ready" for i in items):
            return
        time.sleep(1)
    raise SystemExit("the RayCluster did not become ready in time; see the operator log")


def run(root: Path) -> int:
    started = time.monotonic()
    print("1/4 starting a local control plane ...", flush=True)
    cp = ControlPlane(root=root).start()
    kc = cp.kubeconfig
    print("2/4 installing the chart (CRDs, RBAC, operator Deployment) ...", flush=True)
    _run(
        "helm",
        "upgrade",
        "--install",
        RELEASE,
        str(CHART),
        "-n",
        NAMESPACE,
        "--create-namespace",
        "--set",
        f"watchNamespaces={{{NAMESPACE}}}",
        "--wait",
        kubeconfig=kc,
    )
    print("3/4 running the operator with the chart's ServiceAccount token ...", flush=True)
    pid = _start_operator(cp, _token_kubeconfig(cp, _service_account(kc)))
    print("4/4 adding a heterogeneous RayCluster with helm upgrade ...", flush=True)
    _run(
        "helm",
        "upgrade",
        RELEASE,
        str(CHART),
        "-n",
        NAMESPACE,
        "--reset-then-reuse-values",
        "-f",
        str(EXAMPLE_VALUES),
        kubeconfig=kc,
    )
    _wait_ready(kc, pid, root / "logs" / "ray-operator.log")
    print(f"\nready after {time.monotonic() - started:.0f}s\n")
    print(
        _run("kubectl", "get", "rayclusters,pods,svc", "-n", NAMESPACE, "-o", "wide", kubeconfig=kc)
    )
    print(f"""What is running:
  control plane  {cp.server} (logs in {root / "logs"})
  operator       pid {pid}, as ServiceAccount {NAMESPACE}/{_service_account(kc)}, log:
                 {root / "logs" / "ray-operator.log"}

Continue by hand:
  export KUBECONFIG={kc}
  export PATH={tools_bin_dir()}:"$PATH"
  kubectl get rayclusters -n {NAMESPACE} -w
  helm upgrade {RELEASE} charts/ray-operator -n {NAMESPACE} --reset-then-reuse-values \\
      --set rayClusters.demo.workerGroups.cpu.replicas=4
  kubectl describe raycluster demo -n {NAMESPACE}
  make cluster-down     # stops everything started here
""")
    return 0
