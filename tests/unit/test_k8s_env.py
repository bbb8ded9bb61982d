"""Kubernetes `$(VAR)` expansion and container env, as the kubelet and the RBG controller build them."""

from __future__ import annotations

import pytest

from sglang_epd.k8s_env import PodIdentity, UnresolvableEnvError, container_env, expand_all


@pytest.fixture
def pod() -> PodIdentity:
    return PodIdentity(group="demo", role="vlm-prefill", index=2, ip="10.0.0.1")


@pytest.mark.parametrize(
    ("arg", "expanded"),
    [
        ("--host=$(SGLANG_HOST_IP)", "--host=10.0.0.1"),
        ("http://$(SGLANG_HOST_IP):$(PORT)/x", "http://10.0.0.1:30000/x"),
        ("$$(SGLANG_HOST_IP)", "$(SGLANG_HOST_IP)"),
        ("$$$(PORT)", "$30000"),
        ("$(UNDEFINED)", "$(UNDEFINED)"),
        ("$(PORT", "$(PORT"),
        ("a$b$", "a$b$"),
        ("$$", "$"),
    ],
)
def test_expand(arg: str, expanded: str) -> None:
    assert expand_all([arg], {"SGLANG_HOST_IP": "10.0.0.1", "PORT": "30000"}) == [expanded]


def test_container_env_has_rbg_variables_values_and_field_refs(pod: PodIdentity) -> None:
    container = {
        "env": [
            {"name": "SGLANG_HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "URL", "value": "http://$(SGLANG_HOST_IP):8997/$(RBG_ROLE_INDEX)"},
        ]
    }
    env = container_env(container, pod)
    assert env["URL"] == "http://10.0.0.1:8997/2"
    assert (env["RBG_GROUP_NAME"], env["RBG_ROLE_NAME"]) == ("demo", "vlm-prefill")
    assert env["RBG_ROLE_INSTANCE_NAME"] == "demo-vlm-prefill-2"


def test_secret_values_are_unknown_locally(pod: PodIdentity) -> None:
    container = {"env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}
    with pytest.raises(UnresolvableEnvError, match="TOKEN"):
        container_env(container, pod)
    assert "TOKEN" not in container_env(container, pod, strict=False)
