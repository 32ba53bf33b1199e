{{/*
Helpers that turn one entry of `rayClusters` into a RayCluster (ray.io/v1).
*/}}

{{/*
ray-operator.groupConfig: the effective settings of one head or worker group.
Argument: a list of layers, least specific first (rayClusterDefaults.group, the
cluster's groupDefaults, the group itself). A key set in a later layer wins; the maps
in `mergedKeys` are merged key by key instead. Returns JSON (templates return text).
*/}}
{{- define "ray-operator.groupConfig" -}}
{{- $mergedKeys := list "image" "rayStartParams" "nodeSelector" "labels" "annotations" "podSpec" "container" }}
{{- $out := dict }}
{{- range $layer := . }}
{{- range $key, $value := ($layer | default dict) }}
{{- $previous := get $out $key }}
{{- if and (has $key $mergedKeys) (kindIs "map" $value) (kindIs "map" $previous) }}
{{- $_ := set $out $key (merge (deepCopy $value) (deepCopy $previous)) }}
{{- else }}
{{- $_ := set $out $key $value }}
{{- end }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/*
ray-operator.rayStartParams: a map of `ray start` flags with every value a string, as
the CRD requires (numbers and booleans from values are converted).
Argument: the map.
*/}}
{{- define "ray-operator.rayStartParams" -}}
{{- toYaml (include "ray-operator.stringMap" . | fromJson) }}
{{- end }}

