{{/*
Names, labels and small derived values shared by every template.
*/}}

{{/* The chart name, overridable with nameOverride. */}}
{{- define "ray-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: fullnameOverride, else the release name if it
already contains the chart name, else `<release>-<chart>`; at most 63 characters.
*/}}
{{- define "ray-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* `<chart>-<version>` for the helm.sh/chart label. */}}
{{- define "ray-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object of the release carries. */}}
{{- define "ray-operator.labels" -}}
helm.sh/chart: {{ include "ray-operator.chart" . }}
{{ include "ray-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ray-operator
{{- end }}

{{/* Labels that select the operator pods: never the version, which changes. */}}
{{- define "ray-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ray-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The operator's ServiceAccount name. */}}
{{- define "ray-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ray-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator image reference; the tag defaults to the chart's appVersion. */}}
{{- define "ray-operator.image" -}}
{{- $repo := required "image.repository must not be empty" .Values.image.repository }}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* "true" when the operator runs leader election (more than one replica). */}}
{{- define "ray-operator.leaderElection" -}}
{{- if gt (int .Values.replicaCount) 1 }}true{{ end }}
{{- end }}

{{/* The leader-election Lease name. */}}
{{- define "ray-operator.leaderElectionId" -}}
{{- default (printf "%s-leader" (include "ray-operator.fullname" .)) .Values.leaderElection.id }}
{{- end }}

{{/* The metrics Service name (also the Prometheus `job` label of its targets). */}}
{{- define "ray-operator.metricsServiceName" -}}
{{- printf "%s-metrics" (include "ray-operator.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{/* The namespaces the operator watches, as a list; empty in cluster mode. */}}
{{- define "ray-operator.watchNamespaces" -}}
{{- toJson (.Values.watchNamespaces | default list | uniq) }}
{{- end }}

{{/*
Cross-field checks that JSON schema cannot express. Included by every template that
depends on them, so `helm template` fails early with a message naming the values.
*/}}
{{- define "ray-operator.validate" -}}
{{- if and .Values.metrics.service.enabled (not .Values.metrics.enabled) }}
{{- fail "metrics.service.enabled needs metrics.enabled: the Service would point at no endpoint" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not (and .Values.metrics.enabled .Values.metrics.service.enabled)) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled and metrics.service.enabled: it scrapes the operator through that Service" }}
{{- end }}
{{- with .Values.leaderElection }}
{{- if not (and (lt (int .retryPeriodSeconds) (int .renewDeadlineSeconds)) (lt (int .renewDeadlineSeconds) (int .leaseDurationSeconds))) }}
{{- fail (printf "leaderElection: need retryPeriodSeconds < renewDeadlineSeconds < leaseDurationSeconds (got %d, %d, %d): the old leader must stop writing before another may take over" (int .retryPeriodSeconds) (int .renewDeadlineSeconds) (int .leaseDurationSeconds)) }}
{{- end }}
{{- end }}
{{- if eq (int .Values.metrics.port) (int .Values.probes.port) }}
{{- fail (printf "metrics.port and probes.port are both %d: the metrics and health endpoints need different ports" (int .Values.metrics.port)) }}
{{- end }}
{{- range $i, $ns := .Values.watchNamespaces }}
{{- include "ray-operator.checkName" (dict "where" (printf "watchNamespaces[%d]" $i) "name" $ns "what" "namespace") }}
{{- end }}
{{- range $name, $c := .Values.rayClusters }}
{{- $where := printf "rayClusters.%s" $name }}
{{- include "ray-operator.checkName" (dict "where" (printf "rayClusters key %q" $name) "name" $name "what" "cluster") }}
{{- with ($c | default dict) }}
{{- with .namespace }}
{{- include "ray-operator.checkName" (dict "where" (printf "%s.namespace" $where) "name" . "what" "namespace") }}
{{- end }}
{{- range $group, $_ := (.workerGroups | default dict) }}
{{- include "ray-operator.checkName" (dict "where" (printf "%s.workerGroups key %q" $where $group) "name" $group "what" "group") }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
ray-operator.checkName: fail unless `name` is a valid name of its kind, with a message
naming the values key and the rule. Argument: dict with `where` (the values key),
`name` and `what`: `cluster` (a DNS-1035 label of at most 54 characters, so that
`<name>-head-svc` fits in 63), `group` (a DNS-1123 label other than `headgroup`) or
`namespace` (a DNS-1123 label).
*/}}
{{- define "ray-operator.checkName" -}}
{{- $name := toString .name }}
{{- if eq .what "cluster" }}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $name) }}
{{- fail (printf "%s: a RayCluster name must be a DNS-1035 label: lowercase letters, digits and '-', starting with a letter and ending with a letter or digit" .where) }}
{{- end }}
{{- if gt (len $name) 54 }}
{{- fail (printf "%s: a RayCluster name must be at most 54 characters (it has %d): its head Service <name>-head-svc must fit in 63" .where (len $name)) }}
{{- end }}
{{- else }}
{{- $kind := ternary "a worker group name" "a namespace" (eq .what "group") }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" $name) }}
{{- fail (printf "%s: %s must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit" .where $kind) }}
{{- end }}
{{- if gt (len $name) 63 }}
{{- fail (printf "%s: %s must be at most 63 characters (it has %d)" .where $kind (len $name)) }}
{{- end }}
{{- if and (eq .what "group") (eq $name "headgroup") }}
{{- fail (printf "%s: a worker group must not be named headgroup, the head's group name: pick another" .where) }}
{{- end }}
{{- end }}
{{- end }}
