"""Teardown of a real node leaves nothing behind: no container process, shim, mount,
network namespace, veth, bridge, route or iptables rule, whether the node stopped in
order or its containerd and kubelet were SIGKILLed first (as in a crash)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ray_operator_dev.devcluster import ControlPlane, podnet
from tests.kubehelpers import wait_for
from tests.realnode.conftest import apply, kubectl, unavailable_reason
from tests.realnode.manifests import busybox_pod


def leftovers(cp: ControlPlane, netns: set[str]) -> list[str]:
    root = str(cp.root)
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if root.encode() in (proc / "cmdline").read_bytes():
                    found.append(f"process {proc.name}")
            except OSError:
                pass
    mounts = Path("/proc/self/mountinfo").read_text()
    found += [f"mount {m}" for m in mounts.split() if m.startswith(root)]
    found += [f"netns {p}" for p in netns if Path(p).exists()]
    if podnet.bridge_exists():
        found.append(f"bridge {podnet.BRIDGE}")
    for cmd in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            rules = subprocess.run([cmd, "-t", table, "-S"], capture_output=True, text=True)
            found += [
                f"{cmd} -t {table}: {line}"
                for line in rules.stdout.splitlines()
                if "KUBE-" in line or podnet.COMMENT in line
            ]
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    found += [f"route {r}" for r in routes.splitlines() if "198.18." in r or "198.19." in r]
    return found


@pytest.mark.parametrize("crash", [False, True], ids=["in-order", "after-sigkill"])
def test_stop_leaves_nothing(crash: bool) -> None:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    cp = ControlPlane.in_temp_dir(real_nodes=1).start()
    try:
        for i in range(2):
            apply(cp, busybox_pod(f"p{i}", "exec sleep 3600"))
        for i in range(2):
            wait_for(lambda i=i: "Running" in kubectl(cp, "get", "pod", f"p{i}"), timeout=60)
        assert cp.node is not None
        netns = cp.node.netns_paths()
        assert len(netns) == 2
        if crash:
            cp.kill("kubelet")
            cp.kill("containerd")
    finally:
        cp.stop()
    try:
        assert leftovers(cp, netns) == []
    finally:
        cp.cleanup()