{{/*
ray-operator.stringMap: the map with every value a string (JSON). Whole numbers print
as integers: values files hand numbers to templates as floats, and 1000000 must not
become "1e+06".
*/}}
{{- define "ray-operator.stringMap" -}}
{{- $out := dict }}
{{- range $key, $value := (. | default dict) }}
{{- if and (kindIs "float64" $value) (eq $value (floor $value)) }}
{{- $value = int64 $value }}
{{- end }}
{{- $_ := set $out $key (toString $value) }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/*
ray-operator.resources: ResourceRequirements with every quantity a string, the form
Kubernetes itself returns (`nvidia.com/gpu: 1` becomes "1"), so that no client of the
RayCluster has to cope with numbers. Argument: the resources map; returns YAML.
*/}}
{{- define "ray-operator.resources" -}}
{{- $out := dict }}
{{- range $key, $value := (. | default dict) }}
{{- if and (has $key (list "limits" "requests")) (kindIs "map" $value) }}
{{- $_ := set $out $key (include "ray-operator.stringMap" $value | fromJson) }}
{{- else }}
{{- $_ := set $out $key $value }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/*
ray-operator.rayPodTemplate: the pod template of a group. The Ray container is
container 0 (Ray's autoscaler reads containers[0]); the operator adds the `ray start`
command, ports, probes, environment and /dev/shm.
Argument: dict with `group` (effective settings), `container` (name of the Ray
container) and `where` (the values path, for error messages).
*/}}
{{- define "ray-operator.rayPodTemplate" -}}
{{- $g := .group }}
{{- $image := $g.image | default dict }}
{{- if not $image.repository }}
{{- fail (printf "%s.image.repository is empty: set it there, in the cluster's groupDefaults or in rayClusterDefaults.group" .where) }}
{{- end }}
{{- $meta := dict }}
{{- with $g.labels }}{{ $_ := set $meta "labels" . }}{{ end }}
{{- with $g.annotations }}{{ $_ := set $meta "annotations" . }}{{ end }}
{{- with $meta }}
metadata:
  {{- toYaml . | nindent 2 }}
{{- end }}
spec:
  {{- with $g.serviceAccountName }}
  serviceAccountName: {{ . }}
  {{- end }}
  {{- with $g.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $g.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $g.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with $g.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $g.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $g.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ .container }}
      image: {{ ternary (printf "%s:%s" $image.repository $image.tag) $image.repository (not (empty $image.tag)) | quote }}
      {{- with $image.pullPolicy }}
      imagePullPolicy: {{ . }}
      {{- end }}
      {{- with $g.resources }}
      resources:
        {{- include "ray-operator.resources" . | nindent 8 }}
      {{- end }}
      {{- $env := $g.env | default list }}
      {{- $own := list }}
      {{- range $env }}{{ $own = append $own .name }}{{ end }}
      {{- range (.defaultEnv | default list) }}
      {{- if not (has .name $own) }}{{ $env = append $env . }}{{ end }}
      {{- end }}
      {{- with $env }}
      env:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $g.envFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $g.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $g.volumeMounts }}
      volumeMounts:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $g.container }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    {{- with $g.extraContainers }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $g.volumes }}
  volumes:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $g.podSpec }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/*
ray-operator.rayCluster: one RayCluster manifest.
Argument: dict with `root` (the chart context), `name` and `cluster` (its values), and
optionally `where` (its values path in error messages; default `rayClusters.<name>`).
*/}}
{{- define "ray-operator.rayCluster" -}}
{{- $root := .root }}
{{- $name := .name }}
{{- $c := .cluster }}
{{- $where := .where | default (printf "rayClusters.%s" $name) }}
{{- $defaults := $root.Values.rayClusterDefaults }}
{{- $namespace := $c.namespace | default $root.Release.Namespace }}
{{- $watched := include "ray-operator.watchNamespaces" $root | fromJsonArray }}
{{- if and $watched (not (has $namespace $watched)) }}
{{- fail (printf "%s.namespace is %q, which the operator does not watch (watchNamespaces: %s): add it there or pick a watched namespace" $where $namespace (join ", " $watched)) }}
{{- end }}
{{- $generated := list "rayVersion" "enableInTreeAutoscaling" "autoscalerOptions" "suspend" "upgradeStrategy" "headServiceAnnotations" "workerGroupSpecs" }}
{{- range $key, $_ := ($c.extraSpec | default dict) }}
{{- if has $key $generated }}
{{- fail (printf "%s.extraSpec.%s is generated by the chart: set it through the cluster's own values instead" $where $key) }}
{{- end }}
{{- end }}
{{- if and $c.authOptions (hasKey ($c.extraSpec | default dict) "authOptions") }}
{{- fail (printf "%s.authOptions and %s.extraSpec.authOptions are both set: keep one" $where $where) }}
{{- end }}
{{- if and $c.gcsFaultToleranceOptions (hasKey ($c.extraSpec | default dict) "gcsFaultToleranceOptions") }}
{{- fail (printf "%s.gcsFaultToleranceOptions and %s.extraSpec.gcsFaultToleranceOptions are both set: keep one" $where $where) }}
{{- end }}
{{- $head := include "ray-operator.groupConfig" (list $defaults.group $c.groupDefaults $c.head) | fromJson }}
{{- $autoscaling := $c.autoscaling | default dict }}
apiVersion: ray.io/v1
kind: RayCluster
metadata:
  name: {{ $name }}
  namespace: {{ $namespace }}
  labels:
    {{- include "ray-operator.labels" $root | nindent 4 }}
    app.kubernetes.io/component: raycluster
    {{- with $c.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $c.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  rayVersion: {{ $c.rayVersion | default $defaults.rayVersion | quote }}
  enableInTreeAutoscaling: {{ $autoscaling.enabled | default false }}
  {{- if and $autoscaling.enabled $autoscaling.options }}
  {{- $options := deepCopy $autoscaling.options }}
  {{- with $options.resources }}
  {{- $_ := set $options "resources" (include "ray-operator.resources" . | fromYaml) }}
  {{- end }}
  autoscalerOptions:
    {{- toYaml $options | nindent 4 }}
  {{- end }}
  {{- if $c.suspend }}
  suspend: true
  {{- end }}
  {{- with $c.upgradeStrategy }}
  upgradeStrategy:
    type: {{ . }}
  {{- end }}
  {{- with $head.serviceAnnotations }}
  headServiceAnnotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $c.authOptions }}
  authOptions:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $c.gcsFaultToleranceOptions }}
  gcsFaultToleranceOptions:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- $headSpec := include "ray-operator.headGroupSpec" (dict "head" $head "where" (printf "%s.head" $where) "defaultEnv" $defaults.env) }}
  {{- with ($c.extraSpec | default dict).headGroupSpec }}
  {{- /* extraSpec.headGroupSpec is merged over the generated one (maps key by key) */}}
  {{- $headSpec = toYaml (mergeOverwrite (fromYaml $headSpec) (deepCopy .)) }}
  {{- end }}
  headGroupSpec:
    {{- $headSpec | trim | nindent 4 }}
  workerGroupSpecs:
  {{- range $groupName, $values := ($c.workerGroups | default dict) }}
  {{- $g := include "ray-operator.groupConfig" (list $defaults.group $c.groupDefaults $values) | fromJson }}
  {{- if ne (toString $g.enabled) "false" }}
  {{- $gw := printf "%s.workerGroups.%s" $where $groupName }}
  {{- if and (hasKey $g "minReplicas") (hasKey $g "maxReplicas") (gt (int64 $g.minReplicas) (int64 $g.maxReplicas)) }}
  {{- fail (printf "%s: minReplicas (%d) must not be greater than maxReplicas (%d)" $gw (int64 $g.minReplicas) (int64 $g.maxReplicas)) }}
  {{- end }}
  {{- if and $autoscaling.enabled (hasKey $g "replicas") }}
  {{- fail (printf "%s.replicas: with autoscaling.enabled, Ray's autoscaler owns replicas and the chart leaves it out, so that helm upgrade never resets the count the autoscaler chose; the group starts at minReplicas: set minReplicas instead" $gw) }}
  {{- end }}
    - groupName: {{ $groupName }}
      {{- range $key := list "replicas" "minReplicas" "maxReplicas" "numOfHosts" "idleTimeoutSeconds" }}
      {{- if hasKey $g $key }}
      {{ $key }}: {{ int64 (get $g $key) }}
      {{- end }}
      {{- end }}
      {{- if $g.suspend }}
      suspend: true
      {{- end }}
      {{- $params := include "ray-operator.rayStartParams" $g.rayStartParams }}
      rayStartParams: {{- if eq $params "{}" }} {}{{ else }}{{ $params | nindent 8 }}{{ end }}
      template:
        {{- include "ray-operator.rayPodTemplate" (dict "group" $g "container" "ray-worker" "where" $gw "defaultEnv" $defaults.env) | trim | nindent 8 }}
  {{- end }}
  {{- else }} []
  {{- end }}
  {{- with (omit ($c.extraSpec | default dict) "headGroupSpec") }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/*
ray-operator.headGroupSpec: the headGroupSpec of a cluster, as YAML.
Argument: dict with `head` (its effective settings) and `where` (the values path).
*/}}
{{- define "ray-operator.headGroupSpec" -}}
{{- $head := .head }}
{{- with $head.serviceType }}
serviceType: {{ . }}
{{- end }}
{{- with $head.service }}
headService:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $params := include "ray-operator.rayStartParams" $head.rayStartParams }}
rayStartParams: {{- if eq $params "{}" }} {}{{ else }}{{ $params | nindent 2 }}{{ end }}
template:
  {{- include "ray-operator.rayPodTemplate" (dict "group" $head "container" "ray-head" "where" .where "defaultEnv" .defaultEnv) | trim | nindent 2 }}
{{- end }}
