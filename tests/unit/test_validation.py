"""Unit tests for sglang_epd.validation: each validator must catch what it exists to catch."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from sglang_epd.validation import (
    RBG_CRD_FILENAME,
    RBG_CRDS_ENV,
    SchemaNotFoundError,
    UnsupportedKubernetesVersionError,
    check_rbg_role_graph,
    pod_template_as_v1,
    rbg_crd_path,
    validate_builtin,
    validate_rbg_crd,
    validate_rbg_roles_strict,
)

K8S_VERSIONS = ["1.29", "1.33"]

# --------------------------------------------------------------------------------------------------
# built-in objects


@pytest.fixture(params=K8S_VERSIONS)
def k8s_version(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def service() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "epd-router", "labels": {"app": "epd"}},
        "spec": {
            "type": "ClusterIP",
            "selector": {"app": "epd", "role": "router"},
            "ports": [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}],
        },
    }


@pytest.fixture
def service_misspelled(service: dict[str, Any]) -> dict[str, Any]:
    service["spec"]["ports"][0]["targetport"] = service["spec"]["ports"][0].pop("targetPort")
    return service


@pytest.fixture
def pod_template_spec() -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "epd", "role": "prefill"}},
        "spec": {
            "containers": [
                {
                    "name": "sglang",
                    "image": "lmsysorg/sglang:latest",
                    "args": ["--disaggregation-mode", "prefill"],
                    "ports": [{"name": "http", "containerPort": 30000}],
                    "resources": {
                        "limits": {"nvidia.com/gpu": 1},
                        "requests": {"cpu": "4", "memory": "16Gi"},
                    },
                    "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}},
                }
            ]
        },
    }


@pytest.fixture
def pod_template_misspelled(pod_template_spec: dict[str, Any]) -> dict[str, Any]:
    container = pod_template_spec["spec"]["containers"][0]
    container["resource"] = container.pop("resources")
    return pod_template_as_v1(pod_template_spec, "prefill")


@pytest.fixture(
    params=[
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "epd"},
            "spec": {
                "rules": [
                    {
                        "host": "epd.example.com",
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {"service": {"name": "epd-router", "port": {"number": 8000}}},
                                }
                            ]
                        },
                    }
                ]
            },
        },
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "epd-decode"},
            "spec": {
                "scaleTargetRef": {
                    "apiVersion": "workloads.x-k8s.io/v1alpha2",
                    "kind": "RoleBasedGroupScalingAdapter",
                    "name": "epd-decode",
                },
                "minReplicas": 1,
                "maxReplicas": 4,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 80},
                        },
                    }
                ],
            },
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "epd"}, "data": {"a.json": "{}"}},
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "epd"},
            "spec": {"podSelector": {"matchLabels": {"app": "epd"}}, "policyTypes": ["Ingress"]},
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "epd"},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "epd"}}},
        },
    ],
    ids=lambda obj: obj["kind"],
)
def other_builtin(request: pytest.FixtureRequest) -> dict[str, Any]:
    return copy.deepcopy(request.param)


def test_valid_service_passes(service: dict[str, Any], k8s_version: str) -> None:
    assert validate_builtin(service, k8s_version) == []


def test_misspelled_service_field_fails(service_misspelled: dict[str, Any], k8s_version: str) -> None:
    errors = validate_builtin(service_misspelled, k8s_version)
    assert errors == ["spec.ports[0]: Additional properties are not allowed ('targetport' was unexpected)"]


def test_other_builtin_kinds_pass(other_builtin: dict[str, Any], k8s_version: str) -> None:
    assert validate_builtin(other_builtin, k8s_version) == []


def test_wrong_type_in_builtin_fails(other_builtin: dict[str, Any], k8s_version: str) -> None:
    other_builtin["metadata"]["name"] = 7
    assert validate_builtin(other_builtin, k8s_version) == [
        "metadata.name: 7 is not of type 'string', 'null'"
    ]


def test_valid_pod_template_passes(pod_template_spec: dict[str, Any], k8s_version: str) -> None:
    assert validate_builtin(pod_template_as_v1(pod_template_spec, "prefill"), k8s_version) == []


def test_pod_template_with_misspelled_container_field_fails(
    pod_template_misspelled: dict[str, Any], k8s_version: str
) -> None:
    errors = validate_builtin(pod_template_misspelled, k8s_version)
    assert errors == [
        "template.spec.containers[0]: Additional properties are not allowed ('resource' was unexpected)"
    ]


def test_pod_template_as_v1_wraps_and_copies(pod_template_spec: dict[str, Any]) -> None:
    wrapped = pod_template_as_v1(pod_template_spec, "prefill")
    assert wrapped == {
        "apiVersion": "v1",
        "kind": "PodTemplate",
        "metadata": {"name": "prefill"},
        "template": pod_template_spec,
    }
    assert wrapped["template"] is not pod_template_spec


@pytest.mark.parametrize("version", ["v1.29", "1.29.7", "1.33.0-gke.1"])
def test_version_spellings_are_accepted(service: dict[str, Any], version: str) -> None:
    assert validate_builtin(service, version) == []


@pytest.mark.parametrize("version", ["1.24", "1.99", "latest"])
def test_unsupported_version_raises(service: dict[str, Any], version: str) -> None:
    with pytest.raises(UnsupportedKubernetesVersionError, match=r"Kubernetes|malformed"):
        validate_builtin(service, version)


@pytest.fixture(
    params=[
        ("workloads.x-k8s.io/v1alpha2", "RoleBasedGroup"),
        ("v1", "Servise"),
        ("apps/v1", "Service"),
    ],
    ids=["crd-kind", "misspelled-kind", "wrong-group"],
)
def unknown_kind(request: pytest.FixtureRequest) -> dict[str, Any]:
    api_version, kind = request.param
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}}


def test_unknown_schema_raises_naming_kind_api_version_and_version(unknown_kind: dict[str, Any]) -> None:
    expected = rf"kind={unknown_kind['kind']} apiVersion={unknown_kind['apiVersion']} in Kubernetes 1\.29"
    with pytest.raises(SchemaNotFoundError, match=expected):
        validate_builtin(unknown_kind, "1.29")


# --------------------------------------------------------------------------------------------------
# RoleBasedGroup


@pytest.fixture
def crd_path() -> Path:
    path = rbg_crd_path()
    if path is None:
        pytest.skip(
            f"RBG CRD {RBG_CRD_FILENAME} not found: set {RBG_CRDS_ENV} to the folder holding it,"
            " or provide ../shared/rbg-crds/ next to the repository"
        )
    return path


@pytest.fixture
def rbg(pod_template_spec: dict[str, Any]) -> dict[str, Any]:
    def role(name: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "replicas": 1, **extra}

    return {
        "apiVersion": "workloads.x-k8s.io/v1alpha2",
        "kind": "RoleBasedGroup",
        "metadata": {"name": "epd", "labels": {"app": "epd"}},
        "spec": {
            "roles": [
                role("encoder", standalonePattern={"template": copy.deepcopy(pod_template_spec)}),
                role(
                    "prefill",
                    dependencies=["encoder"],
                    standalonePattern={"template": copy.deepcopy(pod_template_spec)},
                    rolloutStrategy={
                        "type": "RollingUpdate",
                        "rollingUpdate": {"type": "RecreatePod", "maxUnavailable": "50%", "maxSurge": 1},
                    },
                    servicePorts=[{"name": "http", "port": 30000, "targetPort": "http", "protocol": "TCP"}],
                ),
                role(
                    "decode",
                    replicas=2,
                    dependencies=["encoder"],
                    leaderWorkerPattern={
                        "size": 2,
                        "template": copy.deepcopy(pod_template_spec),
                        "workerTemplatePatch": {"metadata": {"labels": {"worker": "true"}}},
                    },
                    scalingAdapter={"enable": True},
                    minReadySeconds=5,
                    podManagementPolicy="Parallel",
                ),
                role(
                    "router",
                    dependencies=["prefill", "decode"],
                    standalonePattern={"template": pod_template_spec},
                ),
            ]
        },
    }


@pytest.fixture(params=["dependecies", "standalonPattern"])
def rbg_role_typo(request: pytest.FixtureRequest, rbg: dict[str, Any]) -> dict[str, Any]:
    prefill = rbg["spec"]["roles"][1]
    if request.param == "dependecies":
        prefill["dependecies"] = prefill.pop("dependencies")
    else:
        # keep a valid pattern so the typo is the only problem
        prefill["standalonPattern"] = {"template": {}}
    return rbg


@pytest.fixture
def rbg_replicas_string(rbg: dict[str, Any]) -> dict[str, Any]:
    rbg["spec"]["roles"][0]["replicas"] = "two"
    return rbg


@pytest.fixture
def rbg_container_typo(rbg: dict[str, Any]) -> dict[str, Any]:
    rbg["spec"]["roles"][0]["standalonePattern"]["template"]["spec"]["containers"][0]["imagee"] = "x"
    return rbg


@pytest.fixture
def rbg_without_name(rbg: dict[str, Any]) -> dict[str, Any]:
    del rbg["metadata"]["name"]
    return rbg


@pytest.fixture
def rbg_cycle(rbg: dict[str, Any]) -> dict[str, Any]:
    rbg["spec"]["roles"][0]["dependencies"] = ["router"]
    return rbg


@pytest.fixture
def rbg_unknown_and_self_dependency(rbg: dict[str, Any]) -> dict[str, Any]:
    rbg["spec"]["roles"][1]["dependencies"] = ["encodr", "prefill"]
    return rbg


@pytest.fixture
def rbg_duplicate_role(rbg: dict[str, Any]) -> dict[str, Any]:
    rbg["spec"]["roles"][3]["name"] = "decode"
    return rbg


@pytest.fixture
def rbg_both_patterns(rbg: dict[str, Any]) -> dict[str, Any]:
    encoder = rbg["spec"]["roles"][0]
    encoder["leaderWorkerPattern"] = {"size": 2, "template": encoder["standalonePattern"]["template"]}
    return rbg


@pytest.fixture
def rbg_bad_rollout(rbg: dict[str, Any]) -> dict[str, Any]:
    rbg["spec"]["roles"][1]["rolloutStrategy"]["rollingUpdate"]["type"] = "Recreate"
    rbg["spec"]["roles"][1]["name"] = "Prefill_1"
    return rbg


def test_valid_rbg_passes_crd(rbg: dict[str, Any], crd_path: Path) -> None:
    assert validate_rbg_crd(rbg, crd_path) == []


def test_valid_rbg_passes_strict_roles(rbg: dict[str, Any]) -> None:
    assert validate_rbg_roles_strict(rbg) == []


def test_role_typo_passes_real_crd(rbg_role_typo: dict[str, Any], crd_path: Path) -> None:
    assert validate_rbg_crd(rbg_role_typo, crd_path) == []


def test_role_typo_fails_strict_role_schema(rbg_role_typo: dict[str, Any]) -> None:
    errors = validate_rbg_roles_strict(rbg_role_typo)
    assert any(e.startswith("spec.roles[1]: Additional properties are not allowed") for e in errors), errors
    assert any("dependecies" in e or "standalonPattern" in e for e in errors), errors


def test_replicas_string_fails_crd(rbg_replicas_string: dict[str, Any], crd_path: Path) -> None:
    assert validate_rbg_crd(rbg_replicas_string, crd_path) == [
        "spec.roles[0].replicas: 'two' is not of type 'integer'"
    ]


def test_container_typo_inside_role_fails_crd(rbg_container_typo: dict[str, Any], crd_path: Path) -> None:
    assert validate_rbg_crd(rbg_container_typo, crd_path) == [
        "spec.roles[0].standalonePattern.template.spec.containers[0]:"
        " Additional properties are not allowed ('imagee' was unexpected)"
    ]


def test_rbg_metadata_name_required_by_crd(rbg_without_name: dict[str, Any], crd_path: Path) -> None:
    assert validate_rbg_crd(rbg_without_name, crd_path) == ["metadata: 'name' is a required property"]


def test_dependency_cycle_is_reported(rbg_cycle: dict[str, Any]) -> None:
    assert check_rbg_role_graph(rbg_cycle) == [
        "spec.roles: dependency cycle encoder -> router -> prefill -> encoder",
        "spec.roles: dependency cycle decode -> encoder -> router -> decode",
    ]


def test_unknown_and_self_dependency_are_reported(rbg_unknown_and_self_dependency: dict[str, Any]) -> None:
    assert check_rbg_role_graph(rbg_unknown_and_self_dependency) == [
        "spec.roles[1].dependencies: role 'prefill' depends on unknown role 'encodr'"
        " (roles: ['decode', 'encoder', 'prefill', 'router'])",
        "spec.roles[1].dependencies: role 'prefill' depends on itself",
    ]


def test_duplicate_role_name_is_reported(rbg_duplicate_role: dict[str, Any]) -> None:
    assert "spec.roles: role name 'decode' is used 2 times" in validate_rbg_roles_strict(rbg_duplicate_role)


def test_strict_roles_include_graph_errors(rbg_cycle: dict[str, Any]) -> None:
    assert any("dependency cycle" in e for e in validate_rbg_roles_strict(rbg_cycle))


def test_both_patterns_fail_strict(rbg_both_patterns: dict[str, Any]) -> None:
    assert validate_rbg_roles_strict(rbg_both_patterns) == [
        "spec.roles[0]: exactly one of standalonePattern or leaderWorkerPattern must be set"
    ]


def test_bad_enum_and_name_fail_strict(rbg_bad_rollout: dict[str, Any]) -> None:
    errors = validate_rbg_roles_strict(rbg_bad_rollout)
    assert errors[0].startswith("spec.roles[1].name: 'Prefill_1' does not match")
    assert errors[1].startswith("spec.roles[1].rolloutStrategy.rollingUpdate.type: 'Recreate' is not one of")
    assert "depends on unknown role 'prefill'" in " ".join(errors)


def test_missing_roles_reported() -> None:
    assert validate_rbg_roles_strict({"spec": {}}) == ["spec.roles: missing or not a list"]


# --------------------------------------------------------------------------------------------------
# structural-schema conversion, on a small synthetic CRD (runs without the real CRD file)


@pytest.fixture
def tiny_crd(tmp_path: Path) -> Path:
    properties = {
        "spec": {
            "type": "object",
            "properties": {
                "roles": {
                    "type": "array",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string", "maxLength": 5},
                            "size": {
                                "anyOf": [{"type": "integer"}, {"type": "string"}],
                                "x-kubernetes-int-or-string": True,
                            },
                            "note": {"type": "string", "nullable": True},
                            "tags": {
                                "type": "array",
                                "items": {"type": "string"},
                                "x-kubernetes-list-type": "set",
                            },
                            "opts": {"type": "object", "properties": {"a": {"type": "boolean"}}},
                            "blob": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    },
                }
            },
        }
    }
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "spec": {
            "names": {"kind": "RoleBasedGroup"},
            "versions": [
                {
                    "name": "v1alpha2",
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": properties}},
                }
            ],
        },
    }
    path = tmp_path / RBG_CRD_FILENAME
    path.write_text(yaml.safe_dump(crd))
    return path


@pytest.fixture
def tiny_rbg() -> dict[str, Any]:
    return {
        "apiVersion": "workloads.x-k8s.io/v1alpha2",
        "kind": "RoleBasedGroup",
        "metadata": {"name": "tiny"},
        "spec": {
            "roles": [
                {"name": "a", "size": "50%", "note": None, "tags": ["x"], "blob": {"any": 1}, "xtra": 1}
            ]
        },
    }


@pytest.fixture(
    params=[
        ("size", 3.5, "spec.roles[0].size: 3.5 is not of type 'integer', 'string'"),
        ("note", 3, "spec.roles[0].note: 3 is not of type 'string', 'null'"),
        ("tags", ["x", "x"], "spec.roles[0].tags: ['x', 'x'] has non-unique elements"),
        (
            "opts",
            {"b": True},
            "spec.roles[0].opts: Additional properties are not allowed ('b' was unexpected)",
        ),
        ("name", "toolong", "spec.roles[0].name: 'toolong' is too long"),
    ],
    ids=["int-or-string", "nullable", "list-type-set", "closed-object", "maxLength"],
)
def tiny_rbg_broken(request: pytest.FixtureRequest, tiny_rbg: dict[str, Any]) -> tuple[dict[str, Any], str]:
    field, value, expected = request.param
    tiny_rbg["spec"]["roles"][0][field] = value
    return tiny_rbg, expected


def test_conversion_keeps_preserved_and_kubernetes_typed_fields(
    tiny_rbg: dict[str, Any], tiny_crd: Path
) -> None:
    assert validate_rbg_crd(tiny_rbg, tiny_crd) == []


def test_conversion_rejects_what_the_apiserver_rejects(
    tiny_rbg_broken: tuple[dict[str, Any], str], tiny_crd: Path
) -> None:
    obj, expected = tiny_rbg_broken
    assert validate_rbg_crd(obj, tiny_crd) == [expected]


@pytest.fixture
def tiny_rbg_v1alpha1(tiny_rbg: dict[str, Any]) -> dict[str, Any]:
    tiny_rbg["apiVersion"] = "workloads.x-k8s.io/v1alpha1"
    return tiny_rbg


def test_wrong_api_version_fails_crd(tiny_rbg_v1alpha1: dict[str, Any], tiny_crd: Path) -> None:
    assert validate_rbg_crd(tiny_rbg_v1alpha1, tiny_crd) == [
        "apiVersion: 'workloads.x-k8s.io/v1alpha2' was expected"
    ]


# --------------------------------------------------------------------------------------------------
# locating the CRD


@pytest.fixture
def crd_env_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / RBG_CRD_FILENAME).write_text("{}\n")
    monkeypatch.setenv(RBG_CRDS_ENV, str(tmp_path))
    return tmp_path / RBG_CRD_FILENAME


@pytest.fixture
def default_crd_path_with_env_empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path | None:
    monkeypatch.delenv(RBG_CRDS_ENV, raising=False)
    default = rbg_crd_path()
    monkeypatch.setenv(RBG_CRDS_ENV, str(tmp_path))
    return default


def test_rbg_crd_path_honours_env_folder(crd_env_folder: Path) -> None:
    assert rbg_crd_path() == crd_env_folder


def test_rbg_crd_path_falls_back_when_env_folder_lacks_crd(
    default_crd_path_with_env_empty_folder: Path | None,
) -> None:
    assert rbg_crd_path() == default_crd_path_with_env_empty_folder
