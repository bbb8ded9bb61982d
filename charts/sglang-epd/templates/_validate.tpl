{{/*
Checks the schema cannot express. Each failure names the value to change and how.
*/}}
{{- define "sglang-epd.validate" -}}
{{- $v := .Values }}
{{- $rbgApi := "workloads.x-k8s.io/v1alpha2/RoleBasedGroup" }}
{{- if and $v.preflight.requireRbgApi (not (.Capabilities.APIVersions.Has $rbgApi)) }}
{{- fail (printf "preflight.requireRbgApi: this cluster does not serve %s. Install the RBG controller first (Helm chart deploy/helm/rbgs of github.com/sgl-project/rbg, namespace rbgs-system; Kubernetes >= 1.28), then retry. For offline `helm template`, pass --api-versions %s or --set preflight.requireRbgApi=false." $rbgApi $rbgApi) }}
{{- end }}

{{- if $v.preflight.requireOptionalApis }}
{{- $needs := dict }}
{{- if and $v.metrics.enabled $v.metrics.podMonitor.enabled }}{{ $_ := set $needs "metrics.podMonitor.enabled" "monitoring.coreos.com/v1/PodMonitor (Prometheus Operator)" }}{{ end }}
{{- if $v.coordinatedPolicy.enabled }}{{ $_ := set $needs "coordinatedPolicy.enabled" "workloads.x-k8s.io/v1alpha2/CoordinatedPolicy (an RBG controller with coordinated policies)" }}{{ end }}
{{- range $key := fromYamlArray (include "sglang-epd.sglangRoleKeys" .) }}
{{- $a := (get $v $key).autoscaling }}
{{- if and $a.enabled (eq $a.engine "keda") }}{{ $_ := set $needs (printf "%s.autoscaling.engine" $key) "keda.sh/v1alpha1/ScaledObject (KEDA)" }}{{ end }}
{{- end }}
{{- range $value, $needed := $needs }}
{{- $api := first (splitList " " $needed) }}
{{- if not ($.Capabilities.APIVersions.Has $api) }}
{{- fail (printf "%s: this cluster does not serve %s. Install it first, or turn the option off. For offline `helm template`, pass --api-versions %s or --set preflight.requireOptionalApis=false." $value $needed $api) }}
{{- end }}
{{- end }}
{{- end }}

{{- $rbg := include "sglang-epd.fullname" . }}
{{- $keys := fromYamlArray (include "sglang-epd.roleKeys" .) }}
{{- $lang := include "sglang-epd.languageRoleKey" . }}
{{- $seen := dict }}
{{- range $key := $keys }}
{{- $role := get $v $key }}
{{- if hasKey $seen $role.name }}
{{- fail (printf "%s.name: %q is also %s.name; RBG role names must be unique." $key $role.name (get $seen $role.name)) }}
{{- end }}
{{- $_ := set $seen $role.name $key }}
{{- /* RBG names the headless Service s-<rbg>-<role> and pod i <rbg>-<role>-<i>; both are DNS labels. */}}
{{- $service := printf "s-%s-%s" $rbg $role.name }}
{{- /* The highest pod index an autoscaler can reach, not the initial count's. */}}
{{- $lastPod := printf "%s-%s-%d" $rbg $role.name (max 0 (sub (int (include "sglang-epd.maxPods" (list $ $key))) 1)) }}
{{- range $dnsLabel := list $service $lastPod }}
{{- if gt (len $dnsLabel) 63 }}
{{- fail (printf "%s.name / fullnameOverride: the RBG-generated name %q is %d characters, over the 63 allowed for a DNS label. Shorten %s.name, fullnameOverride or the release name." $key $dnsLabel (len $dnsLabel) $key) }}
{{- end }}
{{- end }}
{{- if and (ne $key "encoder") (lt (int $role.replicas) 1) }}
{{- fail (printf "%s.replicas: the router is configured with one URL per %s pod and needs at least one; got %v." $key $key $role.replicas) }}
{{- end }}
{{- end }}

{{- range $key := fromYamlArray (include "sglang-epd.sglangRoleKeys" .) }}
{{- $role := get $v $key }}
{{- $a := $role.autoscaling }}
{{- if $a.enabled }}
{{- if and (eq $key "encoder") (eq $v.encoderDiscovery.mode "static") }}
{{- fail "encoder.autoscaling.enabled: autoscaled encoders must register themselves with the language servers; set encoderDiscovery.mode=dynamic (static discovery fixes the encoder list in the prefill's arguments at install)." }}
{{- end }}
{{- if and (eq $key $lang) (eq $v.encoderDiscovery.mode "static") }}
{{- fail (printf "%s.autoscaling.enabled: with encoderDiscovery.mode=static the %s role depends on the encoder role (it is given every encoder URL at start), and RBG reconciles a role only while its dependencies are all Ready, so the autoscaler's changes would wait whenever an encoder is not Ready. Set encoderDiscovery.mode=dynamic." $key $key) }}
{{- end }}
{{- if and (ne $key "encoder") (not $v.router.discovery.enabled) }}
{{- fail (printf "%s.autoscaling.enabled: the router only knows the %s pods listed at install; set router.discovery.enabled=true so that it finds the pods the autoscaler adds." $key $key) }}
{{- end }}
{{- if gt (int $a.minReplicas) (int $a.maxReplicas) }}
{{- fail (printf "%s.autoscaling.minReplicas (%v) is above maxReplicas (%v)." $key $a.minReplicas $a.maxReplicas) }}
{{- end }}
{{- if or (lt (int $role.replicas) (int $a.minReplicas)) (gt (int $role.replicas) (int $a.maxReplicas)) }}
{{- fail (printf "%s.replicas (%v) is the initial count of an autoscaled role and must lie within %s.autoscaling.minReplicas..maxReplicas (%v..%v)." $key $role.replicas $key $a.minReplicas $a.maxReplicas) }}
{{- end }}
{{- if eq $a.engine "hpa" }}
{{- if lt (int $a.minReplicas) 1 }}
{{- fail (printf "%s.autoscaling.minReplicas: a HorizontalPodAutoscaler needs at least 1 (scale to zero needs engine keda)." $key) }}
{{- end }}
{{- if not $a.metrics }}
{{- fail (printf "%s.autoscaling.metrics: engine hpa needs at least one autoscaling/v2 metric, e.g. [{type: Pods, pods: {metric: {name: sglang_encoder_queue_wait_seconds_avg}, target: {type: AverageValue, averageValue: 200m}}}] (see the chart README, Autoscaling)." $key) }}
{{- end }}
{{- else if not $a.keda.triggers }}
{{- fail (printf "%s.autoscaling.keda.triggers: engine keda needs at least one trigger, e.g. a prometheus trigger on encoder queue time (see the chart README, Autoscaling)." $key) }}
{{- end }}
{{- end }}
{{- end }}

