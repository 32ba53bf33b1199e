"""Names and numbers of the RayCluster API (ray.io/v1), defined once.

Label keys, default ports, defaults and condition types live here and nowhere else:
the CRD generator, the builders, the planner, the chart tests and the docs read them.
"""

from __future__ import annotations

from typing import Final

# -- the API ---------------------------------------------------------------------------

GROUP: Final = "ray.io"
VERSION: Final = "v1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "RayCluster"
PLURAL: Final = "rayclusters"
SINGULAR: Final = "raycluster"
CRD_NAME: Final = f"{PLURAL}.{GROUP}"

# managedBy values: ours (the name upstream gives the in-cluster operator, so manifests
# written for KubeRay keep working), and MultiKueue's, which means hands off.
MANAGED_BY_US: Final = "ray.io/kuberay-operator"
MANAGED_BY_MULTIKUEUE: Final = "kueue.x-k8s.io/multikueue"
MANAGED_BY_VALUES: Final = (MANAGED_BY_US, MANAGED_BY_MULTIKUEUE)

# -- labels on every child ------------------------------------------------------------

LABEL_CLUSTER: Final = "ray.io/cluster"
LABEL_NODE_TYPE: Final = "ray.io/node-type"
LABEL_GROUP: Final = "ray.io/group"
LABEL_IS_RAY_NODE: Final = "ray.io/is-ray-node"
LABEL_IDENTIFIER: Final = "ray.io/identifier"
LABEL_APP_NAME: Final = "app.kubernetes.io/name"
LABEL_CREATED_BY: Final = "app.kubernetes.io/created-by"
# Multi-host worker groups (numOfHosts > 1), as KubeRay v1.6 labels them: which replica
# a pod belongs to, the replica's index in its group (on every worker pod), and the
# pod's host index within its replica; plus the label of the headless worker Service.
LABEL_REPLICA_NAME: Final = "ray.io/worker-group-replica-name"
LABEL_REPLICA_INDEX: Final = "ray.io/worker-group-replica-index"
LABEL_HOST_INDEX: Final = "ray.io/replica-host-index"
LABEL_HEADLESS_SERVICE: Final = "ray.io/headless-worker-svc"
APP_NAME: Final = "kuberay"  # value Ray tooling and dashboards select on
CREATED_BY: Final = "kuberay-operator"
# Users may set other labels in the pod template, never these three.
PROTECTED_LABELS: Final = (LABEL_CLUSTER, LABEL_NODE_TYPE, LABEL_GROUP)

NODE_TYPE_HEAD: Final = "head"
NODE_TYPE_WORKER: Final = "worker"
HEAD_GROUP: Final = "headgroup"

# -- annotations -----------------------------------------------------------------------

ANNOTATION_OVERWRITE_CMD: Final = "ray.io/overwrite-container-cmd"
# The pod-template hash lets `upgradeStrategy: Recreate` see template changes.
ANNOTATION_TEMPLATE_HASH: Final = "ray.io/pod-template-hash"
IDLE_TERMINATION_FINALIZER: Final = "ray.io/idle-termination-cleanup-finalizer"
# GCS fault tolerance: set on head pods (as upstream does), read by tooling.
ANNOTATION_FT_ENABLED: Final = "ray.io/ft-enabled"
ANNOTATION_EXTERNAL_STORAGE_NS: Final = "ray.io/external-storage-namespace"
# GCS fault tolerance lifecycle: a RayCluster with GCS FT keeps this finalizer until its
# keys are deleted from Redis by a cleanup Job (KubeRay's name, so a cluster migrated
# from KubeRay is finished the same way), or until the deletion timeout (seconds, the
# annotation; KubeRay v1.6.2's) has passed since the delete.
GCS_FT_REDIS_CLEANUP_FINALIZER: Final = "ray.io/gcs-ft-redis-cleanup-finalizer"
ANNOTATION_GCS_FT_DELETION_TIMEOUT: Final = "ray.io/gcs-ft-deletion-timeout"
DEFAULT_GCS_FT_DELETION_TIMEOUT_SECONDS: Final = 300
NODE_TYPE_REDIS_CLEANUP: Final = "redis-cleanup"  # ray.io/node-type of the cleanup Job

# -- ports and their names (head Service and container ports) ------------------------

DEFAULT_PORTS: Final = {
    "gcs-server": 6379,
    "dashboard": 8265,
    "client": 10001,
    "metrics": 8080,
    "serve": 8000,
}
GCS_PORT: Final = DEFAULT_PORTS["gcs-server"]
METRICS_PORT: Final = DEFAULT_PORTS["metrics"]
DASHBOARD_PORT: Final = DEFAULT_PORTS["dashboard"]
DASHBOARD_AGENT_PORT: Final = 52365

# -- defaults of the spec --------------------------------------------------------------

DEFAULT_MAX_REPLICAS: Final = 2147483647
DEFAULT_IDLE_TIMEOUT_SECONDS: Final = 60
DEFAULT_AUTOSCALER_CPU: Final = "500m"
DEFAULT_AUTOSCALER_MEMORY: Final = "512Mi"
RAY_CONTAINER_INDEX: Final = 0  # Ray's autoscaler reads containers[0]
AUTOSCALER_CONTAINER_NAME: Final = "autoscaler"  # the sidecar in the head pod
# DNS domain of the Kubernetes cluster: workers reach the head at
# `<cluster>-head-svc.<namespace>.svc.<domain>`.
DEFAULT_CLUSTER_DOMAIN: Final = "cluster.local"

# Longest RayCluster name: `<name>-head-svc` must stay a DNS-1035 label (63 chars).
MAX_CLUSTER_NAME_LENGTH: Final = 63 - len("-head-svc")
MAX_GROUP_NAME_LENGTH: Final = 63

# -- status ----------------------------------------------------------------------------

STATE_READY: Final = "ready"
STATE_SUSPENDED: Final = "suspended"

COND_HEAD_POD_READY: Final = "HeadPodReady"
COND_PROVISIONED: Final = "RayClusterProvisioned"
COND_REPLICA_FAILURE: Final = "ReplicaFailure"
COND_SUSPENDING: Final = "RayClusterSuspending"
COND_SUSPENDED: Final = "RayClusterSuspended"
