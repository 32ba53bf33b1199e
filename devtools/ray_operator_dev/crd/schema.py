"""The OpenAPI schema of RayCluster (ray.io/v1): spec, status and their validation rules.

Our own fields are written here, each with a short description for `kubectl explain`;
the Kubernetes types they embed (PodTemplateSpec, EnvVar, SecurityContext, Service,
Condition, ...) come from `KubernetesSchemas`, derived from the pinned release.

Validation is done by the API server, not by a webhook:

- OpenAPI keywords: `required`, `enum`, `minimum`, `maxLength`, `maxItems` (field
  types, non-negative replica counts, `numOfHosts >= 1`, known `managedBy` values);
- CEL rules (`x-kubernetes-validations`), each with a message that names the field and
  the fix: cluster name length and form, `groupName` form and uniqueness, not
  `headgroup`, `minReplicas <= maxReplicas`, `managedBy` immutable, `value` xor
  `valueFrom` in Redis credentials. The `maxItems`/`maxLength` bounds exist mostly to
  keep the API server's CEL cost estimate within its budget;
- pod templates: `spec` required, `containers` required with at least one item, every
  PodSpec field typed (quantities checked against the quantity grammar).

`headGroupSpec.headService` is the derived Service schema rather than an open
(`x-kubernetes-preserve-unknown-fields`) object: it costs about 3 KB and lets the API
server type-check and prune it like any Service, so a typo is caught at `kubectl apply`
instead of when the operator merges it into the head Service.

Defaults are the ones the reference lists, so stored objects look like upstream's:
`replicas`/`minReplicas` 0, `maxReplicas` 2^31-1, `numOfHosts` 1, `rayStartParams` and
`scaleStrategy` `{}` per worker group (Ray's autoscaler JSON-patches `replace` on
`scaleStrategy`, which needs it to exist), `idleTerminationOptions.policy` Suspend.
Booleans such as `suspend` get none: absent means false.
"""

from __future__ import annotations

import copy
from typing import Any

from ray_operator import constants as c
from ray_operator_dev.crd.podtemplate import KubernetesSchemas

Schema = dict[str, Any]

# Schema-only bounds (no code outside the CRD needs them).
MAX_WORKER_GROUPS = 64  # bounds the cost of the group-name uniqueness rule
MAX_WORKERS_TO_DELETE = 10000  # the autoscaler may list every pod of a big group at once
MAX_POD_NAME_LENGTH = 253
INT32_MAX = 2**31 - 1  # Go clients of this API (KubeRay's types, Kueue) read int32s
DNS1123_LABEL = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1035_LABEL = "^[a-z]([-a-z0-9]*[a-z0-9])?$"

UPSCALING_MODES = ("Default", "Aggressive", "Conservative")
AUTOSCALER_VERSIONS = ("v1", "v2")
UPGRADE_STRATEGIES = ("Recreate", "None")
IDLE_TERMINATION_POLICIES = ("Suspend", "Delete")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
AUTH_MODES = ("disabled", "token")
MAX_SECRET_NAME_LENGTH = 253
INGRESS_PATH_TYPES = ("Exact", "Prefix", "ImplementationSpecific")


# -- small builders --------------------------------------------------------------------------


def _obj(
    description: str,
    properties: dict[str, Schema],
    *,
    required: list[str] | None = None,
    rules: list[Schema] | None = None,
    **extra: Any,
) -> Schema:
    out: Schema = {"description": description, "type": "object", "properties": properties}
    if required:
        out["required"] = required
    out.update(extra)
    if rules:
        out["x-kubernetes-validations"] = rules
    return out


def _str(description: str, **extra: Any) -> Schema:
    return {"description": description, "type": "string", **extra}


def _enum(description: str, values: tuple[str, ...], **extra: Any) -> Schema:
    return _str(description, enum=list(values), **extra)


def _int(description: str, fmt: str = "int32", **extra: Any) -> Schema:
    return {"description": description, "type": "integer", "format": fmt, **extra}


def _bool(description: str) -> Schema:
    return {"description": description, "type": "boolean"}


def _str_map(description: str, **extra: Any) -> Schema:
    return {
        "description": description,
        "type": "object",
        "additionalProperties": {"type": "string"},
        **extra,
    }


