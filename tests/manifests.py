"""RayCluster manifests for tests, written the way KubeRay users write them."""

from __future__ import annotations

import copy
from typing import Any

RAY_IMAGE = "rayproject/ray:2.60.0"


def container(
    cpu: str, memory: str, gpu: str | int | None = None, name: str = "ray"
) -> dict[str, Any]:
    limits = {"cpu": cpu, "memory": memory}
    if gpu:
        limits["nvidia.com/gpu"] = gpu
    return {
        "name": name,
        "image": RAY_IMAGE,
        "resources": {"limits": dict(limits), "requests": {"cpu": cpu, "memory": memory}},
    }


def worker_group(
    name: str, replicas: int, cpu: str = "1", memory: str = "2Gi", gpu: str | int | None = None,
    **extra: Any,
) -> dict[str, Any]:  # fmt: skip
    group = {
        "groupName": name,
        "replicas": replicas,
        "minReplicas": 0,
        "maxReplicas": 1000,
        "rayStartParams": {},
        "template": {"spec": {"containers": [container(cpu, memory, gpu, name="ray-worker")]}},
    }
    group.update(extra)
    return group


def raycluster(name: str, *groups: dict[str, Any], **spec: Any) -> dict[str, Any]:
    """Head (2 CPU, 4Gi) plus the given worker groups."""
    body = {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": name},
        "spec": {
            "rayVersion": "2.60.0",
            "headGroupSpec": {
                "rayStartParams": {},
                "template": {"spec": {"containers": [container("2", "4Gi", name="ray-head")]}},
            },
            "workerGroupSpecs": [copy.deepcopy(g) for g in groups],
        },
    }
    body["spec"].update(spec)
    return body


def heterogeneous(name: str, cpu_workers: int = 2, gpu_workers: int = 1) -> dict[str, Any]:
    return raycluster(
        name,
        worker_group("cpu", cpu_workers, cpu="4", memory="8Gi"),
        # a bare number, as people write it in YAML: the API server accepts it
        worker_group("gpu", gpu_workers, cpu="8", memory="32Gi", gpu=1),
    )
