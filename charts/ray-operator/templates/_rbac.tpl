{{/*
The rules the operator needs to reconcile RayClusters in one namespace (or, in a
ClusterRole, in all of them). Least privilege: every verb here is used and there are no
wildcards; Secrets only get and create (authOptions' token Secret), never list, watch,
update or delete. Each API call of the operator declares what it needs
(operator/ray_operator/kube.py, `@needs`); tests/chart/test_rbac.py fails when these
rules grant more or less than that table (operator/ray_operator/rbac.py).
*/}}
{{- define "ray-operator.rbac.reconcileRules" -}}
- apiGroups: ["ray.io"]
  resources: ["rayclusters"]
  # get: each pass; list/watch: the watch and the resync; patch: finalizers, and a
  # RayJob's deletionStrategy DeleteWorkers; create/delete: a RayJob's cluster (the
  # autoscaler Role it creates may grant delete too).
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["ray.io"]
  resources: ["rayclusters/status"]
  verbs: ["patch"]
- apiGroups: ["ray.io"]
  # get: each pass; list/watch: the watch and the resync; patch: the stop-job finalizer;
  # delete: deletionStrategy DeleteSelf.
  resources: ["rayjobs"]
  verbs: ["get", "list", "watch", "patch", "delete"]
- apiGroups: ["ray.io"]
  resources: ["rayjobs/status"]
  verbs: ["patch"]
- apiGroups: ["batch"]
  # The K8sJobMode submitter Job of a RayJob.
  resources: ["jobs"]
  verbs: ["get", "create", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "create", "delete", "patch"]
- apiGroups: [""]
  # Not used by the operator: handed on to the autoscaler Role (see above).
  resources: ["pods/resize"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
- apiGroups: [""]
  # authOptions: create the generated token Secret when it is missing (get); check
  # that a user's secretName exists and has the key auth_token (only key names are
  # read). A Secret is never changed, listed or watched.
  resources: ["secrets"]
  verbs: ["get", "create"]
- apiGroups: [""]
  # The autoscaler's ServiceAccount, one per autoscaling RayCluster; list: those of
  # many clusters at once after a restart or resync (metadata, by label).
  resources: ["serviceaccounts"]
  verbs: ["get", "list", "create"]
- apiGroups: ["batch"]
  # GCS fault tolerance: the Redis cleanup Job of a deleted RayCluster (created once,
  # found by labels, watched for its end; garbage-collected with the RayCluster).
  resources: ["jobs"]
  verbs: ["list", "watch", "create"]
- apiGroups: ["rbac.authorization.k8s.io"]
  # The autoscaler's Role and RoleBinding (list: as for its ServiceAccount).
  resources: ["roles", "rolebindings"]
  verbs: ["get", "list", "create"]
- apiGroups: ["networking.k8s.io"]
  # The head's Ingress (headGroupSpec.enableIngress), created once, never changed.
  resources: ["ingresses"]
  verbs: ["get", "create"]
{{- end }}

{{/* Reading the CRD: the operator waits for it to exist before it watches; cluster-scoped. */}}
{{- define "ray-operator.rbac.crdRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get"]
{{- end }}
