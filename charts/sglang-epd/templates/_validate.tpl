{{/*
Checks the schema cannot express. Each failure names the value to change and how.
*/}}
{{- define "sglang-epd.validate" -}}
{{- $v := .Values }}
{{- $rbgApi := "workloads.x-k8s.io/v1alpha2/RoleBasedGroup" }}
{{- if and $v.preflight.requireRbgApi (not (.Capabilities.APIVersions.Has $rbgApi)) }}
{{- fail (printf "preflight.requireRbgApi: this cluster does not serve %s. Install the RBG controller first (Helm chart deploy/helm/rbgs of github.com/sgl-project/rbg, namespace rbgs-system; Kubernetes >= 1.28), then retry. For offline `helm template`, pass --api-versions %s or --set preflight.requireRbgApi=false." $rbgApi $rbgApi) }}
{{- end }}

{{- $rbg := include "sglang-epd.fullname" . }}
{{- $keys := fromYamlArray (include "sglang-epd.roleKeys" .) }}
{{- $seen := dict }}
{{- range $key := $keys }}
{{- $role := get $v $key }}
{{- if hasKey $seen $role.name }}
{{- fail (printf "%s.name: %q is also %s.name; RBG role names must be unique." $key $role.name (get $seen $role.name)) }}
{{- end }}
{{- $_ := set $seen $role.name $key }}
{{- /* RBG names the headless Service s-<rbg>-<role> and pod i <rbg>-<role>-<i>; both are DNS labels. */}}
{{- $service := printf "s-%s-%s" $rbg $role.name }}
{{- $lastPod := printf "%s-%s-%d" $rbg $role.name (max 0 (sub (int $role.replicas) 1)) }}
{{- range $dnsLabel := list $service $lastPod }}
{{- if gt (len $dnsLabel) 63 }}
{{- fail (printf "%s.name / fullnameOverride: the RBG-generated name %q is %d characters, over the 63 allowed for a DNS label. Shorten %s.name, fullnameOverride or the release name." $key $dnsLabel (len $dnsLabel) $key) }}
{{- end }}
{{- end }}
{{- if and (ne $key "encoder") (lt (int $role.replicas) 1) }}
{{- fail (printf "%s.replicas: the router is configured with one URL per %s pod and needs at least one; got %v." $key $key $role.replicas) }}
{{- end }}
{{- end }}

{{- $lang := include "sglang-epd.languageRoleKey" . }}
{{- if $lang }}
{{- if and (eq $v.encoderDiscovery.mode "static") (lt (int $v.encoder.replicas) 1) }}
{{- fail "encoder.replicas: static encoder discovery passes one --encoder-urls entry per encoder pod and needs at least one encoder. Use encoderDiscovery.mode=dynamic to start with none." }}
{{- end }}
{{- if and (eq $v.encoderDiscovery.transferBackend "mooncake") (not $v.rdma.enabled) }}
{{- fail "encoderDiscovery.transferBackend: mooncake moves embeddings over RDMA and needs rdma.enabled=true with rdma.resources; use auto (ZMQ over TCP) on clusters without RDMA." }}
{{- end }}
{{- $langPorts := list (int (get $v $lang).port) (int $v.encoderDiscovery.bootstrapPort) }}
{{- if eq $lang "prefill" }}{{ $langPorts = append $langPorts (int $v.disaggregation.bootstrapPort) }}{{ end }}
{{- if ne (len $langPorts) (len (uniq $langPorts)) }}
{{- fail (printf "%s.port, encoderDiscovery.bootstrapPort and disaggregation.bootstrapPort must differ: the %s pod listens on all of them (got %v)." $lang $lang $langPorts) }}
{{- end }}
{{- end }}

{{- if include "sglang-epd.usesPD" . }}
{{- if and (eq $v.disaggregation.transferBackend "mooncake") (not $v.rdma.enabled) }}
{{- fail "disaggregation.transferBackend: mooncake moves the KV cache over RDMA and needs rdma.enabled=true with rdma.resources; use mooncake_tcp on clusters without RDMA." }}
{{- end }}
{{- if eq (int $v.prefill.port) (int $v.disaggregation.bootstrapPort) }}
{{- fail "prefill.port and disaggregation.bootstrapPort must differ: the prefill pod listens on both." }}
{{- end }}
{{- end }}

{{- if and $v.rdma.enabled (not $v.rdma.resources) }}
{{- fail "rdma.resources: rdma.enabled needs at least one RDMA device resource, e.g. {rdma/hca: 1}." }}
{{- end }}
{{- if and $v.metrics.enabled (eq (int $v.router.port) (int $v.router.metricsPort)) }}
{{- fail "router.metricsPort must differ from router.port: the router serves Prometheus on its own listener." }}
{{- end }}

{{- if and $v.router.ingress.enabled (not $v.router.ingress.hosts) }}
{{- fail "router.ingress.hosts: router.ingress.enabled needs at least one host rule, e.g. [{host: vlm.example.com, paths: [{path: /, pathType: Prefix}]}]." }}
{{- end }}

{{- $m := $v.model }}
{{- if and (eq $m.source "pvc") (not $m.pvc.claimName) }}
{{- fail "model.pvc.claimName: model.source is pvc, so name an existing PersistentVolumeClaim that holds the weights." }}
{{- end }}
{{- if and (eq $m.source "hostPath") (not $m.hostPath.path) }}
{{- fail "model.hostPath.path: model.source is hostPath, so give the absolute directory of the weights on the node." }}
{{- end }}
{{- end }}