def _array(description: str, items: Schema, **extra: Any) -> Schema:
    return {"description": description, "type": "array", "items": items, **extra}


def _rule(rule: str, message: str, field_path: str | None = None) -> Schema:
    out: Schema = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    return out


def _described(description: str, schema: Schema) -> Schema:
    """A derived Kubernetes schema with our own description on top."""
    return {"description": description, **schema}


def _quantity(description: str, k8s: KubernetesSchemas) -> Schema:
    return _described(description, k8s.get("io.k8s.apimachinery.pkg.api.resource.Quantity"))


# -- pieces --------------------------------------------------------------------------------


def pod_template(description: str, k8s: KubernetesSchemas) -> Schema:
    """PodTemplateSpec as derived, plus: `spec` required and at least one container."""
    template = k8s.pod_template_spec()
    template["required"] = ["spec"]
    template["properties"]["spec"]["properties"]["containers"]["minItems"] = 1
    return _described(description, template)


def ray_start_params(description: str, **extra: Any) -> Schema:
    return _str_map(description, **extra)


def head_group_spec(k8s: KubernetesSchemas) -> Schema:
    service = k8s.core("Service")
    return _obj(
        "The head pod: its template, `ray start` flags and the head Service.",
        {
            "template": pod_template(
                "Pod template of the head. Container 0 runs Ray. Fields as in a Pod: "
                "see `kubectl explain pod.spec`.",
                k8s,
            ),
            "rayStartParams": ray_start_params(
                'Flags for `ray start --head`, without the dashes: `num-cpus: "0"` '
                'becomes `--num-cpus=0`; "true" gives a bare flag.'
            ),
            "serviceType": _enum(
                "Type of the head Service. ClusterIP (the default) makes it headless.",
                SERVICE_TYPES,
            ),
            "headService": _described(
                "The head Service as you want it: metadata.name renames it (workers "
                "follow), labels and annotations are added (the head's own labels and "
                "headServiceAnnotations win), spec is used as written with the head's "
                "selector and the generated ports appended; not made headless.",
                service,
            ),
            "enableIngress": _bool(
                "Create `<cluster>-head-ingress`, routing to the head Service's dashboard "
                "port, once (later edits of it are left alone). Its class is the "
                "RayCluster's `kubernetes.io/ingress.class` annotation; the RayCluster's "
                "other annotations are copied onto it. Without `ingressOptions` its path "
                "is `/<cluster>/(.*)`, pathType Exact."
            ),
            "ingressOptions": _obj(
                "Rule of the Ingress made for `enableIngress`: host, path (default `/`), "
                "pathType (default Prefix) and TLS.",
                {
                    "host": _str("Host of the Ingress rule."),
                    "path": _str("Path of the Ingress rule (absolute); default `/`."),
                    "pathType": _enum(
                        "pathType of the Ingress rule; default Prefix.", INGRESS_PATH_TYPES
                    ),
                    "tls": _array(
                        "TLS entries of the Ingress.",
                        {
                            "type": "object",
                            "properties": {
                                "hosts": _array(
                                    "Hosts covered by the certificate.", {"type": "string"}
                                ),
                                "secretName": _str("Secret holding the certificate and key."),
                            },
                        },
                    ),
                },
                rules=[
                    _rule(
                        "!has(self.path) || self.path.startsWith('/')",
                        "ingressOptions.path must be an absolute path starting with '/': "
                        "Kubernetes refuses any other Ingress path",
                        ".path",
                    )
                ],
            ),
            "resources": _str_map(
                'Ray logical resources of the head, e.g. `{CPU: "0"}`: override '
                "what Ray would detect from the container."
            ),
            "labels": _str_map("Ray node labels of the head."),
        },
        required=["template"],
    )


