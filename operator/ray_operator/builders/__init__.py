"""Builders: pure functions from a RayCluster body (a JSON-shaped dict, camelCase keys
as the API server returns them) to the bodies of the children it should have.

No I/O and no Kubernetes client objects; the input is never modified."""

from ..names import (
    head_pod_generate_name,
    head_service_fqdn,
    head_service_name,
    worker_pod_generate_name,
)
from .autoscaler import build_autoscaler_container, build_autoscaler_rbac
from .command import RayStart, is_gpu_resource, ray_start
from .meta import owner_reference, pod_labels, template_hash
from .pod import build_head_pod, build_worker_pod
from .redis_cleanup import build_redis_cleanup_job
from .service import build_head_service

__all__ = [
    "RayStart",
    "build_autoscaler_container",
    "build_autoscaler_rbac",
    "build_head_pod",
    "build_head_service",
    "build_redis_cleanup_job",
    "build_worker_pod",
    "head_pod_generate_name",
    "head_service_fqdn",
    "head_service_name",
    "is_gpu_resource",
    "owner_reference",
    "pod_labels",
    "ray_start",
    "template_hash",
    "worker_pod_generate_name",
]