{{- if and $v.router.discovery.enabled (include "sglang-epd.usesPD" .) (ne (int $v.prefill.port) (int $v.decode.port)) }}
{{- fail (printf "router.discovery.enabled: the router reaches every discovered pod on one port (--service-discovery-port), but prefill.port is %v and decode.port is %v; set them equal." $v.prefill.port $v.decode.port) }}
{{- end }}
{{- $gang := $v.scheduling.gangScheduling }}
{{- if $gang.enabled }}
{{- if not $gang.schedulerName }}
{{- fail "scheduling.gangScheduling.schedulerName: RBG puts the pods in a PodGroup but sets no schedulerName, so the default scheduler would ignore the gang. Name the scheduler that runs coscheduling: scheduler-plugins-scheduler (scheduler-plugins as a second scheduler), volcano, or default-scheduler when scheduler-plugins replaced the default one." }}
{{- end }}
{{- $waits := list }}
{{- range $key := $keys }}
{{- with fromYamlArray (include "sglang-epd.dependencies" (list $ $key)) }}
{{- $waits = append $waits (printf "%s waits for %s" (get $v $key).name (join ", " .)) }}
{{- end }}
{{- end }}
{{- if $waits }}
{{- fail (printf "scheduling.gangScheduling.enabled: the PodGroup's minMember counts every pod of every role, but RBG creates a role only once its dependencies are Ready (%s), so the gang never fills and nothing is scheduled. Remove the dependencies: router.discovery.enabled=true (the router then waits for no role) and encoderDiscovery.mode=dynamic; or turn gang scheduling off." (join "; " $waits)) }}
{{- end }}
{{- end }}
{{- if and (eq $v.scheduling.exclusiveTopology "kubernetes.io/hostname") $v.rdma.enabled $v.rdma.hostNetwork }}
{{- range $key := fromYamlArray (include "sglang-epd.sglangRoleKeys" .) }}
{{- $pods := int (include "sglang-epd.maxPods" (list $ $key)) }}
{{- if gt $pods 1 }}
{{- fail (printf "scheduling.exclusiveTopology: kubernetes.io/hostname puts the whole group on one node, and with rdma.hostNetwork the %s pods (up to %d) would all listen on port %v of that node; only one can start. Use a wider topology key, rdma.hostNetwork=false, or one %s pod." $key $pods (get $v $key).port $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and $lang (eq $v.encoderDiscovery.mode "dynamic") (le (int $v.encoder.terminationGracePeriodSeconds) (int $v.encoderDiscovery.registrar.drainSeconds)) }}
{{- fail (printf "encoder.terminationGracePeriodSeconds (%v) must exceed encoderDiscovery.registrar.drainSeconds (%v): the preStop hook unregisters the encoder and drains inside the grace period, then SGLang needs time to stop." $v.encoder.terminationGracePeriodSeconds $v.encoderDiscovery.registrar.drainSeconds) }}
{{- end }}
{{- if and $v.coordinatedPolicy.enabled (not (include "sglang-epd.usesPD" .)) }}
{{- fail (printf "coordinatedPolicy.enabled: it coordinates prefill and decode, which mode %s does not have; use it with mode epd or pd." $v.mode) }}
{{- end }}
{{- if and $v.metrics.podMonitor.enabled (not $v.metrics.enabled) }}
{{- fail "metrics.podMonitor.enabled: the pods serve no metrics; set metrics.enabled=true too." }}
{{- end }}
{{- if and $v.metrics.grafanaDashboard.enabled (not $v.metrics.enabled) }}
{{- fail "metrics.grafanaDashboard.enabled: the pods serve no metrics; set metrics.enabled=true too." }}
{{- end }}

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
{{- $np := $v.networkPolicy }}
{{- range $name := list "ephemeralPorts" "mooncakePorts" }}
{{- $r := get $np $name }}
{{- if gt (int $r.start) (int $r.end) }}
{{- fail (printf "networkPolicy.%s: start %v is above end %v; give the range as {start: <low>, end: <high>}." $name $r.start $r.end) }}
{{- end }}
{{- end }}
{{- $e := $np.ephemeralPorts }}
{{- $mc := $np.mooncakePorts }}
{{- if and (le (int $mc.start) (int $e.end)) (ge (int $mc.end) (int $e.start)) }}
{{- fail (printf "networkPolicy.mooncakePorts (%v-%v) overlaps networkPolicy.ephemeralPorts (%v-%v): Mooncake's listeners would collide with SGLang's random ZMQ ports; move one range." $mc.start $mc.end $e.start $e.end) }}
{{- end }}
{{- end }}