"""Pods for the real node: the node selector and toleration that put a pod there."""

from __future__ import annotations

from ray_operator_dev.devcluster.nodeimages import BUSYBOX_IMAGE
from ray_operator_dev.devcluster.realnode import LABEL

PLACEMENT = {
    "nodeSelector": {LABEL: "true"},
    "tolerations": [{"key": LABEL, "operator": "Exists", "effect": "NoSchedule"}],
}


def busybox_pod(name: str, script: str, probe: list[str] | None = None) -> dict:
    container: dict = {
        "name": "main",
        "image": BUSYBOX_IMAGE,
        "imagePullPolicy": "Never",  # imported into the node's containerd; never pulled
        "command": ["sh", "-c", script],
    }
    if probe:
        container["readinessProbe"] = {"exec": {"command": probe}, "periodSeconds": 1}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {**PLACEMENT, "containers": [container], "terminationGracePeriodSeconds": 1},
    }
