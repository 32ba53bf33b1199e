"""The Redis cleanup Job of a GCS fault-tolerant RayCluster being deleted (docs/behaviour.md,
GCS fault tolerance).

The Job's pod is the head pod (same image, env, volumes and service account, so it
reaches Redis with the head's address, credentials, TLS settings and storage namespace)
reduced to its Ray container, which runs one Python command instead of `ray start`:
Ray's own `cleanup_redis_storage` deletes the keys of the cluster's storage namespace.
As KubeRay v1.6.1 builds it:

- name `<cluster>-redis-cleanup` (names.py); the head pod's labels with `ray.io/node-type:
  redis-cleanup` and its annotations; a controller ownerReference to the RayCluster;
- only the Ray container (sidecars dropped; init containers and volumes kept), no
  probes, 200m CPU / 256Mi (requests = limits), Redis connect retries 120 x 500 ms;
- `restartPolicy: Never`, `backoffLimit: 0` (one attempt), `activeDeadlineSeconds:
  300` (a hung cleanup fails), and no TTL: the Job goes with the RayCluster.
"""

from __future__ import annotations

import copy
from typing import Any

from .. import constants as c
from .. import spec as g
from ..names import redis_cleanup_job_name
from . import env as e
from .command import REDIS_PASSWORD_ENV, REDIS_USERNAME_ENV, SHELL
from .meta import owner_reference
from .pod import build_head_pod

JOB_RESOURCES = {"cpu": "200m", "memory": "256Mi"}
ACTIVE_DEADLINE_SECONDS = 300
# Ray's Redis client retries its connection this often, this far apart (~60 s in all).
CONNECT_ENV = (
    ("RAY_redis_db_connect_retries", "120"),
    ("RAY_redis_db_connect_wait_milliseconds", "500"),
)
GUIDE = "https://docs.ray.io/en/master/cluster/kubernetes/user-guides/kuberay-gcs-ft.html"

# Runs under `bash -c` inside double quotes: no `"`, `$`, backquote or backslash here.
# The first address of RAY_REDIS_ADDRESS counts (a list names a cluster's nodes); a
# `rediss://` address means TLS; the username is REDIS_USERNAME, else the address's.
CLEANUP_SCRIPT = (
    "import os, sys; "
    "from urllib.parse import urlparse; "
    "from ray._private.gcs_utils import cleanup_redis_storage; "
    f"address = os.environ.get('{e.RAY_REDIS_ADDRESS}', '').split(',')[0].strip(); "
    "url = urlparse(address if '://' in address else 'redis://' + address); "
    "ok = cleanup_redis_storage("
    "host=url.hostname or '', port=url.port or 6379, "
    f"password=os.environ.get('{REDIS_PASSWORD_ENV}', url.password or ''), "
    f"username=os.environ.get('{REDIS_USERNAME_ENV}', url.username or ''), "
    "use_ssl=url.scheme == 'rediss', "
    f"storage_namespace=os.environ.get('{e.RAY_EXTERNAL_STORAGE_NAMESPACE}', '')); "
    "sys.exit(0 if ok else 1)"
)


def redis_cleanup_command() -> tuple[list[str], list[str]]:
    """(command, args) of the cleanup container."""
    script = (
        f"echo \"Deleting this RayCluster's GCS state from Redis. To clean up by hand, "
        f'see {GUIDE}" && python -c "{CLEANUP_SCRIPT}"'
    )
    return list(SHELL), [script]


def build_redis_cleanup_job(cluster: g.Body) -> dict[str, Any]:
    """The cleanup Job, ready to POST. Raises InvalidSpecError as `build_head_pod` does."""
    head = build_head_pod(cluster)
    meta = head["metadata"]
    labels = {**meta["labels"], c.LABEL_NODE_TYPE: c.NODE_TYPE_REDIS_CLEANUP}
    annotations = dict(meta.get("annotations") or {})
    pod_spec = copy.deepcopy(head["spec"])
    ray = pod_spec["containers"][c.RAY_CONTAINER_INDEX]
    pod_spec["containers"] = [ray]
    ray["command"], ray["args"] = redis_cleanup_command()
    ray.pop("livenessProbe", None)
    ray.pop("readinessProbe", None)
    ray["env"] = [
        entry for entry in ray.get("env") or [] if entry["name"] not in dict(CONNECT_ENV)
    ] + [e.value(name, value) for name, value in CONNECT_ENV]
    ray["resources"] = {"requests": dict(JOB_RESOURCES), "limits": dict(JOB_RESOURCES)}
    pod_spec["restartPolicy"] = "Never"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": redis_cleanup_job_name(g.cluster_name(cluster)),
            "namespace": g.cluster_namespace(cluster),
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner_reference(cluster)],
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": ACTIVE_DEADLINE_SECONDS,
            "template": {
                "metadata": {"labels": dict(labels), "annotations": dict(annotations)},
                "spec": pod_spec,
            },
        },
    }


def cleanup_job_selector(cluster_name: str) -> str:
    """The label selector that finds a cluster's cleanup Jobs (ours and KubeRay's)."""
    return f"{c.LABEL_CLUSTER}={cluster_name},{c.LABEL_NODE_TYPE}={c.NODE_TYPE_REDIS_CLEANUP}"
