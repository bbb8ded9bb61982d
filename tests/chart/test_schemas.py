"""Rendered objects pass the strict Kubernetes schemas (1.29 and 1.33), the real RBG CRDs (every object
of the RBG API group: RoleBasedGroup, CoordinatedPolicy) and the stricter schema of the role fields this
chart uses."""

from __future__ import annotations

import itertools

import pytest

from sglang_epd.render import EXAMPLES_DIR
from sglang_epd.validation import (
    is_rbg_api_object,
    pod_template_as_v1,
    rbg_crd_path,
    validate_builtin,
    validate_object,
    validate_rbg_crd,
    validate_rbg_roles_strict,
)

KUBERNETES_VERSIONS = ["1.29", "1.33"]

RENDERS: dict[str, dict[str, object]] = {
    **{p.name: {"values_files": [p]} for p in sorted(EXAMPLES_DIR.glob("*.yaml"))},
    "every-option": {
        "set_values": {
            "encoderDiscovery.mode": "static",
            "rdma.enabled": True,
            "rdma.hostNetwork": True,
            "rdma.ibDevices": "mlx5_0",
            "disaggregation.transferBackend": "mooncake",
            "model.huggingface.tokenSecret.name": "hf",
            "model.huggingface.resources": {"requests": {"cpu": "1"}},
            "imagePullSecrets": [{"name": "regcred"}],
            "coordinatedPolicy.enabled": True,
            "router.service.type": "NodePort",
            "router.service.nodePort": 30080,
            "router.ingress.enabled": True,
            "router.ingress.tls": [{"secretName": "tls", "hosts": ["vlm.example.com"]}],
            "router.ingress.hosts": [
                {"host": "vlm.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}
            ],
            "encoder.affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["l4"]}]}
                        ]
                    }
                }
            },
            "encoder.extraEnv": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        }
    },
    "gang-scheduling": {
        "set_values": {
            "scheduling.gangScheduling.enabled": True,
            "scheduling.gangScheduling.schedulerName": "scheduler-plugins-scheduler",
            "router.discovery.enabled": True,
            "decode.port": 30000,
        }
    },
    "collocated-pvc": {
        "set_values": {"mode": "collocated", "model.source": "pvc", "model.pvc.claimName": "w"}
    },
    "encoder+collocated-hostpath": {
        "set_values": {"mode": "encoder+collocated", "model.source": "hostPath", "model.hostPath.path": "/m"}
    },
}


@pytest.fixture(scope="module", params=list(RENDERS), ids=list(RENDERS))
def objects(request: pytest.FixtureRequest, render_chart) -> list[dict]:
    return render_chart(**RENDERS[request.param])


@pytest.fixture
def rbg(objects: list[dict]) -> dict:
    return next(o for o in objects if o["kind"] == "RoleBasedGroup")


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_builtin_objects_are_valid(objects: list[dict], version: str) -> None:
    builtins = [o for o in objects if not is_rbg_api_object(o)]
    assert builtins, "the chart renders at least the router Service"
    for obj in builtins:
        assert validate_object(obj, version) == [], f"{obj['kind']}/{obj['metadata']['name']}"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_role_pod_templates_are_valid(rbg: dict, version: str) -> None:
    for role in rbg["spec"]["roles"]:
        template = pod_template_as_v1(role["standalonePattern"]["template"], role["name"])
        assert validate_builtin(template, version) == [], role["name"]


def test_rbg_api_objects_pass_real_crds(objects: list[dict]) -> None:
    rbg_objects = [o for o in objects if is_rbg_api_object(o)]
    assert {o["kind"] for o in rbg_objects} >= {"RoleBasedGroup"}
    for obj in rbg_objects:
        crd = rbg_crd_path(obj["kind"])
        if crd is None:
            pytest.skip(
                f"the RBG CRD of {obj['kind']} is not here (../shared/rbg-crds or $SGLANG_EPD_RBG_CRDS)"
            )
        assert validate_rbg_crd(obj, crd) == [], f"{obj['kind']}/{obj['metadata']['name']}"


def test_rbg_roles_pass_strict_role_schema(rbg: dict) -> None:
    assert validate_rbg_roles_strict(rbg) == []


def test_strict_schema_catches_a_misspelled_role_field(render_chart) -> None:
    rbg = next(o for o in render_chart() if o["kind"] == "RoleBasedGroup")
    role = rbg["spec"]["roles"][-1]  # the router, which depends on prefill and decode
    role["dependecies"] = role.pop("dependencies")
    problems = validate_rbg_roles_strict(rbg)
    assert any("dependecies" in p for p in problems)


def test_every_mode_renders_valid_rbg(render_chart) -> None:
    crd = rbg_crd_path()
    for mode, discovery in itertools.product(
        ["epd", "pd", "encoder+collocated", "collocated"], ["static", "dynamic"]
    ):
        rbg = next(
            o
            for o in render_chart(set_values={"mode": mode, "encoderDiscovery.mode": discovery})
            if o["kind"] == "RoleBasedGroup"
        )
        assert validate_rbg_roles_strict(rbg) == [], mode
        if crd is not None:
            assert validate_rbg_crd(rbg, crd) == [], mode
