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

# -- RayJob (ray.io/v1) ------------------------------------------------------------------

JOB_KIND: Final = "RayJob"
JOB_PLURAL: Final = "rayjobs"
JOB_SINGULAR: Final = "rayjob"
JOB_CRD_NAME: Final = f"{JOB_PLURAL}.{GROUP}"
# A RayJob's cluster is `<rayjob>-<5 random characters>`, itself a RayCluster name.
MAX_JOB_NAME_LENGTH: Final = MAX_CLUSTER_NAME_LENGTH - 6

# Labels on a RayJob's RayCluster and submitter Job (KubeRay's keys and values).
LABEL_ORIGINATED_FROM_NAME: Final = "ray.io/originated-from-cr-name"
LABEL_ORIGINATED_FROM_CRD: Final = "ray.io/originated-from-crd"
LABEL_SUBMISSION_MODE: Final = "ray.io/job-submission-mode"
ORIGINATED_FROM_RAYJOB: Final = "RayJob"
# clusterSelector key naming the existing RayCluster to run on.
CLUSTER_SELECTOR_KEY: Final = LABEL_CLUSTER

MODE_K8S_JOB: Final = "K8sJobMode"
MODE_HTTP: Final = "HTTPMode"
MODE_INTERACTIVE: Final = "InteractiveMode"
MODE_SIDECAR: Final = "SidecarMode"
SUBMISSION_MODES: Final = (MODE_K8S_JOB, MODE_HTTP, MODE_INTERACTIVE, MODE_SIDECAR)

# status.jobStatus: Ray's own job statuses ("" = not submitted yet).
JOB_PENDING: Final = "PENDING"
JOB_RUNNING: Final = "RUNNING"
JOB_STOPPED: Final = "STOPPED"
JOB_SUCCEEDED: Final = "SUCCEEDED"
JOB_FAILED: Final = "FAILED"
JOB_STATUSES: Final = (JOB_PENDING, JOB_RUNNING, JOB_STOPPED, JOB_SUCCEEDED, JOB_FAILED)
JOB_TERMINAL: Final = (JOB_STOPPED, JOB_SUCCEEDED, JOB_FAILED)

# status.jobDeploymentStatus: where the RayJob is in its lifecycle ("" = New).
DEPLOY_NEW: Final = ""
DEPLOY_INITIALIZING: Final = "Initializing"
DEPLOY_RUNNING: Final = "Running"
DEPLOY_COMPLETE: Final = "Complete"
DEPLOY_FAILED: Final = "Failed"
DEPLOY_VALIDATION_FAILED: Final = "ValidationFailed"
DEPLOY_SUSPENDING: Final = "Suspending"
DEPLOY_SUSPENDED: Final = "Suspended"
DEPLOY_RETRYING: Final = "Retrying"
DEPLOY_WAITING: Final = "Waiting"  # InteractiveMode: waiting for spec.jobId

# status.reason when the RayJob failed.
REASON_SUBMISSION_FAILED: Final = "SubmissionFailed"
REASON_DEADLINE_EXCEEDED: Final = "DeadlineExceeded"
REASON_PRE_RUNNING_DEADLINE: Final = "PreRunningDeadlineExceeded"
REASON_APP_FAILED: Final = "AppFailed"
REASON_GRACE_PERIOD_EXCEEDED: Final = "JobDeploymentStatusTransitionGracePeriodExceeded"
REASON_VALIDATION_FAILED: Final = "ValidationFailed"

DELETION_POLICIES: Final = ("DeleteCluster", "DeleteWorkers", "DeleteSelf", "DeleteNone")

# Defaults as KubeRay v1.6.1.
DEFAULT_SUBMITTER_BACKOFF_LIMIT: Final = 2
SUBMITTER_CONTAINER_NAME: Final = "ray-job-submitter"
SUBMITTER_CPU_LIMIT: Final = "1"
SUBMITTER_MEMORY_LIMIT: Final = "1Gi"
SUBMITTER_CPU_REQUEST: Final = "500m"
SUBMITTER_MEMORY_REQUEST: Final = "200Mi"
ENV_DASHBOARD_ADDRESS: Final = "RAY_DASHBOARD_ADDRESS"
ENV_SUBMISSION_ID: Final = "RAY_JOB_SUBMISSION_ID"
JOB_POLL_SECONDS: Final = 3.0  # how often a running job is polled (KubeRay: 3 s)
# After the submitter Job finished, how long the Ray job may take to become terminal.
SUBMITTER_FINISHED_TIMEOUT_SECONDS: Final = 30
# After jobStatus became terminal, how long jobDeploymentStatus may stay Running.
DEPLOYMENT_TRANSITION_GRACE_SECONDS: Final = 300
JOB_API_PATH: Final = "/api/jobs/"
# runtimeEnvYAML is sent in one HTTP request and one command line: bounded by the CRD.
MAX_RUNTIME_ENV_YAML_LENGTH: Final = 64 * 1024

COND_DASHBOARD_UNREACHABLE: Final = "DashboardUnreachable"
