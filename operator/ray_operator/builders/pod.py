"""Head and worker pods, as JSON-shaped dicts ready to POST (docs/behaviour.md, Pods and
Services; Autoscaling).

`build_head_pod(cluster)` and `build_worker_pod(cluster, group_index)` (the index into
`spec.workerGroupSpecs`, the order the autoscaler patches by) start from a deep copy of
the group's pod template, so the RayCluster body is never changed, and add:

- metadata: `generateName` (names.py), the cluster's namespace, labels (meta.py), the
  template's annotations plus `ray.io/pod-template-hash`, the owner reference. Only
  labels and annotations are taken from the template's metadata.
- the Ray container (container 0): the `ray start` command (command.py), env vars
  (env.py), a `metrics` port (the `metrics-export-port`, 8080 by default) unless a
  port of that name or number exists, and default probes (probes.py). Only `metrics`
  is added: the head Service gets its other ports from constants.DEFAULT_PORTS, and
  container ports do not affect reachability.
- `/dev/shm`: a memory-backed emptyDir sized to the container's memory limit (else
  request), unless the Ray container mounts something there already or
  `plasma-directory` moves the object store elsewhere.
- head with in-tree autoscaling: the autoscaler sidecar, `/tmp/ray` shared by both
  containers (reusing the Ray container's own mount there if it has one), and
  `serviceAccountName: <cluster>` unless the template names one.
- workers: an init container `wait-gcs-ready` that loops on `ray health-check` until the
  head's GCS answers (same image, pull policy, env, envFrom, volume mounts and
  securityContext as the Ray container, so TLS settings and restricted namespaces
  work; 200m CPU / 256Mi, requests = limits). A user init container of that name
  replaces ours.
- every init container gets `FQ_RAY_IP` and `RAY_IP` (the head's address), as upstream.
- autoscaler v2: `restartPolicy: Never` on every Ray pod (a Ray node must not come back
  under the same pod name) and `RAY_enable_autoscaler_v2=1`.
- GCS fault tolerance: env vars (env.py) and head annotations `ray.io/ft-enabled` and
  `ray.io/external-storage-namespace`.
"""

from __future__ import annotations

import copy
from typing import Any

from .. import constants as c
from .. import names
from .. import spec as cluster_spec
from ..errors import InvalidSpecError
from ..spec import Body, NodeGroup
from . import auth, probes, volumes
from . import env as e
from .autoscaler import autoscaler_service_account_name, build_autoscaler_container
from .command import RayStart, container_command, ray_start
from .meta import owner_reference, pod_labels, template_hash

INIT_CONTAINER_NAME = "wait-gcs-ready"
INIT_CONTAINER_RESOURCES = {"cpu": "200m", "memory": "256Mi"}
HEALTH_CHECK_INTERVAL_S = 5


def build_head_pod(
    cluster: Body, *, cluster_domain: str = c.DEFAULT_CLUSTER_DOMAIN
) -> dict[str, Any]:
    return _build_pod(cluster, cluster_spec.head_group(cluster), cluster_domain)


def build_worker_pod(
    cluster: Body, group_index: int, *, cluster_domain: str = c.DEFAULT_CLUSTER_DOMAIN
) -> dict[str, Any]:
    return _build_pod(cluster, cluster_spec.worker_group(cluster, group_index), cluster_domain)


def _build_pod(cluster: Body, group: NodeGroup, cluster_domain: str) -> dict[str, Any]:
    group.ray_container()  # raises if the template has no containers
    template = copy.deepcopy(dict(group.template))
    pod_spec: dict[str, Any] = template.get("spec") or {}
    ray = pod_spec["containers"][c.RAY_CONTAINER_INDEX]
    fqdn = cluster_spec.head_fqdn(cluster, cluster_domain)
    start = ray_start(cluster, group, cluster_domain=cluster_domain)

    if group.is_head and cluster_spec.autoscaling_enabled(cluster):
        _add_autoscaler(cluster, group, pod_spec)
    if not group.is_head:
        _add_wait_for_gcs(pod_spec, ray, fqdn, cluster_spec.gcs_port(cluster))
    for init in pod_spec.get("initContainers") or []:
        e.add_missing(init, [e.value(e.FQ_RAY_IP, fqdn), e.value(e.RAY_IP, fqdn.split(".")[0])])
    if cluster_spec.autoscaler_v2(cluster):
        pod_spec["restartPolicy"] = "Never"

    _add_shared_memory(pod_spec, ray, start)
    _add_metrics_port(ray, int(start.params["metrics-export-port"]))
    wrapped = container_command(
        ray, start.command, overwrite=cluster_spec.overwrite_container_cmd(cluster, group)
    )
    if wrapped is not None:
        ray["command"], ray["args"] = wrapped
    e.add_missing(ray, e.ray_container_env(cluster, group, start.command, fqdn))
    _add_token_auth(cluster, pod_spec)
    _add_probes(cluster, group, ray, start)

    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(cluster, group, template.get("metadata") or {}),
        "spec": pod_spec,
    }


def _add_token_auth(cluster: Body, pod_spec: dict[str, Any]) -> None:
    """`authOptions` (auth.py): the Ray container, the autoscaler sidecar and the
    `wait-gcs-ready` init container (also a user's of that name: its `ray
    health-check` must authenticate too), as KubeRay does."""
    if not auth.token_auth(cluster):
        return
    auth.add_k8s_token_volume(cluster, pod_spec)
    for container in pod_spec["containers"]:
        if container is pod_spec["containers"][c.RAY_CONTAINER_INDEX] or (
            container.get("name") == c.AUTOSCALER_CONTAINER_NAME
            and cluster_spec.autoscaling_enabled(cluster)
        ):
            auth.add_to_container(cluster, container)
    for init in pod_spec.get("initContainers") or []:
        if init.get("name") == INIT_CONTAINER_NAME:
            auth.add_to_container(cluster, init)


