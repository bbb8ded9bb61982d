{{/*
Command-line arguments, one token per list element (Kubernetes passes each element as one argv entry).
*/}}

{{/* `launch_server` arguments the chart sets for a SGLang role. Args: (list $root $roleKey). */}}
{{- define "sglang-epd.sglangArgs" -}}
{{- $root := index . 0 }}
{{- $key := index . 1 }}
{{- $v := $root.Values }}
{{- $role := get $v $key }}
{{- $lang := include "sglang-epd.languageRoleKey" $root }}
{{- $args := list
  "--model-path" (include "sglang-epd.modelPath" $root)
  "--served-model-name" (include "sglang-epd.servedModelName" $root)
  "--host" "0.0.0.0"
  "--port" (toString $role.port)
  "--tp-size" (toString $role.tpSize) }}
{{- if $v.model.trustRemoteCode }}{{ $args = append $args "--trust-remote-code" }}{{ end }}
{{- if $v.metrics.enabled }}{{ $args = append $args "--enable-metrics" }}{{ end }}

{{- if eq $key "encoder" }}
{{- $args = concat $args (list "--encoder-only" "--encoder-transfer-backend" $v.encoderDiscovery.transferBackend) }}
{{- if $role.prefixMmCache.enabled }}{{ $args = append $args "--enable-prefix-mm-cache" }}{{ end }}
{{- if $role.mmAttentionBackend }}{{ $args = concat $args (list "--mm-attention-backend" $role.mmAttentionBackend) }}{{ end }}
{{- end }}

{{- if eq $key $lang }}
{{- $args = concat $args (list "--language-only"
  "--encoder-bootstrap-port" (toString $v.encoderDiscovery.bootstrapPort)
  "--encoder-transfer-backend" $v.encoderDiscovery.transferBackend) }}
{{- if eq $v.encoderDiscovery.mode "static" }}
{{- /* One URL per encoder pod: the prefill splits images over the URLs it knows, so a load-balanced
       Service would hide encoders from it. */}}
{{- $args = concat $args (list "--encoder-urls") (fromYamlArray (include "sglang-epd.podUrls" (list $root "encoder" $v.encoder.port))) }}
{{- end }}
{{- if and (eq $key "prefill") $role.adaptiveDispatchToEncoder }}{{ $args = append $args "--enable-adaptive-dispatch-to-encoder" }}{{ end }}
{{- end }}

{{- if has $key (list "prefill" "decode") }}
{{- $args = concat $args (list "--disaggregation-mode" $key
  "--disaggregation-transfer-backend" $v.disaggregation.transferBackend
  "--disaggregation-bootstrap-port" (toString $v.disaggregation.bootstrapPort)) }}
{{- end }}

{{- /* Mooncake on either link reads the IB devices from --disaggregation-ib-device. */}}
{{- $mooncakeEmbeddings := and (eq $v.encoderDiscovery.transferBackend "mooncake") (or (eq $key "encoder") (eq $key $lang)) }}
{{- if and $v.rdma.enabled $v.rdma.ibDevices (or (has $key (list "prefill" "decode")) $mooncakeEmbeddings) }}
{{- $args = concat $args (list "--disaggregation-ib-device" $v.rdma.ibDevices) }}
{{- end }}
{{- toYaml $args }}
{{- end }}

