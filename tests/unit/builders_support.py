"""RayCluster bodies for the builder tests, written the way users write them (optional
fields omitted unless a test sets them), plus a check for what the API server would
refuse in a Pod."""

from __future__ import annotations

import copy
from typing import Any

IMAGE = "rayproject/ray:2.41.0"


def ray_container(name: str = "ray", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": IMAGE, **fields}


def worker(
    name: str = "small", container: dict[str, Any] | None = None, **fields: Any
) -> dict[str, Any]:
    return {
        "groupName": name,
        "template": {"spec": {"containers": [container or ray_container("worker")]}},
        **fields,
    }


def cluster(
    *,
    head: dict[str, Any] | None = None,
    head_container: dict[str, Any] | None = None,
    workers: list[dict[str, Any]] | None = None,
    name: str = "demo",
    namespace: str = "ns",
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A RayCluster body; `head` extends headGroupSpec, `spec` the top-level spec."""
    head_spec = {
        "template": {"spec": {"containers": [head_container or ray_container("ray-head")]}}
    }
    head_spec.update(head or {})
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "uid": "uid-1234"}
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": metadata,
        "spec": {
            "headGroupSpec": head_spec,
            "workerGroupSpecs": [worker()] if workers is None else workers,
            **spec,
        },
    }


def env_map(container: dict[str, Any]) -> dict[str, Any]:
    """name -> value, or the valueFrom dict for references."""
    return {
        e["name"]: e["value"] if "value" in e else e["valueFrom"] for e in container.get("env", [])
    }


def frozen(body: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(body)


def pod_problems(pod: dict[str, Any]) -> list[str]:
    """Things the API server's Pod validation would reject (a subset that builders can
    get wrong): duplicate names, long port names, env entries with both value and
    valueFrom, mounts of missing volumes, probes without exactly one action."""
    problems = []
    spec = pod["spec"]
    containers = spec.get("containers", []) + spec.get("initContainers", [])
    names = [c["name"] for c in containers]
    if len(names) != len(set(names)):
        problems.append(f"duplicate container names {names}")
    volumes = [v["name"] for v in spec.get("volumes", [])]
    if len(volumes) != len(set(volumes)):
        problems.append(f"duplicate volume names {volumes}")
    for c in containers:
        ports = [p.get("name") for p in c.get("ports", []) if p.get("name")]
        if len(ports) != len(set(ports)) or any(len(p) > 15 for p in ports):
            problems.append(f"{c['name']}: bad port names {ports}")
        numbers = [(p["containerPort"], p.get("protocol", "TCP")) for p in c.get("ports", [])]
        if len(numbers) != len(set(numbers)):
            problems.append(f"{c['name']}: duplicate container ports {numbers}")
        env_names = [e["name"] for e in c.get("env", [])]
        if len(env_names) != len(set(env_names)):
            problems.append(f"{c['name']}: duplicate env names {env_names}")
        for e in c.get("env", []):
            if "value" in e and "valueFrom" in e:
                problems.append(f"{c['name']}: env {e['name']} has value and valueFrom")
        for m in c.get("volumeMounts", []):
            if m["name"] not in volumes:
                problems.append(f"{c['name']}: mounts missing volume {m['name']}")
        paths = [m["mountPath"] for m in c.get("volumeMounts", [])]
        if len(paths) != len(set(paths)):
            problems.append(f"{c['name']}: duplicate mount paths {paths}")
        for probe in ("livenessProbe", "readinessProbe"):
            if probe in c:
                actions = [a for a in ("exec", "httpGet", "tcpSocket", "grpc") if a in c[probe]]
                if len(actions) != 1:
                    problems.append(f"{c['name']}: {probe} has actions {actions}")
    if len(pod["metadata"].get("generateName", "")) > 58:
        problems.append("generateName longer than 58 characters")
    return problems
