{{/*
Pod templates of the RBG roles (standalonePattern: one pod per replica).
*/}}

{{/* Pod metadata shared by every role. Args: (list $root $roleKey). */}}
{{- define "sglang-epd.podMetadata" -}}
{{- $root := index . 0 }}
{{- $key := index . 1 }}
{{- $role := get $root.Values $key }}
metadata:
  labels:
    {{- include "sglang-epd.selectorLabels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ include "sglang-epd.component" $key }}
    {{- with $role.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- $annotations := deepCopy ($role.podAnnotations | default dict) }}
  {{- if and (eq $key "prefill") $root.Values.router.discovery.enabled }}
  {{- /* The discovering router reads each prefill's bootstrap port from this annotation. */}}
  {{- $_ := set $annotations "sglang.ai/bootstrap-port" (toString $root.Values.disaggregation.bootstrapPort) }}
  {{- end }}
  {{- $annotations = merge $annotations (include "sglang-epd.checkovSkips" (list $root $key) | fromYaml) }}
  {{- with $annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* Scheduling fields shared by every role. Args: (list $root $roleValues). */}}
{{- define "sglang-epd.podScheduling" -}}
{{- $root := index . 0 }}
{{- $role := index . 1 }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $role.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $role.runtimeClassName }}
runtimeClassName: {{ . }}
{{- end }}
{{- with $role.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $role.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $role.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $gang := $root.Values.scheduling.gangScheduling }}
{{- if $gang.enabled }}
# RBG sets no schedulerName; the gang's PodGroup only means something to the scheduler named here.
schedulerName: {{ $gang.schedulerName }}
{{- end }}
terminationGracePeriodSeconds: {{ $role.terminationGracePeriodSeconds }}
enableServiceLinks: false
{{- $security := deepCopy $root.Values.security.podSecurityContext }}
{{- $np := $root.Values.networkPolicy }}
{{- if and $np.enabled (not (and $root.Values.rdma.enabled $root.Values.rdma.hostNetwork)) }}
{{- /* Pins the range SGLang's random ZMQ ports come from to the one the NetworkPolicies admit. */}}
{{- $range := dict "name" "net.ipv4.ip_local_port_range" "value" (printf "%d %d" (int $np.ephemeralPorts.start) (int $np.ephemeralPorts.end)) }}
{{- $_ := set $security "sysctls" (append ($security.sysctls | default list) $range) }}
{{- end }}
{{- with $security }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Where SGLang writes (security.readOnlyRootFilesystem): the environment that points its caches there. */}}
{{- define "sglang-epd.scratchEnv" -}}
# SGLang's caches (SGLANG_CACHE_DIR, Triton, TorchInductor, FlashInfer, DeepGEMM) and huggingface_hub's live
# under $HOME (sglang/srt/environ.py redirect_third_party_caches); the image's own HOME is not writable.
- name: HOME
  value: {{ include "sglang-epd.scratchHome" . }}
{{- end }}

{{- define "sglang-epd.scratchHome" -}}
/home/sglang
{{- end }}

{{- define "sglang-epd.scratchMounts" -}}
- name: tmp
  mountPath: /tmp
- name: home
  mountPath: {{ include "sglang-epd.scratchHome" . }}
{{- end }}