def worker_group_spec(k8s: KubernetesSchemas) -> Schema:
    replicas_rule = _rule(
        "!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
        "minReplicas must be less than or equal to maxReplicas: lower minReplicas or "
        "raise maxReplicas",
        ".minReplicas",
    )
    group_name = _str(
        "Name of the group, unique in the cluster: a DNS-1123 label other than "
        f"`{c.HEAD_GROUP}`. Becomes the `{c.LABEL_GROUP}` label of its pods.",
        minLength=1,
        maxLength=c.MAX_GROUP_NAME_LENGTH,
    )
    group_name["x-kubernetes-validations"] = [
        _rule(
            f"self.matches('{DNS1123_LABEL}')",
            "groupName must be a DNS-1123 label: lowercase letters, digits and '-', "
            "starting and ending with a letter or digit",
        ),
        _rule(
            f"self != '{c.HEAD_GROUP}'",
            f"groupName must not be '{c.HEAD_GROUP}': that name is the head's; pick another",
        ),
    ]
    return _obj(
        "A group of identical worker pods.",
        {
            "groupName": group_name,
            "replicas": _int(
                "Desired number of replicas; kept within [minReplicas, maxReplicas]. "
                "Ray's autoscaler writes it when in-tree autoscaling is on.",
                default=0,
                minimum=0,
                maximum=INT32_MAX,
            ),
            "minReplicas": _int(
                "Fewest replicas of the group.", default=0, minimum=0, maximum=INT32_MAX
            ),
            "maxReplicas": _int(
                "Most replicas of the group.",
                default=c.DEFAULT_MAX_REPLICAS,
                minimum=0,
                maximum=INT32_MAX,
            ),
            "numOfHosts": _int(
                "Pods per replica (multi-host replicas such as TPU slices).",
                default=1,
                minimum=1,
                maximum=INT32_MAX,
            ),
            "rayStartParams": ray_start_params(
                "Flags for `ray start` on these workers, without the dashes.", default={}
            ),
            "template": pod_template(
                "Pod template of the group's workers. Container 0 runs Ray. Fields as in "
                "a Pod: see `kubectl explain pod.spec`.",
                k8s,
            ),
            "scaleStrategy": _obj(
                "Which pods to remove. Written by Ray's autoscaler.",
                {
                    "workersToDelete": _array(
                        "Names of worker pods to delete; the operator deletes them and "
                        "does not replace them while they are listed.",
                        {"type": "string", "minLength": 1, "maxLength": MAX_POD_NAME_LENGTH},
                        maxItems=MAX_WORKERS_TO_DELETE,
                    ),
                },
                default={},
            ),
            "suspend": _bool("Delete all pods of this group and keep it at zero."),
            "idleTimeoutSeconds": _int(
                "Seconds a worker of this group may stay idle before the autoscaler "
                "(v2) removes it; overrides autoscalerOptions.idleTimeoutSeconds.",
                minimum=0,
            ),
            "resources": _str_map(
                'Ray logical resources of each worker, e.g. `{CPU: "8", TPU: "4"}`.'
            ),
            "labels": _str_map("Ray node labels of each worker."),
        },
        required=["groupName", "template"],
        rules=[replicas_rule],
    )


def autoscaler_options(k8s: KubernetesSchemas) -> Schema:
    return _obj(
        "Settings of the autoscaler sidecar (with enableInTreeAutoscaling).",
        {
            "resources": _described(
                "Resources of the autoscaler container (default "
                f"{c.DEFAULT_AUTOSCALER_CPU} CPU, {c.DEFAULT_AUTOSCALER_MEMORY} memory).",
                k8s.container_field("resources"),
            ),
            "image": _str("Image of the autoscaler container (default: the head's)."),
            "imagePullPolicy": _enum("Pull policy of the autoscaler image.", PULL_POLICIES),
            "securityContext": _described(
                "Security context of the autoscaler container.",
                k8s.container_field("securityContext"),
            ),
            "idleTimeoutSeconds": _int(
                "Seconds a worker may stay idle before the autoscaler removes it "
                f"(default {c.DEFAULT_IDLE_TIMEOUT_SECONDS}).",
                minimum=0,
            ),
            "upscalingMode": _enum(
                "Conservative: at most as many pending workers as the cluster has; "
                "Default and Aggressive: no rate limit.",
                UPSCALING_MODES,
            ),
            "version": _enum(
                "Autoscaler generation. v2 also sets restartPolicy Never on Ray pods.",
                AUTOSCALER_VERSIONS,
            ),
            "env": _described("Extra environment variables.", k8s.container_field("env")),
            "envFrom": _described("Extra environment sources.", k8s.container_field("envFrom")),
            "volumeMounts": _described(
                "Volume mounts of the autoscaler container (volumes of the head pod).",
                k8s.container_field("volumeMounts"),
            ),
            "command": _described(
                "Command of the autoscaler container (KubeRay v1.7.0); the generated "
                "start command is in $KUBERAY_GEN_AUTOSCALER_START_CMD.",
                k8s.container_field("command"),
            ),
            "args": _described(
                "Arguments of the autoscaler container (KubeRay v1.7.0).",
                k8s.container_field("args"),
            ),
        },
    )