def _metadata(cluster: Body, group: NodeGroup, template_meta: dict[str, Any]) -> dict[str, Any]:
    annotations = dict(template_meta.get("annotations") or {})
    annotations[c.ANNOTATION_TEMPLATE_HASH] = template_hash(group)
    if cluster_spec.overwrite_container_cmd(cluster, group):
        annotations[c.ANNOTATION_OVERWRITE_CMD] = "true"
    if group.is_head:
        ft = cluster_spec.gcs_ft_enabled(cluster)
        annotations[c.ANNOTATION_FT_ENABLED] = "true" if ft else "false"
        if ft:
            annotations[c.ANNOTATION_EXTERNAL_STORAGE_NS] = e.external_storage_namespace(cluster)
    name = cluster_spec.cluster_name(cluster)
    return {
        "generateName": (
            names.head_pod_generate_name(name)
            if group.is_head
            else names.worker_pod_generate_name(name, group.name)
        ),
        "namespace": cluster_spec.cluster_namespace(cluster),
        "labels": pod_labels(cluster, group),
        "annotations": annotations,
        "ownerReferences": [owner_reference(cluster)],
    }


def _add_autoscaler(cluster: Body, group: NodeGroup, pod_spec: dict[str, Any]) -> None:
    containers = pod_spec["containers"]
    for i, container in enumerate(containers):
        if container.get("name") == c.AUTOSCALER_CONTAINER_NAME:
            raise InvalidSpecError(
                f"{group.path}.template.spec.containers[{i}].name",
                f'"{c.AUTOSCALER_CONTAINER_NAME}" is the name of the sidecar the operator adds '
                "with enableInTreeAutoscaling: rename this container",
            )
    sidecar = build_autoscaler_container(cluster)
    ray = containers[c.RAY_CONTAINER_INDEX]
    if volumes.mount_at(sidecar, volumes.RAY_LOGS_PATH) is None:
        existing = volumes.mount_at(ray, volumes.RAY_LOGS_PATH)
        if existing is not None:
            volume = existing["name"]
        else:
            volume = volumes.add_empty_dir(pod_spec, volumes.RAY_LOGS_VOLUME)
            volumes.add_mount(ray, volume, volumes.RAY_LOGS_PATH)
        volumes.add_mount(sidecar, volume, volumes.RAY_LOGS_PATH)
    containers.append(sidecar)
    if not (pod_spec.get("serviceAccountName") or pod_spec.get("serviceAccount")):
        pod_spec["serviceAccountName"] = autoscaler_service_account_name(cluster)


def _wait_script(address: str) -> str:
    return (
        "tries=0\n"
        f"until out=$(ray health-check --address {address} 2>&1); do\n"
        "  tries=$((tries + 1))\n"
        f'  echo "waiting for the Ray head\'s GCS at {address}"\n'
        '  if [ $((tries % 12)) -eq 0 ]; then echo "$out"; fi\n'
        f"  sleep {HEALTH_CHECK_INTERVAL_S}\n"
        "done\n"
        f'echo "the Ray head\'s GCS at {address} is ready"\n'
    )


def _add_wait_for_gcs(pod_spec: dict[str, Any], ray: dict[str, Any], fqdn: str, port: int) -> None:
    inits = pod_spec.setdefault("initContainers", [])
    if any(i.get("name") == INIT_CONTAINER_NAME for i in inits):
        return
    init: dict[str, Any] = {
        "name": INIT_CONTAINER_NAME,
        "image": ray.get("image"),
        "command": ["/bin/bash", "-c", "--"],
        "args": [_wait_script(f"{fqdn}:{port}")],
        "resources": {
            "requests": dict(INIT_CONTAINER_RESOURCES),
            "limits": dict(INIT_CONTAINER_RESOURCES),
        },
    }
    for key in ("imagePullPolicy", "env", "envFrom", "volumeMounts", "securityContext"):
        if ray.get(key):
            init[key] = copy.deepcopy(ray[key])
    inits.append(init)


def _add_shared_memory(pod_spec: dict[str, Any], ray: dict[str, Any], start: RayStart) -> None:
    if "plasma-directory" in start.params or volumes.mount_at(ray, volumes.SHM_PATH):
        return
    resources = ray.get("resources") or {}
    size = (resources.get("limits") or {}).get("memory") or (resources.get("requests") or {}).get(
        "memory"
    )
    volume = volumes.add_empty_dir(
        pod_spec, volumes.SHM_VOLUME, medium="Memory", size_limit=size and str(size)
    )
    volumes.add_mount(ray, volume, volumes.SHM_PATH)


def _add_metrics_port(ray: dict[str, Any], port: int) -> None:
    ports = ray.setdefault("ports", [])
    if any(p.get("name") == "metrics" or p.get("containerPort") == port for p in ports):
        return
    ports.append({"name": "metrics", "containerPort": port, "protocol": "TCP"})


def _add_probes(cluster: Body, group: NodeGroup, ray: dict[str, Any], start: RayStart) -> None:
    if ray.get("livenessProbe") and ray.get("readinessProbe"):
        return
    liveness, readiness = probes.default_probes(
        group.node_type,
        cluster_spec.spec_of(cluster).get("rayVersion"),
        int(start.params["dashboard-agent-listen-port"]),
        int(start.params.get("dashboard-port", c.DASHBOARD_PORT)),
    )
    if not ray.get("livenessProbe"):
        ray["livenessProbe"] = liveness
    if not ray.get("readinessProbe"):
        ray["readinessProbe"] = readiness