{{- define "sglang-epd.scratchVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.security.scratchSizeLimit }}
- name: home
  emptyDir:
    sizeLimit: {{ .Values.security.scratchSizeLimit }}
{{- end }}

{{/*
Container resources of a SGLang role: CPU/memory from values, GPUs = tpSize (a GPU entry in resources
must agree), RDMA devices when rdma.enabled. Args: (list $root $roleKey).
*/}}
{{- define "sglang-epd.sglangResources" -}}
{{- $root := index . 0 }}
{{- $key := index . 1 }}
{{- $role := get $root.Values $key }}
{{- $gpu := $root.Values.gpuResourceName }}
{{- $res := deepCopy ($role.resources | default dict) }}
{{- $limits := $res.limits | default dict }}
{{- range $kind := list "requests" "limits" }}
{{- $given := get (get $res $kind | default dict) $gpu }}
{{- if and $given (ne (int (toString $given)) (int $role.tpSize)) }}
{{- fail (printf "%s.resources.%s.%s is %v but %s.tpSize is %v: every tensor-parallel rank needs one GPU. Set tpSize (the chart derives the GPU count from it) and drop the GPU entry from resources." $key $kind $gpu $given $key $role.tpSize) }}
{{- end }}
{{- end }}
{{- $_ := set $limits $gpu (int $role.tpSize) }}
{{- if $root.Values.rdma.enabled }}
{{- $limits = merge $limits $root.Values.rdma.resources }}
{{- end }}
{{- $_ := set $res "limits" $limits }}
{{- toYaml $res }}
{{- end }}

{{/* Probes of a SGLang container (see values.yaml `probes` for why they are slow). */}}
{{- define "sglang-epd.sglangProbes" -}}
{{- $p := .Values.probes }}
{{- range $probe := list (list "startupProbe" $p.startup) (list "readinessProbe" $p.readiness) (list "livenessProbe" $p.liveness) }}
{{ index $probe 0 }}:
  httpGet:
    path: /health
    port: http
  periodSeconds: {{ (index $probe 1).periodSeconds }}
  timeoutSeconds: {{ (index $probe 1).timeoutSeconds }}
  failureThreshold: {{ (index $probe 1).failureThreshold }}
{{- end }}
{{- end }}

{{/* The model volume and, for huggingface, the init container that fills it. */}}
{{- define "sglang-epd.modelVolume" -}}
{{- $m := .Values.model }}
- name: model
{{- if eq $m.source "pvc" }}
  persistentVolumeClaim:
    claimName: {{ $m.pvc.claimName }}
    readOnly: {{ $m.pvc.readOnly }}
{{- else if eq $m.source "hostPath" }}
  hostPath:
    path: {{ $m.hostPath.path }}
    type: {{ $m.hostPath.type }}
{{- else if $m.huggingface.cache.claimName }}
  persistentVolumeClaim:
    claimName: {{ $m.huggingface.cache.claimName }}
{{- else }}
  emptyDir:
    sizeLimit: {{ $m.huggingface.cache.sizeLimit }}
{{- end }}
{{- end }}

{{- define "sglang-epd.modelDownloadContainer" -}}
{{- $root := index . 0 }}
{{- $role := index . 1 }}
{{- $m := $root.Values.model }}
- name: model-download
  image: {{ include "sglang-epd.image" (list $root $role) }}
  imagePullPolicy: {{ include "sglang-epd.imagePullPolicy" (list $root $role) }}
  command:
    - python3
    - -c
    - |
      import os
      from huggingface_hub import snapshot_download
      snapshot_download(repo_id=os.environ["MODEL_ID"], revision=os.environ.get("MODEL_REVISION") or None,
                        local_dir=os.environ["MODEL_DIR"])
  env:
    - name: MODEL_ID
      value: {{ $m.id | quote }}
    - name: MODEL_REVISION
      value: {{ $m.huggingface.revision | quote }}
    - name: MODEL_DIR
      value: {{ include "sglang-epd.modelPath" $root | quote }}
    {{- include "sglang-epd.scratchEnv" $root | nindent 4 }}
    {{- if $m.huggingface.tokenSecret.name }}
    # The token as a file, not in the environment (huggingface_hub reads HF_TOKEN_PATH; checkov CKV_K8S_35).
    - name: HF_TOKEN_PATH
      value: {{ include "sglang-epd.hfTokenDir" $root }}/token
    {{- end }}
  {{- with $m.huggingface.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- include "sglang-epd.containerSecurityContext" (list $root false) | trim | nindent 4 }}
  volumeMounts:
    - name: model
      mountPath: {{ $m.mountPath }}
    {{- include "sglang-epd.scratchMounts" $root | nindent 4 }}
    {{- if $m.huggingface.tokenSecret.name }}
    - name: hf-token
      mountPath: {{ include "sglang-epd.hfTokenDir" $root }}
      readOnly: true
    {{- end }}
{{- end }}

{{- define "sglang-epd.hfTokenDir" -}}
/var/run/secrets/huggingface
{{- end }}

{{/* Pod template of a SGLang role (encoder, prefill, decode, server). Args: (list $root $roleKey). */}}
{{- define "sglang-epd.sglangPodTemplate" -}}
{{- $root := index . 0 }}
{{- $key := index . 1 }}
{{- $v := $root.Values }}
{{- $role := get $v $key }}
{{- $args := fromYamlArray (include "sglang-epd.sglangArgs" (list $root $key)) }}
{{- $registrar := and (eq $key "encoder") (eq $v.encoderDiscovery.mode "dynamic") }}
{{- $registrarArgs := list }}
{{- if $registrar }}{{ $registrarArgs = fromYamlArray (include "sglang-epd.registrarArgs" $root) }}{{ end }}
{{- $w := $v.encoderDiscovery.watcher }}
{{- $watcher := and (eq $key (include "sglang-epd.languageRoleKey" $root)) (eq $v.encoderDiscovery.mode "dynamic") $w.enabled }}
{{- $script := or $registrar $watcher }}
{{- include "sglang-epd.checkExtraArgs" (list (printf "%s.extraArgs" $key) $args $role.extraArgs) }}
{{- include "sglang-epd.checkExtraEnv" (list (printf "%s.extraEnv" $key) $role.extraEnv) }}
{{- include "sglang-epd.podMetadata" (list $root $key) | trim }}
spec:
  {{- include "sglang-epd.podScheduling" (list $root $role) | trim | nindent 2 }}
  # SGLang never calls the Kubernetes API.
  automountServiceAccountToken: false
  {{- if and $v.rdma.enabled $v.rdma.hostNetwork }}
  hostNetwork: true
  # Keeps cluster DNS (pod and Service names) resolvable from the host network namespace.
  dnsPolicy: ClusterFirstWithHostNet
  {{- end }}
  {{- if eq $v.model.source "huggingface" }}
  initContainers:
    {{- include "sglang-epd.modelDownloadContainer" (list $root $role) | trim | nindent 4 }}
  {{- end }}
  containers:
    - name: sglang
      image: {{ include "sglang-epd.image" (list $root $role) }}
      imagePullPolicy: {{ include "sglang-epd.imagePullPolicy" (list $root $role) }}
      command:
        - python3
        - -m
        - sglang.launch_server
      args:
        {{- concat $args $role.extraArgs | toYaml | nindent 8 }}
      env:
        # ZMQ sockets and encoder self-registration advertise this address.
        - name: SGLANG_HOST_IP
          valueFrom:
            fieldRef:
              fieldPath: status.podIP
        {{- include "sglang-epd.scratchEnv" $root | nindent 8 }}
        {{- if and $v.networkPolicy.enabled (include "sglang-epd.usesMooncake" (list $root $key)) }}
        # Mooncake's transfer engine picks its ports in this range (networkPolicy.mooncakePorts).
        - name: MC_MIN_RPC_PORT
          value: {{ $v.networkPolicy.mooncakePorts.start | quote }}
        - name: MC_MAX_RPC_PORT
          value: {{ $v.networkPolicy.mooncakePorts.end | quote }}
        {{- end }}
        {{- if eq $key (include "sglang-epd.languageRoleKey" $root) }}
        {{- with $v.encoderDiscovery.healthCheck }}
        # The EncoderBootstrapServer's checks of every encoder (encoderDiscovery.healthCheck).
        - name: SGLANG_ENCODER_BOOTSTRAP_HEALTH_CHECK_INTERVAL
          value: {{ .intervalSeconds | quote }}
        - name: SGLANG_ENCODER_BOOTSTRAP_HEALTH_CHECK_TIMEOUT
          value: {{ .timeoutSeconds | quote }}
        - name: SGLANG_ENCODER_BOOTSTRAP_EVICTED_TTL
          value: {{ .evictedTtlSeconds | quote }}
        {{- end }}
        {{- end }}
        {{- if and (eq $key "encoder") $role.prefixMmCache.enabled $role.prefixMmCache.sizeMb }}
        - name: SGLANG_VLM_CACHE_SIZE_MB
          value: {{ $role.prefixMmCache.sizeMb | quote }}
        {{- end }}
        {{- with $role.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: http
          containerPort: {{ $role.port }}
        {{- if eq $key (include "sglang-epd.languageRoleKey" $root) }}
        - name: encoder-boot
          containerPort: {{ $v.encoderDiscovery.bootstrapPort }}
        {{- end }}
        {{- if eq $key "prefill" }}
        - name: pd-bootstrap
          containerPort: {{ $v.disaggregation.bootstrapPort }}
        {{- end }}
      {{- include "sglang-epd.sglangProbes" $root | trim | nindent 6 }}
      {{- if $registrar }}
      lifecycle:
        # Unregister from every language server and drain before the kubelet sends SGLang SIGTERM.
        preStop:
          exec:
            command:
              {{- concat (list "python3" (include "sglang-epd.registrarScript" $root) "stop") $registrarArgs | toYaml | nindent 14 }}
      {{- end }}
      resources:
        {{- include "sglang-epd.sglangResources" (list $root $key) | trim | nindent 8 }}
      securityContext:
        {{- include "sglang-epd.containerSecurityContext" (list $root true) | trim | nindent 8 }}
      volumeMounts:
        - name: model
          mountPath: {{ $v.model.mountPath }}
          # SGLang only reads the weights (a huggingface emptyDir is the init container's to write).
          readOnly: {{ ternary $v.model.pvc.readOnly true (eq $v.model.source "pvc") }}
        - name: dshm
          mountPath: /dev/shm
        {{- include "sglang-epd.scratchMounts" $root | nindent 8 }}
        {{- if $registrar }}
        - name: encoder-registrar
          mountPath: {{ dir (include "sglang-epd.registrarScript" $root) }}
          readOnly: true
        {{- end }}
    {{- if $watcher }}
    # Unregisters, within a second, an encoder that no longer accepts connections: a request sent to a dead
    # encoder that is still listed ends SGLang's language server (chart README, "Encoder lifecycle").
    - name: encoder-watcher
      image: {{ include "sglang-epd.image" (list $root $role) }}
      imagePullPolicy: {{ include "sglang-epd.imagePullPolicy" (list $root $role) }}
      command:
        - python3
        - {{ include "sglang-epd.registrarScript" $root }}
        - watch
        - --bootstrap-port
        - {{ $v.encoderDiscovery.bootstrapPort | quote }}
        - --interval
        - {{ $w.intervalSeconds | quote }}
        - --connect-timeout
        - {{ $w.connectTimeoutSeconds | quote }}
      env:
        # The language server's bootstrap server listens on the pod IP.
        - name: SGLANG_HOST_IP
          valueFrom:
            fieldRef:
              fieldPath: status.podIP
      {{- with $w.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- include "sglang-epd.containerSecurityContext" (list $root false) | trim | nindent 8 }}
      volumeMounts:
        - name: encoder-registrar
          mountPath: {{ dir (include "sglang-epd.registrarScript" $root) }}
          readOnly: true
    {{- end }}
    {{- if $registrar }}
    - name: registrar
      image: {{ include "sglang-epd.image" (list $root $role) }}
      imagePullPolicy: {{ include "sglang-epd.imagePullPolicy" (list $root $role) }}
      command:
        {{- concat (list "python3" (include "sglang-epd.registrarScript" $root) "run") $registrarArgs | toYaml | nindent 8 }}
      env:
        # The address SGLang itself would register: the pod IP.
        - name: SGLANG_HOST_IP
          valueFrom:
            fieldRef:
              fieldPath: status.podIP
      {{- with $v.encoderDiscovery.registrar.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- include "sglang-epd.containerSecurityContext" (list $root false) | trim | nindent 8 }}
      volumeMounts:
        - name: encoder-registrar
          mountPath: {{ dir (include "sglang-epd.registrarScript" $root) }}
          readOnly: true
    {{- end }}
  volumes:
    {{- include "sglang-epd.modelVolume" $root | trim | nindent 4 }}
    - name: dshm
      emptyDir:
        medium: Memory
        sizeLimit: {{ $v.shmSize }}
    {{- include "sglang-epd.scratchVolumes" $root | nindent 4 }}
    {{- if and (eq $v.model.source "huggingface") $v.model.huggingface.tokenSecret.name }}
    - name: hf-token
      secret:
        secretName: {{ $v.model.huggingface.tokenSecret.name }}
        items:
          - key: {{ $v.model.huggingface.tokenSecret.key }}
            path: token
    {{- end }}
    {{- if $script }}
    - name: encoder-registrar
      configMap:
        name: {{ include "sglang-epd.fullname" $root }}-encoder-registrar
    {{- end }}
{{- end }}

{{/* Where the encoder pods mount files/encoder-registrar.py (from its ConfigMap). */}}
{{- define "sglang-epd.registrarScript" -}}
/opt/sglang-epd/encoder-registrar.py
{{- end }}

{{/* Pod template of the router role. */}}
{{- define "sglang-epd.routerPodTemplate" -}}
{{- $r := .Values.router }}
{{- $args := fromYamlArray (include "sglang-epd.routerArgs" .) }}
{{- include "sglang-epd.checkExtraArgs" (list "router.extraArgs" $args $r.extraArgs) }}
{{- include "sglang-epd.checkExtraEnv" (list "router.extraEnv" $r.extraEnv) }}
{{- include "sglang-epd.podMetadata" (list . "router") | trim }}
spec:
  {{- include "sglang-epd.podScheduling" (list . $r) | trim | nindent 2 }}
  {{- if $r.discovery.enabled }}
  # --service-discovery watches pods through the API with this account's Role.
  serviceAccountName: {{ include "sglang-epd.fullname" . }}-router
  automountServiceAccountToken: true
  {{- else }}
  automountServiceAccountToken: false
  {{- end }}
  containers:
    - name: router
      image: {{ include "sglang-epd.image" (list . $r) }}
      imagePullPolicy: {{ include "sglang-epd.imagePullPolicy" (list . $r) }}
      command:
        - python3
        - -m
        - sglang_router.launch_router
      args:
        {{- concat $args $r.extraArgs | toYaml | nindent 8 }}
      {{- with $r.extraEnv }}
      env:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      ports:
        - name: http
          containerPort: {{ $r.port }}
        {{- if .Values.metrics.enabled }}
        - name: metrics
          containerPort: {{ $r.metricsPort }}
        {{- end }}
      # /readiness stays 503 until the router's workers pass their health checks; /health is liveness.
      readinessProbe:
        httpGet:
          path: /readiness
          port: http
        periodSeconds: 5
        timeoutSeconds: 5
        failureThreshold: 3
      livenessProbe:
        httpGet:
          path: /health
          port: http
        periodSeconds: 10
        timeoutSeconds: 5
        failureThreshold: 6
      {{- with $r.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- include "sglang-epd.containerSecurityContext" (list . false) | trim | nindent 8 }}
{{- end }}