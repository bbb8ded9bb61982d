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

{{/* "true" when a role runs Mooncake's transfer engine: PD over mooncake*, or encoder transfer over mooncake.
Args: (list $root $key). */}}
{{- define "sglang-epd.usesMooncake" -}}
{{- $v := (index . 0).Values }}
{{- $key := index . 1 }}
{{- $lang := include "sglang-epd.languageRoleKey" (index . 0) }}
{{- $pd := and (has $key (list "prefill" "decode")) (hasPrefix "mooncake" $v.disaggregation.transferBackend) }}
{{- $enc := and $lang (has $key (list "encoder" $lang)) (eq $v.encoderDiscovery.transferBackend "mooncake") }}
{{- if or $pd $enc }}true{{ end }}
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
{{- $digest := $override.digest | default $root.Values.image.digest }}
{{- printf "%s:%s" $repository $tag }}{{ with $digest }}@{{ . }}{{ end }}
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
Every connection between the group's roles, as {from, to, ports} (NetworkPolicyPort list), read from SGLang
0.5.23: both the ingress of `to` and the egress of `from` admit exactly these (networkpolicies.yaml).
- router -> prefill/decode/server HTTP (requests, health checks).
- language server -> encoder HTTP: /encode, /scheduler_receive_url, /send and the bootstrap server's
  /health probes (srt/disaggregation/encoder/receiver.py MMReceiverHTTP.encode, _health_check_loop); the
  encoder-watcher's TCP connects.
- encoder -> language server: its EncoderBootstrapServer port (registration, the registrar sidecar) and the
  ZMQ PULL sockets the language server binds at random for the embeddings (receiver.py
  MMReceiverBase.__init__, recv_mm_data via utils/network.py get_zmq_socket_on_host bind_to_random_port);
  with encoder transfer over Mooncake also its engine's ports (the encoder writes: encoder/server.py
  _run_mooncake_transfer).
- decode -> prefill: PD bootstrap server (/route, /query_dp_ranks, /health heartbeats), HTTP (re-bootstrap
  /generate) and the prefill's random ZMQ rank_port (disaggregation/common/conn.py CommonKVManager).
- prefill -> decode: the decode's random ZMQ rank_port (KV status) and Mooncake's engine ports (the prefill
  writes the KV: mooncake/conn.py _transfer_data). NIXL's UCX picks TCP ports of its own: any TCP port.
Args: $root.
*/}}
{{- define "sglang-epd.flows" -}}
{{- $v := .Values }}
{{- $np := $v.networkPolicy }}
{{- $keys := fromYamlArray (include "sglang-epd.roleKeys" .) }}
{{- $lang := include "sglang-epd.languageRoleKey" . }}
{{- $http := dict "port" "http" "protocol" "TCP" }}
{{- $zmq := dict "port" (int $np.ephemeralPorts.start) "endPort" (int $np.ephemeralPorts.end) "protocol" "TCP" }}
{{- $mooncake := dict "port" (int $np.mooncakePorts.start) "endPort" (int $np.mooncakePorts.end) "protocol" "TCP" }}
{{- $flows := list }}
{{- range $key := list "prefill" "decode" "server" }}
{{- if has $key $keys }}
{{- $flows = append $flows (dict "from" "router" "to" $key "ports" (list $http)) }}
{{- end }}
{{- end }}
{{- if $lang }}
{{- $flows = append $flows (dict "from" $lang "to" "encoder" "ports" (list $http)) }}
{{- $toLang := list (dict "port" "encoder-boot" "protocol" "TCP") $zmq }}
{{- if eq $v.encoderDiscovery.transferBackend "mooncake" }}{{ $toLang = append $toLang $mooncake }}{{ end }}
{{- $flows = append $flows (dict "from" "encoder" "to" $lang "ports" $toLang) }}
{{- end }}
{{- if include "sglang-epd.usesPD" . }}
{{- if eq $v.disaggregation.transferBackend "nixl" }}
{{- $flows = append $flows (dict "from" "decode" "to" "prefill" "ports" (list (dict "protocol" "TCP"))) }}
{{- $flows = append $flows (dict "from" "prefill" "to" "decode" "ports" (list (dict "protocol" "TCP"))) }}
{{- else }}
{{- $flows = append $flows (dict "from" "decode" "to" "prefill" "ports" (list (dict "port" "pd-bootstrap" "protocol" "TCP") $http $zmq)) }}
{{- $flows = append $flows (dict "from" "prefill" "to" "decode" "ports" (list $zmq $mooncake)) }}
{{- end }}
{{- end }}
{{- toYaml $flows }}
{{- end }}

