"""A matrix of modes and options: each renders a correctly wired group with the settings it asked for."""

from __future__ import annotations

import itertools

import pytest

from sglang_epd.topology import Topology
from sglang_epd.wiring import check_wiring

from .matrix import MODES, OPTIONS


@pytest.fixture(
    params=list(itertools.product(MODES, ["dynamic", "static"], OPTIONS)), ids=lambda p: "-".join(p)
)
def case(request: pytest.FixtureRequest, render_chart) -> tuple[str, str, dict, list[dict]]:
    mode, discovery, option = request.param
    values = {"mode": mode, "encoderDiscovery.mode": discovery, **OPTIONS[option]}
    return mode, discovery, values, render_chart(set_values=values)


def test_wired_and_only_the_modes_roles(case) -> None:
    mode, _discovery, _values, objects = case
    topology = Topology.from_objects(objects)
    assert {r.component for r in topology.roles.values()} == MODES[mode]
    assert check_wiring(topology, objects) == []


def test_settings_reach_the_pods(case) -> None:
    _mode, _discovery, values, objects = case
    topology = Topology.from_objects(objects)
    for role in topology.roles.values():
        key = role.component
        if f"{key}.replicas" in values:
            assert role.replicas == values[f"{key}.replicas"]
        if f"{key}.port" in values:
            assert role.port == values[f"{key}.port"]
        if f"{key}.tpSize" in values:
            assert role.gpus() == values[f"{key}.tpSize"]
        if key == "router":
            continue
        spec = role.pod_template["spec"]
        assert ("--enable-metrics" in role.flags) == values.get("metrics.enabled", True)
        assert spec.get("hostNetwork", False) == values.get("rdma.hostNetwork", False)
        if spec.get("hostNetwork"):
            assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"
        model = next(v for v in spec["volumes"] if v["name"] == "model")
        source = values.get("model.source", "huggingface")
        assert {"pvc": "persistentVolumeClaim", "hostPath": "hostPath", "huggingface": "emptyDir"}[
            source
        ] in model
        assert bool(spec.get("initContainers")) == (source == "huggingface")


def test_model_path_per_source(render_chart) -> None:
    expected = {
        "huggingface": ({}, "/models/Qwen/Qwen2.5-VL-7B-Instruct"),
        "pvc": ({"model.pvc.claimName": "w", "model.path": "qwen"}, "/models/qwen"),
        "hostPath": ({"model.hostPath.path": "/data/qwen"}, "/models"),
    }
    for source, (extra, model_path) in expected.items():
        topology = Topology.from_objects(render_chart(set_values={"model.source": source, **extra}))
        assert {
            tuple(r.flag("--model-path")) for r in topology.roles.values() if r.component != "router"
        } == {(model_path,)}


def test_hf_token_comes_from_secret(render_chart) -> None:
    objects = render_chart(
        set_values={"model.huggingface.tokenSecret.name": "hf", "model.huggingface.revision": "v1"}
    )
    for role in Topology.from_objects(objects).roles.values():
        if role.component == "router":
            continue
        download = role.pod_template["spec"]["initContainers"][0]
        env = {e["name"]: e for e in download["env"]}
        assert env["HF_TOKEN_PATH"]["value"] == "/var/run/secrets/huggingface/token"
        assert "HF_TOKEN" not in env
        mount = next(m for m in download["volumeMounts"] if m["name"] == "hf-token")
        assert (mount["mountPath"], mount["readOnly"]) == ("/var/run/secrets/huggingface", True)
        volume = next(v for v in role.pod_template["spec"]["volumes"] if v["name"] == "hf-token")
        assert volume["secret"] == {"secretName": "hf", "items": [{"key": "HF_TOKEN", "path": "token"}]}
        assert env["MODEL_REVISION"]["value"] == "v1"