def redis_credential(what: str, k8s: KubernetesSchemas) -> Schema:
    return _obj(
        f"The Redis {what}: `value`, or `valueFrom` (e.g. a secretKeyRef).",
        {
            "value": _str(f"The {what} itself."),
            "valueFrom": _described(
                f"Where to read the {what} from, as for a container env var.",
                k8s.core("EnvVarSource"),
            ),
        },
        rules=[
            _rule(
                "!(has(self.value) && has(self.valueFrom))",
                "set either value or valueFrom, not both",
            )
        ],
    )


def gcs_fault_tolerance_options(k8s: KubernetesSchemas) -> Schema:
    return _obj(
        "Keep GCS state in an external Redis so the cluster survives a head restart.",
        {
            "redisAddress": _str("host:port of Redis.", minLength=1),
            "redisPassword": redis_credential("password", k8s),
            "redisUsername": redis_credential("username", k8s),
            "externalStorageNamespace": _str(
                "Key namespace in Redis (default: the RayCluster's UID)."
            ),
        },
        required=["redisAddress"],
    )


def auth_options() -> Schema:
    return _obj(
        "Ray's token authentication: every Ray process, the autoscaler and the workers' "
        "init container get the token; clients without it are refused.",
        {
            "mode": _enum(
                "token: require a token (Ray >= 2.52). disabled, or unset: no "
                "authentication (unset still generates the Secret, as KubeRay does).",
                AUTH_MODES,
            ),
            "secretName": _str(
                "Secret (key `auth_token`) holding the token. Unset: the operator "
                "generates Secret `<cluster name>` once, owned by the RayCluster.",
                minLength=1,
                maxLength=MAX_SECRET_NAME_LENGTH,
            ),
            "enableK8sTokenAuth": _bool(
                "Ray checks callers' Kubernetes ServiceAccount tokens instead of a shared "
                "token (Ray >= 2.55); needs mode token, excludes secretName."
            ),
        },
        rules=[
            _rule(
                "!(has(self.enableK8sTokenAuth) && self.enableK8sTokenAuth) || "
                "(has(self.mode) && self.mode == 'token')",
                "authOptions.enableK8sTokenAuth needs authOptions.mode: token",
                ".enableK8sTokenAuth",
            ),
            _rule(
                "!(has(self.enableK8sTokenAuth) && self.enableK8sTokenAuth && "
                "has(self.secretName))",
                "authOptions.secretName cannot be set with enableK8sTokenAuth: drop one",
                ".secretName",
            ),
        ],
    )


