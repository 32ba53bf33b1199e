"""The real node itself: a pod from a scratch image boots there, passes a real exec
probe, resolves cluster names through CoreDNS and reaches the API server through the
`kubernetes` Service (kube-proxy); deleting it leaves no container or netns."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

from ray_operator_dev.devcluster import ControlPlane, podnet
from ray_operator_dev.devcluster.realnode import LABEL, NODE_NAME
from tests.kubehelpers import wait_for
from tests.realnode.conftest import apply, kubectl
from tests.realnode.manifests import busybox_pod


def pod(cp: ControlPlane, name: str) -> dict:
    return json.loads(kubectl(cp, "get", "pod", name, "-o", "json"))


def ready(cp: ControlPlane, name: str) -> bool:
    conditions = pod(cp, name).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_real_node_registered_with_label_taint_and_bridge_address(real_cp: ControlPlane) -> None:
    node = json.loads(kubectl(real_cp, "get", "node", NODE_NAME, "-o", "json"))
    assert node["metadata"]["labels"][LABEL] == "true"
    assert {"key": LABEL, "value": "true", "effect": "NoSchedule"} in node["spec"]["taints"]
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == podnet.HOST_IP
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")


def test_pod_boots_probes_dns_and_kubernetes_service(real_cp: ControlPlane) -> None:
    apply(real_cp, busybox_pod("smoke", "touch /tmp/ready; exec sleep 3600",
                               probe=["test", "-f", "/tmp/ready"]))  # fmt: skip
    wait_for(lambda: ready(real_cp, "smoke"), timeout=60, what="smoke Ready by its exec probe")
    status = pod(real_cp, "smoke")["status"]
    assert ipaddress.ip_address(status["podIP"]) in ipaddress.ip_network(podnet.NODE_CIDR)
    assert pod(real_cp, "smoke")["spec"]["nodeName"] == NODE_NAME

    # The network rule: one route, the 198.18.0.0/15 range; no default route.
    routes = kubectl(real_cp, "exec", "smoke", "--", "ip", "route")
    assert "default" not in routes and podnet.RULE_RANGE in routes

    # Cluster DNS: the `kubernetes` Service's name resolves, and the search list makes
    # `<svc>.<ns>.svc` work for resolvers that use it (busybox nslookup does not).
    out = kubectl(
        real_cp, "exec", "smoke", "--", "nslookup", "kubernetes.default.svc.cluster.local"
    )
    assert podnet.KUBERNETES_SERVICE_IP in out, out
    resolv = kubectl(real_cp, "exec", "smoke", "--", "cat", "/etc/resolv.conf")
    assert f"nameserver {podnet.CLUSTER_DNS_IP}" in resolv
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv
    # Names outside the cluster are refused here, never forwarded off the machine.
    out = kubectl(real_cp, "exec", "smoke", "--", "nslookup", "example.com", check=False)
    assert podnet.KUBERNETES_SERVICE_IP not in out

    # kube-proxy: the Service IP reaches the API server. Plain HTTP to its TLS port
    # gets the Go TLS server's own answer (busybox has no client for its P-256 cert;
    # the operator pod's tests make real HTTPS calls with its token).
    out = kubectl(real_cp, "exec", "smoke", "--", "sh", "-c",
                  "wget -O- http://kubernetes.default.svc:443/ 2>&1; true")  # fmt: skip
    assert "400 Bad Request" in out, out

    # Logs come from the kubelet through the API server.
    assert "exec sleep" not in kubectl(real_cp, "logs", "smoke")


def test_deleting_a_pod_removes_its_containers_and_netns(real_cp: ControlPlane) -> None:
    apply(real_cp, busybox_pod("doomed", "exec sleep 3600"))
    wait_for(lambda: pod(real_cp, "doomed")["status"].get("phase") == "Running", timeout=60)
    uid = pod(real_cp, "doomed")["metadata"]["uid"]
    node = real_cp.node
    assert node is not None

    def of_pod() -> dict[str, dict]:
        return {
            cid: c
            for cid, c in node.containers().items()
            if c["labels"].get("io.kubernetes.pod.uid") == uid
        }

    mine = of_pod()
    # The sandbox holds the netns file; the container joins it through /proc.
    netns = {c["netns"] for c in mine.values() if c["netns"].startswith("/var/run/netns/")}
    assert len(mine) == 2 and len(netns) == 1  # the sandbox and the container
    assert Path(next(iter(netns))).exists()

    kubectl(real_cp, "delete", "pod", "doomed", "--wait=true", "--timeout=60s")
    wait_for(lambda: not set(mine) & set(node.running_tasks()), timeout=60,
             what="the pod's sandbox and container stopped")  # fmt: skip
    wait_for(lambda: not Path(next(iter(netns))).exists(), timeout=60,
             what=f"the pod's netns {netns} removed")  # fmt: skip
