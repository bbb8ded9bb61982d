"""Bad values fail at render time (schema or template checks) with a message that names the value."""

from __future__ import annotations

import re

import pytest

from sglang_epd.render import RBG_API, RenderError, render

LONG = "a" * 52
AUTOSCALE_HPA = {
    "enabled": True,
    "metrics": [
        {
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
        }
    ],
}

# (values, dotted paths the message must name, other words it must contain)
BAD_VALUES: dict[str, tuple[dict[str, object], list[str], list[str]]] = {
    "negative-replicas": ({"encoder.replicas": -1}, ["encoder.replicas"], []),
    "unknown-mode": ({"mode": "epdx"}, ["mode"], []),
    "unknown-pd-backend": ({"disaggregation.transferBackend": "tcp"}, ["disaggregation.transferBackend"], []),
    "unknown-encoder-backend": (
        {"encoderDiscovery.transferBackend": "grpc"},
        ["encoderDiscovery.transferBackend"],
        [],
    ),
    "unknown-discovery": ({"encoderDiscovery.mode": "dns"}, ["encoderDiscovery.mode"], []),
    "gpus-not-tp-size": (
        {"prefill.tpSize": 2, "prefill.resources": {"limits": {"nvidia.com/gpu": 1}}},
        ["prefill.resources.limits.nvidia.com/gpu", "prefill.tpSize"],
        [],
    ),
    "ephemeral-range-reversed": (
        {"networkPolicy.ephemeralPorts": {"start": 60999, "end": 32768}},
        ["networkPolicy.ephemeralPorts"],
        [],
    ),
    "mooncake-range-overlaps-ephemeral": (
        {"networkPolicy.mooncakePorts": {"start": 30000, "end": 40000}},
        ["networkPolicy.mooncakePorts", "networkPolicy.ephemeralPorts"],
        [],
    ),
    "image-digest-not-sha256": ({"image.digest": "latest"}, ["image.digest"], []),
    "mooncake-pd-without-rdma": (
        {"disaggregation.transferBackend": "mooncake"},
        ["disaggregation.transferBackend"],
        ["rdma.enabled"],
    ),
    "mooncake-encoder-without-rdma": (
        {"encoderDiscovery.transferBackend": "mooncake"},
        ["encoderDiscovery.transferBackend"],
        ["rdma.enabled"],
    ),
    "rdma-without-devices": (
        {"rdma.enabled": True, "rdma.resources": {"rdma/hca": None}},
        ["rdma.resources"],
        [],
    ),
    "dns-label-over-63": ({"fullnameOverride": LONG}, ["fullnameOverride"], ["63"]),
    "role-name-over-63": ({"encoder.name": "e" * 64}, ["encoder.name"], []),
    "role-name-not-dns": ({"encoder.name": "Vision_Encoder"}, ["encoder.name"], []),
    "duplicate-role-names": ({"decode.name": "vlm-prefill"}, ["decode.name"], ["unique"]),
    "plain-text-hf-token": ({"model.huggingface.token": "hf_abc"}, ["model.huggingface"], ["token"]),
    "plain-text-hf-token-top": ({"model.hfToken": "hf_abc"}, ["model"], ["hfToken"]),
    "extra-arg-duplicates-chart-flag": (
        {"encoder.extraArgs": ["--port", "1"]},
        ["encoder.extraArgs"],
        ["--port"],
    ),
    "extra-arg-duplicates-with-equals": (
        {"router.extraArgs": ["--policy=random"]},
        ["router.extraArgs"],
        ["--policy"],
    ),
    "extra-arg-two-tokens": ({"prefill.extraArgs": ["--mem-fraction-static 0.8"]}, ["prefill.extraArgs"], []),
    "no-prefill": ({"prefill.replicas": 0}, ["prefill.replicas"], []),
    "static-without-encoders": (
        {"encoderDiscovery.mode": "static", "encoder.replicas": 0},
        ["encoder.replicas"],
        ["dynamic"],
    ),
    "port-clash-bootstrap": ({"prefill.port": 8998}, ["prefill.port", "disaggregation.bootstrapPort"], []),
    "pvc-without-claim": ({"model.source": "pvc"}, ["model.pvc.claimName"], []),
    "hostpath-without-path": ({"model.source": "hostPath"}, ["model.hostPath.path"], []),
    "unknown-router-policy": ({"router.policy": "fastest"}, ["router.policy"], []),
    "metrics-port-clash": ({"router.metricsPort": 8000}, ["router.metricsPort"], []),
    "unknown-top-level-key": ({"replicaCount": 3}, [], ["replicaCount"]),
    "ingress-without-hosts": ({"router.ingress.enabled": True}, ["router.ingress.hosts"], []),
    "tp-size-zero": ({"decode.tpSize": 0}, ["decode.tpSize"], []),
    # sglang-router refuses 0 only when it starts, long after `helm install` succeeded.
    "router-zero-retries": ({"router.retries.maxRetries": 0}, ["router.retries.maxRetries"], []),
    "plain-text-secret-in-env": (
        {"prefill.extraEnv": [{"name": "HF_TOKEN", "value": "hf_abc"}]},
        ["prefill.extraEnv"],
        ["HF_TOKEN", "secretKeyRef"],
    ),
    # Operations: autoscaling, discovery, monitoring, policies.
    "autoscaled-static-encoders": (
        {"encoder.autoscaling": AUTOSCALE_HPA, "encoderDiscovery.mode": "static"},
        ["encoder.autoscaling.enabled", "encoderDiscovery.mode"],
        ["dynamic"],
    ),
    "autoscaled-prefill-static-router": (
        {"prefill.autoscaling": AUTOSCALE_HPA},
        ["prefill.autoscaling.enabled", "router.discovery.enabled"],
        [],
    ),
    "hpa-without-metrics": (
        {"encoder.autoscaling": {**AUTOSCALE_HPA, "metrics": []}},
        ["encoder.autoscaling.metrics"],
        ["autoscaling/v2"],
    ),
    "hpa-min-zero": (
        {"encoder.autoscaling": {**AUTOSCALE_HPA, "minReplicas": 0}, "encoder.replicas": 1},
        ["encoder.autoscaling.minReplicas"],
        ["keda"],
    ),
    "keda-without-triggers": (
        {"encoder.autoscaling": {**AUTOSCALE_HPA, "engine": "keda"}},
        ["encoder.autoscaling.keda.triggers"],
        [],
    ),
    "autoscale-min-above-max": (
        {"encoder.autoscaling": {**AUTOSCALE_HPA, "minReplicas": 5, "maxReplicas": 3}},
        ["encoder.autoscaling.minReplicas"],
        [],
    ),
    "replicas-outside-autoscale-range": (
        {"encoder.autoscaling": {**AUTOSCALE_HPA, "maxReplicas": 1}},
        ["encoder.replicas", "encoder.autoscaling.minReplicas"],
        [],
    ),
    "unknown-autoscale-engine": (
        {"encoder.autoscaling": {**AUTOSCALE_HPA, "engine": "vpa"}},
        ["encoder.autoscaling.engine"],
        [],
    ),
    "discovery-ports-differ": (
        {"router.discovery.enabled": True},
        ["router.discovery.enabled", "prefill.port", "decode.port"],
        ["--service-discovery-port"],
    ),
    "coordinated-policy-without-pd": (
        {"coordinatedPolicy.enabled": True, "mode": "collocated"},
        ["coordinatedPolicy.enabled"],
        ["epd"],
    ),
    "podmonitor-without-metrics": (
        {"metrics.podMonitor.enabled": True, "metrics.enabled": False},
        ["metrics.podMonitor.enabled", "metrics.enabled"],
        [],
    ),
    "pdb-bad-max-unavailable": (
        {"podDisruptionBudget.maxUnavailable": "one"},
        ["podDisruptionBudget.maxUnavailable"],
        [],
    ),
    "network-policy-unknown-key": ({"networkPolicy.allowAll": True}, ["networkPolicy"], ["allowAll"]),
    # RBG semantics (docs/rbg-rules.md)
    "gang-without-scheduler-name": (
        {"scheduling.gangScheduling.enabled": True},
        ["scheduling.gangScheduling.schedulerName"],
        ["sets no schedulerName"],
    ),
    "gang-with-dependencies": (
        {"scheduling.gangScheduling.enabled": True, "scheduling.gangScheduling.schedulerName": "volcano"},
        ["scheduling.gangScheduling.enabled", "router.discovery.enabled"],
        ["minMember", "sglang-router waits for vlm-prefill, vlm-decode"],
    ),
    "gang-with-static-encoders": (
        {
            "scheduling.gangScheduling.enabled": True,
            "scheduling.gangScheduling.schedulerName": "volcano",
            "router.discovery.enabled": True,
            "decode.port": 30000,
            "encoderDiscovery.mode": "static",
        },
        ["scheduling.gangScheduling.enabled", "encoderDiscovery.mode"],
        ["vlm-prefill waits for vlm-encoder"],
    ),
    "exclusive-node-with-host-network-replicas": (
        {
            "scheduling.exclusiveTopology": "kubernetes.io/hostname",
            "rdma.enabled": True,
            "rdma.hostNetwork": True,
            "encoder.replicas": 2,
        },
        ["scheduling.exclusiveTopology", "rdma.hostNetwork"],
        ["encoder pods (up to 2)", "port 30002"],
    ),
    "exclusive-node-with-host-network-autoscaling": (
        {
            "scheduling.exclusiveTopology": "kubernetes.io/hostname",
            "rdma.enabled": True,
            "rdma.hostNetwork": True,
            "encoder.replicas": 1,
            "prefill.autoscaling": {**AUTOSCALE_HPA, "minReplicas": 1, "maxReplicas": 3},
            "router.discovery.enabled": True,
            "decode.port": 30000,
        },
        ["scheduling.exclusiveTopology"],
        ["prefill pods (up to 3)"],
    ),
    "autoscaled-prefill-with-static-encoders": (
        {
            "encoderDiscovery.mode": "static",
            "prefill.autoscaling": AUTOSCALE_HPA,
            "router.discovery.enabled": True,
            "decode.port": 30000,
        },
        ["prefill.autoscaling.enabled", "encoderDiscovery.mode"],
        ["depends on the encoder role"],
    ),
    "grace-period-shorter-than-drain": (
        {"encoder.terminationGracePeriodSeconds": 10, "encoderDiscovery.registrar.drainSeconds": 15},
        ["encoder.terminationGracePeriodSeconds", "encoderDiscovery.registrar.drainSeconds"],
        [],
    ),
    "pod-name-too-long-at-max-replicas": (
        # vlm-encoder-9 fits in 63 characters, vlm-encoder-10 (the autoscaler's 11th pod) does not.
        {"fullnameOverride": "a" * 49, "encoder.autoscaling": {**AUTOSCALE_HPA, "maxReplicas": 11}},
        ["encoder.name", "fullnameOverride"],
        ["-vlm-encoder-10", "64 characters"],
    ),
}