{{/* `launch_router` arguments the chart sets. */}}
{{- define "sglang-epd.routerArgs" -}}
{{- $v := .Values }}
{{- $r := $v.router }}
{{- $pd := include "sglang-epd.usesPD" . }}
{{- $args := list "--host" "0.0.0.0" "--port" (toString $r.port) "--policy" $r.policy }}
{{- if $pd }}{{ $args = append $args "--pd-disaggregation" }}{{ end }}
{{- if $r.discovery.enabled }}
{{- /* Workers found by their RBG labels in this namespace only (the Role grants pods there); one port
       for every discovered pod, and each prefill's bootstrap port from its sglang.ai/bootstrap-port
       annotation. */}}
{{- $port := ternary $v.prefill.port $v.server.port (not (empty $pd)) }}
{{- $args = concat $args (list "--service-discovery" "--service-discovery-namespace" .Release.Namespace
  "--service-discovery-port" (toString $port)) }}
{{- $selectors := list (list "--selector" "server") }}
{{- if $pd }}{{ $selectors = list (list "--prefill-selector" "prefill") (list "--decode-selector" "decode") }}{{ end }}
{{- range $selectors }}
{{- $args = append $args (index . 0) }}
{{- range $label, $value := fromYaml (include "sglang-epd.roleSelector" (list $ (index . 1))) }}
{{- $args = append $args (printf "%s=%s" $label $value) }}
{{- end }}
{{- end }}
{{- else if $pd }}
{{- /* One --prefill per prefill pod, with that pod's bootstrap port: the router sends bootstrap_host
       (this URL's host) to decode, so the URL must name one pod, never a Service. */}}
{{- range (fromYamlArray (include "sglang-epd.podUrls" (list $ "prefill" $v.prefill.port))) }}
{{- $args = concat $args (list "--prefill" . (toString $v.disaggregation.bootstrapPort)) }}
{{- end }}
{{- range (fromYamlArray (include "sglang-epd.podUrls" (list $ "decode" $v.decode.port))) }}
{{- $args = concat $args (list "--decode" .) }}
{{- end }}
{{- else }}
{{- $args = concat $args (list "--worker-urls") (fromYamlArray (include "sglang-epd.podUrls" (list $ "server" $v.server.port))) }}
{{- end }}
{{- if $pd }}
{{- if $r.prefillPolicy }}{{ $args = concat $args (list "--prefill-policy" $r.prefillPolicy) }}{{ end }}
{{- if $r.decodePolicy }}{{ $args = concat $args (list "--decode-policy" $r.decodePolicy) }}{{ end }}
{{- end }}
{{- $args = concat $args (list "--retry-max-retries" (toString $r.retries.maxRetries)) }}
{{- if $r.circuitBreaker.enabled }}
{{- $args = concat $args (list "--cb-failure-threshold" (toString $r.circuitBreaker.failureThreshold)
  "--cb-timeout-duration-secs" (toString $r.circuitBreaker.timeoutSeconds)) }}
{{- else }}
{{- $args = append $args "--disable-circuit-breaker" }}
{{- end }}
{{- if $v.metrics.enabled }}
{{- $args = concat $args (list "--prometheus-host" "0.0.0.0" "--prometheus-port" (toString $r.metricsPort)) }}
{{- end }}
{{- toYaml $args }}
{{- end }}

{{/*
encoder-registrar.py arguments after its action (run | stop). Args: $root. It registers the pod with
every language server's EncoderBootstrapServer: the pods by name, or the language role's headless
Service (s-<rbg>-<role>, RBG publishes not-ready addresses) when that role autoscales.
*/}}
{{- define "sglang-epd.registrarArgs" -}}
{{- $v := .Values }}
{{- $lang := include "sglang-epd.languageRoleKey" . }}
{{- $r := $v.encoderDiscovery.registrar }}
{{- $args := list "--port" (toString $v.encoder.port) "--bootstrap-port" (toString $v.encoderDiscovery.bootstrapPort) }}
{{- if (get $v $lang).autoscaling.enabled }}
{{- $args = concat $args (list "--bootstrap-service" (printf "s-%s-%s" (include "sglang-epd.fullname" .) (get $v $lang).name)) }}
{{- else }}
{{- $args = concat $args (list "--bootstrap-urls") (fromYamlArray (include "sglang-epd.podUrls" (list . $lang $v.encoderDiscovery.bootstrapPort))) }}
{{- end }}
{{- $args = concat $args (list "--interval" (toString $r.intervalSeconds) "--drain-seconds" (toString $r.drainSeconds)) }}
{{- toYaml $args }}
{{- end }}
