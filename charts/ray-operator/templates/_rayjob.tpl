{{/*
ray-operator.rayJob: one RayJob (ray.io/v1) from an entry of `rayJobs`.
Argument: dict with `root` (the chart context), `name` and `job` (its values).
`cluster` is a `rayClusters` entry (the same settings and defaults) that becomes
`spec.rayClusterSpec`; `clusterName` runs the job on an existing RayCluster instead
(`spec.clusterSelector`). The other keys are the RayJob's own spec fields.
*/}}
{{- define "ray-operator.rayJob" -}}
{{- $root := .root }}
{{- $name := .name }}
{{- $j := .job }}
{{- $where := printf "rayJobs.%s" $name }}
{{- $namespace := $j.namespace | default $root.Release.Namespace }}
{{- $watched := include "ray-operator.watchNamespaces" $root | fromJsonArray }}
{{- if and $watched (not (has $namespace $watched)) }}
{{- fail (printf "%s.namespace is %q, which the operator does not watch (watchNamespaces: %s): add it there or pick a watched namespace" $where $namespace (join ", " $watched)) }}
{{- end }}
{{- if and $j.cluster $j.clusterName }}
{{- fail (printf "%s: set cluster (a new RayCluster for the job) or clusterName (an existing one), not both" $where) }}
{{- end }}
{{- if not (or $j.cluster $j.clusterName) }}
{{- fail (printf "%s: set cluster (a new RayCluster for the job, like a rayClusters entry) or clusterName (an existing RayCluster)" $where) }}
{{- end }}
{{- if and (not $j.entrypoint) (ne ($j.submissionMode | default "") "InteractiveMode") }}
{{- fail (printf "%s.entrypoint is empty: set the command the job runs (only submissionMode InteractiveMode goes without)" $where) }}
{{- end }}
{{- with $j.cluster }}
{{- if or (hasKey . "namespace") (hasKey . "enabled") }}
{{- fail (printf "%s.cluster: namespace and enabled are the RayJob's (%s.namespace, %s.enabled)" $where $where $where) }}
{{- end }}
{{- end }}
apiVersion: ray.io/v1
kind: RayJob
metadata:
  name: {{ $name }}
  namespace: {{ $namespace }}
  labels:
    {{- include "ray-operator.labels" $root | nindent 4 }}
    app.kubernetes.io/component: rayjob
    {{- with $j.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $j.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- with $j.entrypoint }}
  entrypoint: {{ . | quote }}
  {{- end }}
  {{- with $j.runtimeEnv }}
  runtimeEnvYAML: {{ toYaml . | quote }}
  {{- end }}
  {{- $passed := list "submissionMode" "runtimeEnvYAML" "metadata" "jobId" "shutdownAfterJobFinishes" "ttlSecondsAfterFinished" "activeDeadlineSeconds" "preRunningDeadlineSeconds" "backoffLimit" "suspend" "entrypointNumCpus" "entrypointNumGpus" "entrypointResources" "submitterPodTemplate" "submitterConfig" "deletionStrategy" "managedBy" }}
  {{- $spec := dict }}
  {{- range $key := $passed }}
  {{- if hasKey $j $key }}
  {{- $_ := set $spec $key (get $j $key) }}
  {{- end }}
  {{- end }}
  {{- with $spec }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- with $j.clusterName }}
  clusterSelector:
    ray.io/cluster: {{ . | quote }}
  {{- end }}
  {{- with $j.cluster }}
  {{- $cluster := merge (dict "namespace" $namespace) (deepCopy .) }}
  {{- $rendered := include "ray-operator.rayCluster" (dict "root" $root "name" $name "cluster" $cluster "where" (printf "%s.cluster" $where)) | fromYaml }}
  rayClusterSpec:
    {{- toYaml $rendered.spec | nindent 4 }}
  {{- end }}
{{- end }}