{{/* Egress to cluster DNS (networkPolicy.egress.dns). */}}
{{- define "sglang-epd.dnsEgress" -}}
{{- $dns := .Values.networkPolicy.egress.dns }}
- to:
    - namespaceSelector:
        matchLabels:
          {{- toYaml $dns.namespaceSelector | nindent 10 }}
      podSelector:
        matchLabels:
          {{- toYaml $dns.podSelector | nindent 10 }}
  ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
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
{{- if and $sglang (or $v.rdma.enabled $v.security.privileged) }}
# An added capability takes effect only for root: Kubernetes sets no ambient capabilities.
runAsUser: 0
runAsNonRoot: false
{{- end }}
readOnlyRootFilesystem: {{ $v.security.readOnlyRootFilesystem }}
{{- end }}

{{/*
The checkov checks a pod skips, as `checkov.io/skipN: ID=reason` annotations (checkov's format; a reason holds
no "="). Each reason starts with the containers it is about ("pod" for the pod itself): the chart tests
scan the pod again without those containers and without the skips, and the check must pass there. The
list with the reasons is in the chart README, "Security". Args: (list $root $podKind) where $podKind is a
role key or "helm-test".
*/}}
{{- define "sglang-epd.checkovSkips" -}}
{{- $root := index . 0 }}
{{- $kind := index . 1 }}
{{- $v := $root.Values }}
{{- $skips := list }}
{{- $role := get $v $kind | default dict }}
{{- $serving := ternary "router" "sglang" (eq $kind "router") }}
{{- if eq $kind "helm-test" }}
{{- $serving = "" }}
{{- $role = $v.router }}
{{- $skips = append $skips "CKV_K8S_8:request: a one-shot test Pod that serves nothing; its exit status is the result" }}
{{- $skips = append $skips "CKV_K8S_9:request: a one-shot test Pod that serves nothing; its exit status is the result" }}
{{- end }}
{{- if not (($role.image | default dict).digest | default $v.image.digest) }}
{{- $skips = append $skips "CKV_K8S_43:pod: image.digest is empty, so images are pinned by tag; set image.digest to pin them by digest" }}
{{- $skips = append $skips "CKV_K8S_15:pod: IfNotPresent with a release tag (image.tag) the chart pins; set image.digest to make it exact" }}
{{- end }}
{{- if and $serving (not (get (get ($role.resources | default dict) "limits" | default dict) "cpu")) }}
{{- $skips = append $skips (printf "CKV_K8S_11:%s: a CFS quota throttles its threads (sized by the node's CPUs) and adds to TTFT; it has CPU requests; set %s.resources.limits.cpu to opt in" $serving $kind) }}
{{- end }}
{{- $registrar := and (eq $kind "encoder") (eq $v.encoderDiscovery.mode "dynamic") }}
{{- $watcher := and (eq $kind (include "sglang-epd.languageRoleKey" $root)) (eq $v.encoderDiscovery.mode "dynamic") $v.encoderDiscovery.watcher.enabled }}
{{- $sidecar := ternary "registrar" (ternary "encoder-watcher" "" $watcher) $registrar }}
{{- if $sidecar }}
{{- $skips = append $skips (printf "CKV_K8S_8:%s: a sidecar loop that serves no port; the kubelet restarts it when it exits" $sidecar) }}
{{- $skips = append $skips (printf "CKV_K8S_9:%s: a sidecar loop that serves no port; the kubelet restarts it when it exits" $sidecar) }}
{{- end }}
{{- if and $serving (ne $kind "router") $v.rdma.enabled (not $v.security.privileged) }}
{{- $skips = append $skips "CKV_K8S_23:sglang: rdma.enabled; IPC_LOCK (RDMA memory pinning) takes effect only for root" }}
{{- $skips = append $skips "CKV_K8S_40:sglang: rdma.enabled; IPC_LOCK (RDMA memory pinning) takes effect only for root" }}
{{- $skips = append $skips "CKV_K8S_25:sglang: rdma.enabled; Mooncake and NIXL pin transfer buffers (IPC_LOCK)" }}
{{- if $v.rdma.hostNetwork }}
{{- $skips = append $skips "CKV_K8S_19:pod: rdma.hostNetwork; the RDMA NICs are reachable only from the node's network namespace without an RDMA CNI" }}
{{- end }}
{{- end }}
{{- if and (eq $kind "router") $v.router.discovery.enabled }}
{{- $skips = append $skips "CKV_K8S_38:pod: router.discovery.enabled; the router watches this group's pods through the API (its Role allows get/list/watch pods only)" }}
{{- end }}
{{- if not $v.networkPolicy.enabled }}
{{- $skips = append $skips "CKV2_K8S_6:pod: networkPolicy.enabled is off (opt-in: the router's client namespaces are site-specific); turn it on to render one NetworkPolicy per role" }}
{{- end }}
{{- range $i, $skip := $skips }}
{{- $parts := splitn ":" 2 $skip }}
checkov.io/skip{{ add1 $i }}: {{ printf "%s=%s" $parts._0 $parts._1 | quote }}
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