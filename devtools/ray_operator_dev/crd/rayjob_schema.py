"""The OpenAPI schema of RayJob (ray.io/v1): KubeRay v1.6's fields, our validation.

`rayClusterSpec` is the RayCluster's own spec schema (`schema.spec_schema`), so a
cluster template is type-checked exactly like a RayCluster; `rayClusterStatus` is the
RayCluster's status schema. `submitterPodTemplate` is the derived PodTemplateSpec.

Validation that KubeRay v1.6.1 does at runtime (`ValidateRayJobSpec`, ending in a
`ValidationFailed` status) is done here by CEL at `kubectl apply`, each message naming
the field: not both `rayClusterSpec` and `clusterSelector`, one of them required,
`clusterSelector` needs `ray.io/cluster`, `suspend` needs `shutdownAfterJobFinishes`
and no `clusterSelector`, `backoffLimit` > 0 not with `clusterSelector` or
InteractiveMode, SidecarMode limits. `entrypoint` is required unless InteractiveMode
(KubeRay would only fail when submitting). What CEL cannot check (runtimeEnvYAML
being YAML, the cluster spec's runtime rules) becomes a ValidationFailed status.
"""

from __future__ import annotations

from typing import Any

from ray_operator import constants as c
from ray_operator_dev.crd.podtemplate import KubernetesSchemas
from ray_operator_dev.crd.schema import (
    DNS1035_LABEL,
    Schema,
    _array,
    _bool,
    _enum,
    _int,
    _obj,
    _rule,
    _str,
    _str_map,
    crd_document,
    crd_version,
    pod_template,
    sort_properties,
    spec_schema,
    status_schema,
)