def spec_schema(k8s: KubernetesSchemas) -> Schema:
    managed_by_default = c.MANAGED_BY_US
    managed_by_rule = _rule(
        f"(has(self.managedBy) ? self.managedBy : '{managed_by_default}') == "
        f"(has(oldSelf.managedBy) ? oldSelf.managedBy : '{managed_by_default}')",
        "managedBy is immutable: delete and recreate the RayCluster to change its manager",
        ".managedBy",
    )
    unique_groups = _rule(
        "self.all(g, self.exists_one(h, h.groupName == g.groupName))",
        "groupName must be unique within workerGroupSpecs: rename the duplicate group",
    )
    return _obj(
        "Desired state of the Ray cluster.",
        {
            "headGroupSpec": head_group_spec(k8s),
            "workerGroupSpecs": _array(
                "Worker groups, each with its own pod template (heterogeneous clusters).",
                worker_group_spec(k8s),
                maxItems=MAX_WORKER_GROUPS,
                # A list map keyed by groupName: server-side apply (Helm 4, kubectl
                # apply --server-side) merges group by group, so a manager that owns
                # one group's fields (the autoscaler's replicas) keeps them when
                # another manager applies the list.
                **{
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["groupName"],
                    "x-kubernetes-validations": [unique_groups],
                },
            ),
            "rayVersion": _str("Ray version of the images; selects version-dependent defaults."),
            "enableInTreeAutoscaling": _bool(
                "Run Ray's autoscaler as a sidecar of the head pod; it sets worker replicas."
            ),
            "autoscalerOptions": autoscaler_options(k8s),
            "headServiceAnnotations": _str_map("Annotations of the head Service."),
            "suspend": _bool("Delete all pods but keep the RayCluster; false recreates them."),
            "managedBy": _enum(
                f"Controller of this RayCluster. Absent or `{c.MANAGED_BY_US}`: this "
                f"operator; `{c.MANAGED_BY_MULTIKUEUE}`: MultiKueue, and this operator "
                "leaves it alone. Immutable.",
                c.MANAGED_BY_VALUES,
            ),
            "gcsFaultToleranceOptions": gcs_fault_tolerance_options(k8s),
            "authOptions": auth_options(),
            "upgradeStrategy": _obj(
                "What a change of a pod template does to running pods.",
                {
                    "type": _enum(
                        "Recreate: replace pods whose template changed. None: leave "
                        "running pods alone (new pods use the new template).",
                        UPGRADE_STRATEGIES,
                    )
                },
            ),
            "idleTerminationOptions": _obj(
                "Stop the cluster once no Ray driver has been attached for a while "
                "(done by Ray's autoscaler v2, Ray >= 2.60).",
                {
                    "timeoutSeconds": _int(
                        "Seconds without an attached driver before the policy applies.",
                        minimum=0,
                    ),
                    "policy": _enum(
                        "Suspend: set idleSuspend (pods deleted, object kept). Delete: "
                        "delete the RayCluster.",
                        IDLE_TERMINATION_POLICIES,
                        default="Suspend",
                    ),
                },
            ),
            "idleSuspend": _bool(
                "Set by the autoscaler under the Suspend idle policy; acts like suspend."
            ),
        },
        required=["headGroupSpec"],
        rules=[managed_by_rule],
    )


def status_schema(k8s: KubernetesSchemas) -> Schema:
    def replicas(description: str) -> Schema:
        # int64: sums of maxReplicas (default 2^31-1) over groups overflow an int32.
        return _int(description, fmt="int64", minimum=0)

    condition = k8s.get("io.k8s.apimachinery.pkg.apis.meta.v1.Condition")
    return _obj(
        "Observed state of the Ray cluster, written by the operator.",
        {
            "state": _str(
                f"`{c.STATE_READY}` or `{c.STATE_SUSPENDED}`. Deprecated: read conditions."
            ),
            "reason": _str("Why the cluster is in this state."),
            "observedGeneration": _int(
                "metadata.generation this status was computed from.", fmt="int64"
            ),
            "lastUpdateTime": _str("When the status last changed.", format="date-time"),
            "stateTransitionTimes": {
                "description": "When the cluster last entered each state.",
                "type": "object",
                "additionalProperties": {"type": "string", "format": "date-time"},
            },
            "readyWorkerReplicas": replicas("Worker pods that are Ready."),
            "availableWorkerReplicas": replicas("Worker pods that are Running."),
            "desiredWorkerReplicas": replicas(
                "Sum over groups of replicas (clamped) x numOfHosts; 0 for suspended groups."
            ),
            "minWorkerReplicas": replicas("Sum over groups of minReplicas x numOfHosts."),
            "maxWorkerReplicas": replicas("Sum over groups of maxReplicas x numOfHosts."),
            "desiredCPU": _quantity("CPU requested by the head and desired workers.", k8s),
            "desiredMemory": _quantity("Memory requested by the head and desired workers.", k8s),
            "desiredGPU": _quantity("GPUs requested by the head and desired workers.", k8s),
            "desiredTPU": _quantity(
                "TPUs (google.com/tpu) requested by the head and desired workers.", k8s
            ),
            "endpoints": _str_map(
                "Ports of the head Service, by port name: the node port if it has "
                "one (NodePort, LoadBalancer), else the target port."
            ),
            "head": _obj(
                "The head pod and Service.",
                {
                    "podIP": _str("IP of the head pod."),
                    "podName": _str("Name of the head pod."),
                    "serviceIP": _str(
                        "IP of the head Service (the head pod's IP if it is headless)."
                    ),
                    "serviceName": _str("Name of the head Service."),
                },
            ),
            "conditions": _array(
                "Conditions: HeadPodReady, RayClusterProvisioned, ReplicaFailure, "
                "RayClusterSuspending, RayClusterSuspended.",
                condition,
                **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
            ),
        },
    )