def _path_forms(dotted: str) -> list[str]:
    """Helm 3 writes schema paths as `a.b.c`, Helm 4 as `/a/b/c`; template checks use `a.b.c`."""
    return [dotted, "/" + dotted.replace(".", "/")]


def assert_names(message: str, paths: list[str], words: list[str]) -> None:
    for path in paths:
        assert any(form in message for form in _path_forms(path)), f"{path!r} not named in: {message}"
    for word in words:
        assert re.search(re.escape(word), message), f"{word!r} not in: {message}"


@pytest.mark.parametrize("case", list(BAD_VALUES), ids=list(BAD_VALUES))
def test_bad_values_fail_naming_the_value(any_helm, case: str) -> None:
    values, paths, words = BAD_VALUES[case]
    with pytest.raises(RenderError) as failure:
        render(any_helm, set_values=values)
    assert_names(str(failure.value), paths, words)


def test_missing_rbg_api_fails_with_install_hint(any_helm) -> None:
    with pytest.raises(RenderError) as failure:
        render(any_helm, api_versions=())
    assert_names(str(failure.value), ["preflight.requireRbgApi"], ["rbgs", "--api-versions"])


def test_preflight_can_be_skipped_offline(any_helm) -> None:
    assert render(any_helm, api_versions=(), set_values={"preflight.requireRbgApi": False})


@pytest.mark.parametrize(
    ("values", "api"),
    [
        ({"metrics.podMonitor.enabled": True}, "monitoring.coreos.com/v1/PodMonitor"),
        ({"coordinatedPolicy.enabled": True}, "workloads.x-k8s.io/v1alpha2/CoordinatedPolicy"),
        (
            {
                "encoder.autoscaling": {
                    "enabled": True,
                    "engine": "keda",
                    "keda": {"triggers": [{"type": "cpu", "metadata": {}}]},
                }
            },
            "keda.sh/v1alpha1/ScaledObject",
        ),
    ],
    ids=["podmonitor", "coordinated-policy", "keda"],
)
def test_option_needing_an_unserved_api_fails_with_its_name(any_helm, values: dict, api: str) -> None:
    with pytest.raises(RenderError) as failure:
        render(any_helm, api_versions=(RBG_API,), set_values=values)
    assert_names(str(failure.value), [next(iter(values))], [api, "preflight.requireOptionalApis"])
