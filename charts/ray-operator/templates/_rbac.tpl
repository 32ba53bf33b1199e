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
  # get: each pass; list/watch: kopf and the resync; patch: finalizers. delete is never called by the
  # operator itself: it holds it because the autoscaler Role it creates may grant
  # it, and RBAC forbids granting a permission one does not hold.
  verbs: ["get", "list", "watch", "patch", "delete"]
- apiGroups: ["ray.io"]
  resources: ["rayclusters/status"]
  verbs: ["patch"]
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
  # The autoscaler's ServiceAccount, one per autoscaling RayCluster.
  resources: ["serviceaccounts"]
  verbs: ["get", "create"]
- apiGroups: ["batch"]
  # GCS fault tolerance: the Redis cleanup Job of a deleted RayCluster (created once,
  # found by labels, watched for its end; garbage-collected with the RayCluster).
  resources: ["jobs"]
  verbs: ["list", "watch", "create"]
- apiGroups: ["rbac.authorization.k8s.io"]
  # The autoscaler's Role and RoleBinding.
  resources: ["roles", "rolebindings"]
  verbs: ["get", "create"]
- apiGroups: ["networking.k8s.io"]
  # The head's Ingress (headGroupSpec.enableIngress), created once, never changed.
  resources: ["ingresses"]
  verbs: ["get", "create"]
{{- end }}

{{/* Reading the CRD (kopf watches CRDs to notice the API appearing); cluster-scoped. */}}
{{- define "ray-operator.rbac.crdRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
{{- end }}
