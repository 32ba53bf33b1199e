"""emptyDir volumes the operator adds to Ray pods, and the names they get."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

SHM_PATH = "/dev/shm"
SHM_VOLUME = "shared-mem"
RAY_LOGS_PATH = "/tmp/ray"
RAY_LOGS_VOLUME = "ray-logs"


def unique_name(base: str, taken: Iterable[str]) -> str:
    """`base`, or `base-2`, `base-3`, ... if a volume of that name exists already."""
    taken = set(taken)
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def _same_path(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def mount_at(container: Mapping[str, Any], path: str) -> dict[str, Any] | None:
    """The container's volume mount at `path`, if any."""
    for mount in container.get("volumeMounts") or []:
        if _same_path(str(mount.get("mountPath", "")), path):
            return mount
    return None


def add_empty_dir(
    pod_spec: dict[str, Any],
    base_name: str,
    *,
    medium: str | None = None,
    size_limit: str | None = None,
) -> str:
    """Add an emptyDir volume under a name no other volume has; return that name."""
    volumes = pod_spec.setdefault("volumes", [])
    name = unique_name(base_name, (v.get("name", "") for v in volumes))
    empty_dir: dict[str, Any] = {}
    if medium:
        empty_dir["medium"] = medium
    if size_limit:
        empty_dir["sizeLimit"] = size_limit
    volumes.append({"name": name, "emptyDir": empty_dir})
    return name


def add_mount(container: dict[str, Any], volume: str, path: str) -> None:
    container.setdefault("volumeMounts", []).append({"name": volume, "mountPath": path})