def root_rules() -> list[Schema]:
    n = c.MAX_CLUSTER_NAME_LENGTH
    return [
        _rule(
            f"self.metadata.name.size() <= {n}",
            f"metadata.name must be at most {n} characters, so that the head Service "
            "'<name>-head-svc' is a valid name: choose a shorter name",
            ".metadata.name",
        ),
        _rule(
            f"self.metadata.name.matches('{DNS1035_LABEL}')",
            "metadata.name must be a DNS-1035 label (lowercase letters, digits and '-', "
            "starting with a letter): it names the head Service",
            ".metadata.name",
        ),
    ]


def raycluster_schema(k8s: KubernetesSchemas) -> Schema:
    """The `openAPIV3Schema` of the served version."""
    schema = _obj(
        "A Ray cluster: one head pod and groups of worker pods, with a head Service.",
        {
            "apiVersion": _str("API version of this object: ray.io/v1."),
            "kind": _str("RayCluster."),
            # Only declared so the name rules can point at it (fieldPath).
            "metadata": {"type": "object", "properties": {"name": {"type": "string"}}},
            "spec": spec_schema(k8s),
            "status": status_schema(k8s),
        },
        required=["spec"],
        rules=root_rules(),
    )
    return sort_properties(schema)


LEGACY_VERSION = "v1alpha1"


def legacy_schema(v1: Schema) -> Schema:
    """The schema `ray.io/v1alpha1` is served with, so manifests written for it still
    apply. As KubeRay, the CRD converts nothing (strategy None): an object written as
    v1alpha1 is stored as it is and read as v1, so its fields must be v1's. They are
    validated the same way, except that pod templates and `headService` are kept as
    written (the derived Kubernetes schemas would double the CRD past the 256 KiB a
    client-side `kubectl apply` can store); the API server then checks them when the
    operator creates the pods and the Service, and a refusal becomes a condition."""
    out = copy.deepcopy(v1)
    spec = out["properties"]["spec"]["properties"]
    head = spec["headGroupSpec"]["properties"]
    group = spec["workerGroupSpecs"]["items"]["properties"]
    for parent, key in ((head, "template"), (group, "template"), (head, "headService")):
        parent[key] = {
            "description": parent[key]["description"],
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
        }
    out["properties"]["apiVersion"]["description"] = (
        f"API version of this object: {c.GROUP}/{LEGACY_VERSION} (read back as {c.API_VERSION})."
    )
    return out


def sort_properties(schema: Any) -> Any:
    """Copy of `schema` with every `properties` mapping in name order (stable output)."""
    if isinstance(schema, dict):
        out = {}
        for key, value in schema.items():
            if key == "properties":
                out[key] = {name: sort_properties(value[name]) for name in sorted(value)}
            else:
                out[key] = sort_properties(value)
        return out
    if isinstance(schema, list):
        return [sort_properties(item) for item in schema]
    return copy.deepcopy(schema)


def crd_document(
    name: str, kind: str, plural: str, singular: str, versions: list[Schema]
) -> Schema:
    """A namespaced `ray.io` CRD in the `all` category (as KubeRay's)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {
            "group": c.GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "categories": ["all"],
            },
            "scope": "Namespaced",
            "versions": versions,
        },
    }


def crd_version(name: str, storage: bool, columns: list[Schema], schema: Schema) -> Schema:
    """One served version with the status subresource."""
    return {
        "name": name,
        "served": True,
        "storage": storage,
        "additionalPrinterColumns": columns,
        "schema": {"openAPIV3Schema": schema},
        "subresources": {"status": {}},
    }
