"""Fixtures for tests on a real node (containers really run). Each test module gets its
own control plane with one real node (`real_cp`, about 5 s to start); only one such
control plane may run per machine, so modules run them one after the other.

When the machine cannot run a real node (not root, packages or tools missing, or
another real-node control plane is running), every test here is skipped with the exact
reason. On failure, the kubelet, containerd, kube-proxy and CoreDNS log tails and every
container's log tail are attached to the report.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import pytest

from ray_operator_dev.devcluster import ControlPlane, podnet, tools_bin_dir
from ray_operator_dev.devcluster.controlplane import NODE_TOOLS
from ray_operator_dev.devcluster.realnode import missing_host_tools


def unavailable_reason() -> str | None:
    missing = missing_host_tools()
    missing += [str(tools_bin_dir() / t) for t in NODE_TOOLS if not (tools_bin_dir() / t).exists()]
    if missing:
        return f"real node: missing {', '.join(missing)} (make real-node-deps)"
    if podnet.bridge_exists():
        return f"real node: bridge {podnet.BRIDGE} exists, another real-node cluster runs here"
    return None


@pytest.fixture(scope="module")
def real_cp() -> Iterator[ControlPlane]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    cp = ControlPlane.in_temp_dir(real_nodes=1).start()
    yield cp
    cp.cleanup()


def kubectl(cp: ControlPlane, *args: str, check: bool = True, stdin: str | None = None) -> str:
    env = {**os.environ, "KUBECONFIG": str(cp.kubeconfig)}
    result = subprocess.run(
        [str(tools_bin_dir() / "kubectl"), *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {result.stdout}{result.stderr}")
    return result.stdout


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    cp = getattr(item, "funcargs", {}).get("real_cp")
    if report.failed and isinstance(cp, ControlPlane):
        for component in ("kubelet", "containerd", "kube-proxy", "coredns", "kube-apiserver"):
            report.sections.append((f"{component} log (tail)", cp.log_tail(component, 40)))
        if cp.node is not None:
            for name, tail in cp.node.container_log_tails().items():
                report.sections.append((f"container {name} (tail)", tail))
    return report


def apply(cp: ControlPlane, manifest: dict, namespace: str = "default") -> None:
    kubectl(cp, "apply", "-n", namespace, "-f", "-", stdin=json.dumps(manifest))
