"""Fake nodes that kwok keeps Ready. Pods scheduled to them become Running/Ready."""

from __future__ import annotations

from dataclasses import dataclass, field

KWOK_ANNOTATION = {"kwok.x-k8s.io/node": "fake"}


@dataclass(frozen=True)
class NodePool:
    prefix: str
    count: int
    cpu: str = "64"
    memory: str = "256Gi"
    pods: int = 250
    extra_capacity: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    def nodes(self) -> list[dict]:
        capacity = {
            "cpu": self.cpu,
            "memory": self.memory,
            "pods": str(self.pods),
            "ephemeral-storage": "1Ti",
            **self.extra_capacity,
        }
        return [
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": f"{self.prefix}-{i}",
                    "annotations": dict(KWOK_ANNOTATION),
                    "labels": {
                        "kubernetes.io/hostname": f"{self.prefix}-{i}",
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "type": "kwok",
                        **self.labels,
                    },
                },
                "status": {"capacity": capacity, "allocatable": capacity},
            }
            for i in range(self.count)
        ]


def fake_nodes(
    cpu_nodes: int = 4, gpu_nodes: int = 1, pods_per_node: int = 250
) -> tuple[NodePool, ...]:
    """CPU nodes plus GPU nodes advertising `nvidia.com/gpu`, room for hundreds of pods."""
    return (
        NodePool("kwok-cpu", cpu_nodes, pods=pods_per_node, labels={"node-pool": "cpu"}),
        NodePool(
            "kwok-gpu",
            gpu_nodes,
            pods=pods_per_node,
            extra_capacity={"nvidia.com/gpu": "8"},
            labels={"node-pool": "gpu", "nvidia.com/gpu.present": "true"},
        ),
    )