def test_group_annotations_and_labels(render_chart) -> None:
    objects = render_chart(
        set_values={
            "scheduling.gangScheduling.enabled": True,
            "scheduling.gangScheduling.schedulerName": "volcano",
            "scheduling.gangScheduling.timeoutSeconds": 300,
            "scheduling.exclusiveTopology": "kubernetes.io/hostname",
            "router.discovery.enabled": True,
            "decode.port": 30000,
        }
    )
    rbg = next(o for o in objects if o["kind"] == "RoleBasedGroup")
    assert rbg["metadata"]["annotations"] == {
        "rbg.workloads.x-k8s.io/group-gang-scheduling": "true",
        "rbg.workloads.x-k8s.io/group-gang-scheduling-timeout": "300",
        "rbg.workloads.x-k8s.io/group-exclusive-topology": "kubernetes.io/hostname",
    }
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "sglang-epd"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"


def test_pod_overrides(render_chart) -> None:
    objects = render_chart(
        set_values={
            "imagePullSecrets": [{"name": "regcred"}],
            "encoder.image": {"repository": "example.com/sglang", "tag": "custom"},
            "encoder.nodeSelector": {"gpu": "l4"},
            "encoder.priorityClassName": "high",
            "encoder.runtimeClassName": "nvidia",
            "encoder.extraArgs": ["--mem-fraction-static", "0.5", "--json-model-override-args", '{"a": 1}'],
            "encoder.extraEnv": [{"name": "X", "value": "1"}],
            "encoder.podLabels": {"team": "vision"},
            "router.extraArgs": ["--request-timeout-secs=600"],
        }
    )
    topology = Topology.from_objects(objects)
    encoder, prefill, router = topology.role("encoder"), topology.role("prefill"), topology.role("router")
    spec = encoder.pod_template["spec"]
    assert encoder.container["image"] == "example.com/sglang:custom"
    assert prefill.container["image"] == "lmsysorg/sglang:v0.5.23"
    assert spec["nodeSelector"] == {"gpu": "l4"} and "nodeSelector" not in prefill.pod_template["spec"]
    assert (spec["priorityClassName"], spec["runtimeClassName"]) == ("high", "nvidia")
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert encoder.flag("--mem-fraction-static") == ["0.5"]
    assert encoder.flag("--json-model-override-args") == ['{"a": 1}']
    assert {"name": "X", "value": "1"} in encoder.container["env"]
    assert encoder.pod_template["metadata"]["labels"]["team"] == "vision"
    assert router.flag("--request-timeout-secs") == ["600"]


def test_router_service_types_and_ingress(render_chart) -> None:
    objects = render_chart(
        set_values={
            "router.service.type": "LoadBalancer",
            "router.service.nodePort": 31000,
            "router.service.loadBalancerSourceRanges": ["10.0.0.0/8"],
            "router.ingress.enabled": True,
            "router.ingress.className": "nginx",
            "router.ingress.hosts": [
                {"host": "vlm.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}
            ],
        }
    )
    service = next(o for o in objects if o["kind"] == "Service")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["ports"][0]["nodePort"] == 31000
    ingress = next(o for o in objects if o["kind"] == "Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": service["metadata"]["name"], "port": {"name": "http"}}


def test_sglang_version_pinned_once(helm) -> None:
    """The default image tag is derived from the chart's appVersion (the SGLang release it targets)."""
    import yaml

    from sglang_epd.render import CHART_DIR

    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert values["image"]["tag"] == ""
    assert chart["appVersion"].count(".") == 2
    parsers = (CHART_DIR.parents[1] / "requirements" / "parsers.txt").read_text()
    assert f"sglang=={chart['appVersion']} " in parsers, (
        "the argv tests must use the SGLang the chart targets"
    )


def test_helm_test_pod_is_a_test_hook(render_chart) -> None:
    pods = [o for o in render_chart() if o["kind"] == "Pod"]
    assert [p["metadata"]["annotations"]["helm.sh/hook"] for p in pods] == ["test"]
    assert not [o for o in render_chart(set_values={"helmTest.enabled": False}) if o["kind"] == "Pod"]