MAX_ENTRYPOINT_LENGTH = 64 * 1024
MAX_DELETION_RULES = 16

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "job status", "type": "string", "jsonPath": ".status.jobStatus"},
    {"name": "deployment status", "type": "string", "jsonPath": ".status.jobDeploymentStatus"},
    {"name": "ray cluster name", "type": "string", "jsonPath": ".status.rayClusterName"},
    {"name": "start time", "type": "string", "jsonPath": ".status.startTime"},
    {"name": "end time", "type": "string", "jsonPath": ".status.endTime"},
    {"name": "age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _deletion_strategy() -> Schema:
    policy = _enum("What to delete.", c.DELETION_POLICIES)
    legacy = _obj("Deprecated: use deletionRules.", {"policy": policy})
    condition = _obj(
        "When the rule applies: a jobStatus or a jobDeploymentStatus, plus a delay.",
        {
            "jobStatus": _enum(
                "Terminal jobStatus that triggers the rule.", ("SUCCEEDED", "FAILED")
            ),
            "jobDeploymentStatus": _enum("jobDeploymentStatus that triggers it.", ("Failed",)),
            "ttlSeconds": _int("Seconds after the job ended.", minimum=0, default=0),
        },
        rules=[
            _rule(
                "!(has(self.jobStatus) && has(self.jobDeploymentStatus))",
                "deletionRules[].condition: set jobStatus or jobDeploymentStatus, not both",
            ),
            _rule(
                "has(self.jobStatus) || has(self.jobDeploymentStatus)",
                "deletionRules[].condition needs jobStatus or jobDeploymentStatus",
            ),
        ],
    )
    rule = _obj(
        "One deletion rule.",
        {"policy": policy, "condition": condition},
        required=["policy", "condition"],
    )
    return _obj(
        "What to delete once the job finished (instead of shutdownAfterJobFinishes).",
        {
            "onSuccess": legacy,
            "onFailure": legacy,
            "deletionRules": _array(
                "Rules, each applied once its condition holds.",
                rule,
                minItems=1,
                maxItems=MAX_DELETION_RULES,
                **{"x-kubernetes-list-type": "atomic"},
            ),
        },
        rules=[
            _rule(
                "!((has(self.onSuccess) || has(self.onFailure)) && has(self.deletionRules))",
                "deletionStrategy: use onSuccess/onFailure or deletionRules, not both",
            ),
            _rule(
                "(has(self.onSuccess) && has(self.onFailure)) || has(self.deletionRules)",
                "deletionStrategy needs both onSuccess and onFailure, or deletionRules",
            ),
        ],
    )


def _spec_rules() -> list[Schema]:
    selector = "has(self.clusterSelector) && size(self.clusterSelector) > 0"
    mode = f"(has(self.submissionMode) ? self.submissionMode : '{c.MODE_K8S_JOB}')"
    return [
        _rule(
            f"!(has(self.rayClusterSpec) && {selector})",
            "set rayClusterSpec or clusterSelector, not both: rayClusterSpec creates a "
            "cluster, clusterSelector uses an existing one",
        ),
        _rule(
            f"has(self.rayClusterSpec) || ({selector})",
            "one of rayClusterSpec or clusterSelector is required",
        ),
        _rule(
            f"!({selector}) || ('{c.CLUSTER_SELECTOR_KEY}' in self.clusterSelector && "
            f"self.clusterSelector['{c.CLUSTER_SELECTOR_KEY}'] != '')",
            f"clusterSelector must name the RayCluster with key {c.CLUSTER_SELECTOR_KEY}",
            ".clusterSelector",
        ),
        _rule(
            f"{mode} == '{c.MODE_INTERACTIVE}' || "
            "(has(self.entrypoint) && self.entrypoint.trim() != '')",
            f"entrypoint is required (the command the job runs) unless submissionMode is "
            f"{c.MODE_INTERACTIVE}",
            ".entrypoint",
        ),
        _rule(
            "!(has(self.suspend) && self.suspend) || "
            "(has(self.shutdownAfterJobFinishes) && self.shutdownAfterJobFinishes)",
            "suspend needs shutdownAfterJobFinishes: true (a suspended job gives its cluster back)",
            ".suspend",
        ),
        _rule(
            f"!(has(self.suspend) && self.suspend && {selector})",
            "suspend cannot be used with clusterSelector (the cluster is not the job's)",
            ".suspend",
        ),
        _rule(
            f"!(has(self.backoffLimit) && self.backoffLimit > 0 && ({selector} || "
            f"{mode} == '{c.MODE_INTERACTIVE}'))",
            f"backoffLimit > 0 (retries on new clusters) needs rayClusterSpec and a "
            f"submissionMode other than {c.MODE_INTERACTIVE}",
            ".backoffLimit",
        ),
        _rule(
            f"{mode} != '{c.MODE_SIDECAR}' || (!({selector}) && "
            "!has(self.submitterPodTemplate) && !has(self.submitterConfig))",
            f"{c.MODE_SIDECAR} submits from the head pod: clusterSelector, "
            "submitterPodTemplate and submitterConfig cannot be used with it",
            ".submissionMode",
        ),
        _rule(
            f"{mode} != '{c.MODE_SIDECAR}' || !has(self.rayClusterSpec) || "
            "!has(self.rayClusterSpec.headGroupSpec.template.spec) || "
            "!has(self.rayClusterSpec.headGroupSpec.template.spec.restartPolicy) || "
            "self.rayClusterSpec.headGroupSpec.template.spec.restartPolicy == 'Never'",
            f"{c.MODE_SIDECAR}: the head pod's restartPolicy must be Never or unset (its "
            "submitter container must not run twice)",
            ".rayClusterSpec.headGroupSpec.template.spec.restartPolicy",
        ),
        _rule(
            "!(has(self.deletionStrategy) && has(self.deletionStrategy.deletionRules) && "
            "has(self.shutdownAfterJobFinishes) && self.shutdownAfterJobFinishes)",
            "use deletionStrategy.deletionRules or shutdownAfterJobFinishes, not both",
            ".deletionStrategy",
        ),
        _rule(
            "!(has(self.ttlSecondsAfterFinished) && self.ttlSecondsAfterFinished > 0) || "
            "(has(self.shutdownAfterJobFinishes) && self.shutdownAfterJobFinishes)",
            "ttlSecondsAfterFinished needs shutdownAfterJobFinishes: true",
            ".ttlSecondsAfterFinished",
        ),
    ]


def rayjob_spec_schema(k8s: KubernetesSchemas) -> Schema:
    managed_by = _str(
        f"Controller of this RayJob: absent or `{c.MANAGED_BY_US}` for this operator, "
        f"`{c.MANAGED_BY_MULTIKUEUE}` to leave it to MultiKueue. Immutable.",
        **{
            "x-kubernetes-validations": [
                _rule("self == oldSelf", "managedBy is immutable"),
                _rule(
                    f"self in {list(c.MANAGED_BY_VALUES)}",
                    f"managedBy must be {c.MANAGED_BY_US} or {c.MANAGED_BY_MULTIKUEUE}",
                ),
            ]
        },
    )
    cluster_spec = spec_schema(k8s)
    cluster_spec["description"] = "The RayCluster to create for the job (a RayCluster's spec)."
    return _obj(
        "Desired state of the Ray job.",
        {
            "entrypoint": _str(
                "Shell command the job runs on the cluster (`ray job submit -- <entrypoint>`).",
                maxLength=MAX_ENTRYPOINT_LENGTH,
            ),
            "runtimeEnvYAML": _str(
                "Ray runtime environment of the job, as YAML.",
                maxLength=c.MAX_RUNTIME_ENV_YAML_LENGTH,
            ),
            "metadata": _str_map("Metadata attached to the Ray job."),
            "jobId": _str(
                "Submission ID of the Ray job; generated (`<rayjob>-<5 random>`) if "
                f"absent. In {c.MODE_INTERACTIVE}, the ID of the job the user submitted.",
                maxLength=253,
            ),
            "submissionMode": _enum(
                f"How the job is submitted. {c.MODE_K8S_JOB}: a Kubernetes Job runs "
                f"`ray job submit`. {c.MODE_HTTP}: the operator calls the dashboard's job "
                f"API. {c.MODE_INTERACTIVE}: the user submits and sets jobId. "
                f"{c.MODE_SIDECAR}: a container in the head pod submits.",
                c.SUBMISSION_MODES,
                default=c.MODE_K8S_JOB,
            ),
            "rayClusterSpec": cluster_spec,
            "clusterSelector": _str_map(
                f"Run on an existing RayCluster, named by key `{c.CLUSTER_SELECTOR_KEY}`."
            ),
            "submitterPodTemplate": pod_template(
                f"Pod template of the submitter Job ({c.MODE_K8S_JOB}); default: one "
                "container with the head's image.",
                k8s,
            ),
            "submitterConfig": _obj(
                "The submitter Job.",
                {
                    "backoffLimit": _int(
                        "backoffLimit of the submitter Job (default "
                        f"{c.DEFAULT_SUBMITTER_BACKOFF_LIMIT}).",
                        minimum=0,
                    )
                },
            ),
            "entrypointNumCpus": {
                "description": "CPUs reserved for the entrypoint.",
                "type": "number",
                "minimum": 0,
            },
            "entrypointNumGpus": {
                "description": "GPUs reserved for the entrypoint.",
                "type": "number",
                "minimum": 0,
            },
            "entrypointResources": _str(
                'Custom resources reserved for the entrypoint, as JSON: `{"r": 1}`.',
                maxLength=4096,
            ),
            "shutdownAfterJobFinishes": _bool(
                "Delete the RayCluster once the job finished (after ttlSecondsAfterFinished)."
            ),
            "ttlSecondsAfterFinished": _int(
                "Seconds between the job's end and the cluster's deletion.",
                minimum=0,
                default=0,
            ),
            "activeDeadlineSeconds": _int(
                "Seconds from the RayJob's start after which it fails (DeadlineExceeded).",
                minimum=1,
            ),
            "preRunningDeadlineSeconds": _int(
                "Seconds from the RayJob's start by which the job must be Running.",
                minimum=1,
            ),
            "backoffLimit": _int(
                "Retries of a failed job, each on a new RayCluster.", minimum=0, default=0
            ),
            "deletionStrategy": _deletion_strategy(),
            "suspend": _bool(
                "Suspend: delete the cluster and the submitter; false starts over "
                "(Kueue admission)."
            ),
            "managedBy": managed_by,
        },
        rules=_spec_rules(),
    )


def rayjob_status_schema(k8s: KubernetesSchemas) -> Schema:
    time = {"type": "string", "format": "date-time"}
    condition = k8s.get("io.k8s.apimachinery.pkg.apis.meta.v1.Condition")
    cluster_status = status_schema(k8s)
    cluster_status["description"] = "Status of the RayCluster running the job."
    return _obj(
        "Observed state of the Ray job, written by the operator.",
        {
            "jobStatus": _str("Ray's status of the job: " + ", ".join(c.JOB_STATUSES) + "."),
            "jobDeploymentStatus": _str(
                "Lifecycle: Initializing, Running, Complete, Failed, ValidationFailed, "
                "Suspending, Suspended, Retrying, Waiting (empty: New)."
            ),
            "reason": _str("Why the RayJob failed."),
            "message": _str("Details, from Ray or the operator."),
            "jobId": _str("Submission ID of the Ray job."),
            "rayClusterName": _str("Name of the RayCluster running the job."),
            "dashboardURL": _str("Address of the cluster's dashboard (`host:port`)."),
            "startTime": {"description": "When the RayJob started.", **time},
            "endTime": {"description": "When the RayJob finished.", **time},
            "rayJobInfo": _obj(
                "Ray's own times of the job.",
                {
                    "startTime": {"description": "Ray job start.", **time},
                    "endTime": {"description": "Ray job end.", **time},
                },
            ),
            "succeeded": _int("Times the job succeeded.", minimum=0, default=0),
            "failed": _int("Times the job failed.", minimum=0, default=0),
            "rayClusterStatus": cluster_status,
            "observedGeneration": _int("metadata.generation last seen.", fmt="int64"),
            "conditions": _array(
                f"Conditions: {c.COND_DASHBOARD_UNREACHABLE}.",
                condition,
                **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
            ),
        },
    )


def rayjob_schema(k8s: KubernetesSchemas) -> Schema:
    n = c.MAX_JOB_NAME_LENGTH
    schema = _obj(
        "A Ray job: a RayCluster (new or existing), the job submitted to it, its lifecycle.",
        {
            "apiVersion": _str("API version of this object: ray.io/v1."),
            "kind": _str("RayJob."),
            "metadata": {"type": "object", "properties": {"name": {"type": "string"}}},
            "spec": rayjob_spec_schema(k8s),
            "status": rayjob_status_schema(k8s),
        },
        rules=[
            _rule(
                f"self.metadata.name.size() <= {n}",
                f"metadata.name must be at most {n} characters: the RayCluster is named "
                "'<name>-<5 random characters>'",
                ".metadata.name",
            ),
            _rule(
                f"self.metadata.name.matches('{DNS1035_LABEL}')",
                "metadata.name must be a DNS-1035 label (lowercase letters, digits and '-', "
                "starting with a letter): it names the RayCluster",
                ".metadata.name",
            ),
        ],
    )
    return sort_properties(schema)


def build_rayjob_crd(k8s: KubernetesSchemas) -> dict[str, Any]:
    version = crd_version(c.VERSION, True, PRINTER_COLUMNS, rayjob_schema(k8s))
    return crd_document(c.JOB_CRD_NAME, c.JOB_KIND, c.JOB_PLURAL, c.JOB_SINGULAR, [version])
