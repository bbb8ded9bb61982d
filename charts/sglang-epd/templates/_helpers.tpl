{{/*
Names and labels.
*/}}
{{- define "sglang-epd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The RoleBasedGroup name. Not truncated: RBG derives pod and Service names from it, and a silently
shortened name would change every DNS name; "sglang-epd.validate" fails instead when it is too long.
*/}}
{{- define "sglang-epd.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride }}
{{- else if contains (include "sglang-epd.name" .) .Release.Name }}
{{- .Release.Name }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "sglang-epd.name" .) }}
{{- end }}
{{- end }}

{{- define "sglang-epd.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sglang-epd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sglang-epd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sglang-epd.labels" -}}
helm.sh/chart: {{ include "sglang-epd.chart" . }}
{{ include "sglang-epd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sglang-epd
{{- end }}

{{/*
Roles. Keys in .Values for the roles each mode renders, in start-up order.
*/}}
{{- define "sglang-epd.roleKeys" -}}
{{- $modes := dict
  "epd" (list "encoder" "prefill" "decode" "router")
  "pd" (list "prefill" "decode" "router")
  "encoder+collocated" (list "encoder" "server" "router")
  "collocated" (list "server" "router") }}
{{- toYaml (get $modes .Values.mode) }}
{{- end }}

{{/* The role that runs `--language-only` and the EncoderBootstrapServer, or "" without encoders. */}}
{{- define "sglang-epd.languageRoleKey" -}}
{{- get (dict "epd" "prefill" "encoder+collocated" "server") .Values.mode }}
{{- end }}

{{- define "sglang-epd.usesPD" -}}
{{- if has .Values.mode (list "epd" "pd") }}true{{ end }}
{{- end }}

{{/* Value of app.kubernetes.io/component for a role key. */}}
{{- define "sglang-epd.component" -}}
{{- get (dict "encoder" "encoder" "prefill" "prefill" "decode" "decode" "server" "server" "router" "router") . }}
{{- end }}

{{/*
Stable DNS name of pod <index> of a role: <rbg>-<role>-<index>.s-<rbg>-<role> (RBG standalone pattern:
hostname = pod name, subdomain = the role's headless Service). Args: (list $root $roleKey $index).
*/}}
{{- define "sglang-epd.podHost" -}}
{{- $root := index . 0 }}
{{- $role := (get $root.Values (index . 1)).name }}
{{- $rbg := include "sglang-epd.fullname" $root }}
{{- printf "%s-%s-%d.s-%s-%s" $rbg $role (int (index . 2)) $rbg $role }}
{{- end }}

{{/* YAML list of http://<pod host>:<port> for every pod of a role. Args: (list $root $roleKey $port). */}}
{{- define "sglang-epd.podUrls" -}}
{{- $root := index . 0 }}
{{- $key := index . 1 }}
{{- $urls := list }}
{{- range $i := until (int (get $root.Values $key).replicas) }}
{{- $urls = append $urls (printf "http://%s:%d" (include "sglang-epd.podHost" (list $root $key $i)) (int (index $ 2))) }}
{{- end }}
{{- toYaml $urls }}
{{- end }}

{{/*
Dependencies of a role. Args: (list $root $key). RBG checks them on every reconcile, not only at
creation: a role whose dependencies are not all Ready (readyReplicas == replicas) is not reconciled,
and neither is any role of a later level, so a dependency freezes scaling and updates of everything
after it (rbg internal/controller/workloads/rolebasedgroup_controller.go reconcileRoles). Only what a
role cannot start without is a dependency (docs/rbg-rules.md):
- static discovery: the language server is given every encoder URL at start, so it waits for them;
- a router with static worker URLs adds each one once, at start-up, and never again if it was not
  healthy by then, so it waits for its prefill/decode/server pods; with router discovery it waits for none.
Encoders under dynamic discovery depend on nothing and nothing depends on them: the registrar sidecar
registers them whenever the language servers come up.
*/}}
{{- define "sglang-epd.dependencies" -}}
{{- $root := index . 0 }}
{{- $key := index . 1 }}
{{- $lang := include "sglang-epd.languageRoleKey" $root }}
{{- $deps := list }}
{{- if and $lang (eq $key $lang) (eq $root.Values.encoderDiscovery.mode "static") }}
{{- $deps = list "encoder" }}
{{- else if and (eq $key "router") (not $root.Values.router.discovery.enabled) }}
{{- $deps = without (fromYamlArray (include "sglang-epd.sglangRoleKeys" $root)) "encoder" }}
{{- end }}
{{- $names := list }}
{{- range $deps }}
{{- $names = append $names (get $root.Values .).name }}
{{- end }}
{{- toYaml $names }}
{{- end }}

{{/* The image of a role: per-role fields override the global image. Args: (list $root $roleValues). */}}
{{- define "sglang-epd.image" -}}
{{- $root := index . 0 }}
{{- $override := (index . 1).image | default dict }}
{{- $repository := $override.repository | default $root.Values.image.repository }}
{{- $tag := $override.tag | default $root.Values.image.tag | default (printf "v%s" $root.Chart.AppVersion) }}
{{- printf "%s:%s" $repository $tag }}
{{- end }}

{{- define "sglang-epd.imagePullPolicy" -}}
{{- $root := index . 0 }}
{{- ((index . 1).image | default dict).pullPolicy | default $root.Values.image.pullPolicy }}
{{- end }}

{{- define "sglang-epd.servedModelName" -}}
{{- .Values.model.servedModelName | default .Values.model.id }}
{{- end }}

{{- define "sglang-epd.modelPath" -}}
{{- $m := .Values.model }}
{{- $sub := $m.path | default (ternary $m.id "" (eq $m.source "huggingface")) }}
{{- if $sub }}{{ printf "%s/%s" (trimSuffix "/" $m.mountPath) (trimPrefix "/" $sub) }}{{ else }}{{ $m.mountPath }}{{ end }}
{{- end }}

{{/*
Fails with `<value path>: <problem>` when a flag in extraArgs is one the chart already sets: two copies
of a flag make argparse keep the last one silently. Args: (list $valuesPath $chartArgs $extraArgs).
*/}}
{{- define "sglang-epd.checkExtraArgs" -}}
{{- $path := index . 0 }}
{{- $chartFlags := list }}
{{- range (index . 1) }}
{{- if hasPrefix "--" . }}{{ $chartFlags = append $chartFlags . }}{{ end }}
{{- end }}
{{- range (index . 2) }}
{{- $flag := first (splitList "=" (toString .)) }}
{{- if has $flag $chartFlags }}
{{- fail (printf "%s: %s is already set by the chart (chart flags: %s). Change the value that sets it instead of repeating it in extraArgs." $path $flag (join " " $chartFlags)) }}
{{- end }}
{{- end }}
{{- end }}


{{/* Keys of the SGLang roles (every role but the router) the mode renders. */}}
{{- define "sglang-epd.sglangRoleKeys" -}}
{{- toYaml (without (fromYamlArray (include "sglang-epd.roleKeys" .)) "router") }}
{{- end }}

{{/* matchLabels of one role's pods: RBG labels every pod with its group and role. Args: (list $root $key). */}}
{{- define "sglang-epd.roleSelector" -}}
{{- $root := index . 0 }}
{{- toYaml (dict
  "rbg.workloads.x-k8s.io/group-name" (include "sglang-epd.fullname" $root)
  "rbg.workloads.x-k8s.io/role-name" (get $root.Values (index . 1)).name) }}
{{- end }}

{{/*
`replicas` of a role in the RoleBasedGroup. Args: (list $root $key). Never omitted: the CRD defaults a
missing count to 1 before admission (api/workloads/v1alpha2/rolebasedgroup_types.go). For an
autoscaled role on upgrade, RBG's validating webhook (>= v0.8.0-alpha.2) rejects a count that differs
from the scaling adapter's spec.replicas (rolebasedgroup_validation.go ValidateScalingAdapterReplicas),
so the upgrade renders the adapter's count, else the live role's, read with lookup. Where nothing can be
read (helm template, client-side dry run, a first install) the values' count is rendered.
*/}}
{{- define "sglang-epd.roleReplicas" -}}
{{- $root := index . 0 }}
{{- $key := index . 1 }}
{{- $role := get $root.Values $key }}
{{- $count := $role.replicas }}
{{- if and (ne $key "router") $role.autoscaling.enabled $root.Release.IsUpgrade }}
{{- $rbg := include "sglang-epd.fullname" $root }}
{{- $adapter := lookup "workloads.x-k8s.io/v1alpha2" "RoleBasedGroupScalingAdapter" $root.Release.Namespace (printf "%s-%s" $rbg $role.name) }}
{{- if hasKey (dig "spec" dict $adapter) "replicas" }}
{{- $count = $adapter.spec.replicas }}
{{- else }}
{{- $live := lookup "workloads.x-k8s.io/v1alpha2" "RoleBasedGroup" $root.Release.Namespace $rbg }}
{{- range (dig "spec" "roles" (list) $live) }}
{{- if and (eq .name $role.name) (hasKey . "replicas") }}{{ $count = .replicas }}{{ end }}
{{- end }}
{{- end }}
{{- end }}
{{- $count }}
{{- end }}

{{/* The most pods a role can have: its replicas, or maxReplicas when autoscaled. Args: (list $root $key). */}}
{{- define "sglang-epd.maxPods" -}}
{{- $role := get (index . 0).Values (index . 1) }}
{{- if and (ne (index . 1) "router") $role.autoscaling.enabled }}{{ max (int $role.replicas) (int $role.autoscaling.maxReplicas) }}{{ else }}{{ int $role.replicas }}{{ end }}
{{- end }}

{{/*
Keys of the roles that open connections to a role's pods (its NetworkPolicy peers). Args: (list $root $key).
Encoder <-> language server (registration, /encode, embeddings back over ZMQ or Mooncake), prefill <->
decode (KV bootstrap and transfer), router -> prefill, decode and server.
*/}}
{{- define "sglang-epd.peers" -}}
{{- $root := index . 0 }}
{{- $key := index . 1 }}
{{- $lang := include "sglang-epd.languageRoleKey" $root }}
{{- $peers := list }}
{{- if eq $key "encoder" }}{{ $peers = list $lang }}{{ end }}
{{- if and $lang (eq $key $lang) }}{{ $peers = append $peers "encoder" }}{{ end }}
{{- if eq $key "prefill" }}{{ $peers = append $peers "decode" }}{{ end }}
{{- if eq $key "decode" }}{{ $peers = append $peers "prefill" }}{{ end }}
{{- if has $key (list "prefill" "decode" "server") }}{{ $peers = append $peers "router" }}{{ end }}
{{- toYaml $peers }}
{{- end }}

{{/* securityContext of a container. Args: (list $root $isSglang): only SGLang containers get IPC_LOCK
(RDMA) or privileged. */}}
{{- define "sglang-epd.containerSecurityContext" -}}
{{- $v := (index . 0).Values }}
{{- $sglang := index . 1 }}
{{- if and $sglang $v.security.privileged }}
privileged: true
{{- else }}
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
  {{- if and $sglang $v.rdma.enabled }}
  # Mooncake/NIXL pin transfer buffers in memory for RDMA.
  add: ["IPC_LOCK"]
  {{- end }}
{{- end }}
{{- end }}

{{/*
No plain-text secrets: an extraEnv entry whose name says it holds a secret must come from a Secret
(valueFrom), since a literal value would sit in the release and the RoleBasedGroup for anyone who can
read them. Args: (list "<role>.extraEnv" $env).
*/}}
{{- define "sglang-epd.checkExtraEnv" -}}
{{- range (index . 1) }}
{{- if and (hasKey . "value") (regexMatch "(?i)(TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|CREDENTIAL)" .name) }}
{{- fail (printf "%s: %s has a literal value; a secret must come from a Secret: {name: %s, valueFrom: {secretKeyRef: {name: <secret>, key: <key>}}}." (index $ 0) .name .name) }}
{{- end }}
{{- end }}
{{- end }}