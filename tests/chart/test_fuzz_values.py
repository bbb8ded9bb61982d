"""Property-based values: hypothesis writes values documents, valid and invalid, and renders each in-process.

Every valid document must render objects that are wired correctly, pass the strict Kubernetes and RBG
schemas (and SGLang's and the router's own parsers when installed) and carry every setting it asked for.
Every invalid document must fail with a message that names the offending value.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sglang_epd.render import InProcessRenderer, RenderError
from sglang_epd.topology import Role, Topology
from sglang_epd.validation import (
    is_rbg_api_object,
    pod_template_as_v1,
    rbg_crd_path,
    validate_builtin,
    validate_object,
    validate_rbg_crd,
    validate_rbg_roles_strict,
)
from sglang_epd.wiring import check_wiring

pytest.importorskip("helm_python", reason="helm-python-sdk renders in-process; install the test extra")

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

MODE_ROLES = {
    "epd": ["encoder", "prefill", "decode", "router"],
    "pd": ["prefill", "decode", "router"],
    "encoder+collocated": ["encoder", "server", "router"],
    "collocated": ["server", "router"],
}
SGLANG_ROLES = ["encoder", "prefill", "decode", "server"]
# Flags the chart does not set, with values SGLang accepts.
SAFE_SGLANG_ARGS = [
    ["--mem-fraction-static", "0.8"],
    ["--chunked-prefill-size", "4096"],
    ["--max-running-requests", "64"],
    ["--context-length", "32768"],
    ["--log-level", "info"],
]
SAFE_ROUTER_ARGS = [["--request-timeout-secs", "600"], ["--log-level", "info"]]
CHART_SGLANG_FLAGS = ["--model-path", "--served-model-name", "--host", "--port", "--tp-size"]
POLICIES = ["random", "round_robin", "cache_aware", "power_of_two"]

dns_label = st.from_regex(r"[a-z][a-z0-9]{0,7}", fullmatch=True)
label_value = st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True)


@pytest.fixture(scope="module")
def renderer() -> Iterator[InProcessRenderer]:
    instance = InProcessRenderer()
    yield instance
    instance.close()


@st.composite
def sglang_role(draw: st.DrawFn, name: str, min_replicas: int) -> dict:
    role: dict = {
        "name": name,
        "replicas": draw(st.integers(min_replicas, 6)),
        "tpSize": draw(st.sampled_from([1, 1, 2, 4, 8])),
        "extraArgs": [
            token
            for arg in draw(st.lists(st.sampled_from(SAFE_SGLANG_ARGS), unique_by=tuple, max_size=3))
            for token in arg
        ],
        "extraEnv": [
            {"name": f"X_{i}", "value": v} for i, v in enumerate(draw(st.lists(label_value, max_size=2)))
        ],
        "nodeSelector": draw(st.dictionaries(dns_label, label_value, max_size=2)),
        "priorityClassName": draw(st.sampled_from(["", "high"])),
        "resources": {"requests": {"cpu": draw(st.sampled_from(["1", "500m", "8"]))}},
    }
    if draw(st.booleans()):
        role["image"] = {"tag": draw(label_value)}
    if draw(st.booleans()):
        role["resources"]["limits"] = {"nvidia.com/gpu": role["tpSize"]}
    return role


@st.composite
def valid_values(draw: st.DrawFn) -> dict:
    mode = draw(st.sampled_from(list(MODE_ROLES)))
    discovery = draw(st.sampled_from(["static", "dynamic"]))
    rdma = draw(st.booleans())
    names = draw(st.lists(dns_label, min_size=5, max_size=5, unique=True))
    ports = draw(st.lists(st.integers(1024, 65535), min_size=8, max_size=8, unique=True))
    doc: dict = {
        "mode": mode,
        "fullnameOverride": draw(st.sampled_from(["", "vlm", "epd-a"])),
        "encoderDiscovery": {
            "mode": discovery,
            "bootstrapPort": ports[0],
            "transferBackend": draw(
                st.sampled_from(
                    ["auto", "zmq_to_scheduler", "zmq_to_tokenizer", *(["mooncake"] if rdma else [])]
                )
            ),
        },
        "disaggregation": {
            "bootstrapPort": ports[1],
            "transferBackend": draw(
                st.sampled_from(["mooncake_tcp", "nixl", *(["mooncake"] if rdma else [])])
            ),
        },
        "rdma": {
            "enabled": rdma,
            "hostNetwork": draw(st.booleans()),
            "ibDevices": draw(st.sampled_from(["", "mlx5_0", "mlx5_0,mlx5_1"])),
        },
        "metrics": {"enabled": draw(st.booleans())},
        "scheduling": {
            "gangScheduling": {"enabled": False},
            "exclusiveTopology": draw(
                st.sampled_from(["", "topology.kubernetes.io/zone", "kubernetes.io/hostname"])
            ),
        },
        "model": draw(
            st.sampled_from(
                [
                    {"source": "huggingface"},
                    {
                        "source": "huggingface",
                        "huggingface": {"tokenSecret": {"name": "hf"}, "cache": {"claimName": "c"}},
                    },
                    {"source": "pvc", "pvc": {"claimName": "weights"}, "path": "qwen"},
                    {"source": "hostPath", "hostPath": {"path": "/data/qwen"}},
                ]
            )
        ),
        "router": {
            "name": names[4],
            "replicas": draw(st.integers(1, 3)),
            "port": ports[6],
            "metricsPort": ports[7],
            "policy": draw(st.sampled_from(POLICIES)),
            "prefillPolicy": draw(st.sampled_from(["", *POLICIES])),
            "extraArgs": [
                t
                for a in draw(st.lists(st.sampled_from(SAFE_ROUTER_ARGS), unique_by=tuple, max_size=1))
                for t in a
            ],
            "service": {
                "type": draw(st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer"])),
                "port": 8000,
            },
            "retries": {"maxRetries": draw(st.integers(1, 8))},
            "circuitBreaker": {
                "enabled": draw(st.booleans()),
                "failureThreshold": draw(st.integers(1, 50)),
                "timeoutSeconds": draw(st.integers(1, 600)),
            },
        },
    }
    for i, key in enumerate(SGLANG_ROLES):
        min_replicas = 0 if key == "encoder" and discovery == "dynamic" else 1
        doc[key] = draw(sglang_role(names[i], min_replicas))
        doc[key]["port"] = ports[2 + i]
    if draw(st.booleans()):
        doc["encoder"]["prefixMmCache"] = {"enabled": True, "sizeMb": draw(st.integers(0, 8192))}
    # Operations options: none of them may disturb the wiring or the pods' settings.
    doc["networkPolicy"] = {
        "enabled": draw(st.booleans()),
        "routerClientNamespaces": draw(
            st.lists(st.dictionaries(dns_label, label_value, min_size=1), max_size=2)
        ),
        "metricsNamespaces": draw(st.lists(st.dictionaries(dns_label, label_value, min_size=1), max_size=1)),
    }
    doc["podDisruptionBudget"] = {"enabled": draw(st.booleans())}
    doc["security"] = {"privileged": draw(st.booleans())}
    doc["metrics"]["podMonitor"] = {"enabled": doc["metrics"]["enabled"] and draw(st.booleans())}
    doc["coordinatedPolicy"] = {"enabled": mode in ("epd", "pd") and draw(st.booleans())}
    if (
        doc["scheduling"]["exclusiveTopology"] == "kubernetes.io/hostname"
        and rdma
        and doc["rdma"]["hostNetwork"]
    ):
        # One node for the whole group: two host-network pods of a role would share a port (refused).
        doc["scheduling"]["exclusiveTopology"] = "topology.kubernetes.io/zone"
    if discovery == "dynamic" and draw(st.booleans()):
        # Gang scheduling needs a group without dependencies: a discovering router (one worker port).
        doc["scheduling"]["gangScheduling"] = {"enabled": True, "schedulerName": "volcano"}
        doc["router"]["discovery"] = {"enabled": True}
        doc["decode"]["port"] = doc["prefill"]["port"]
    if discovery == "dynamic" and draw(st.booleans()):
        trigger = {
            "type": "prometheus",
            "metadata": {"query": "x", "threshold": "1", "serverAddress": "http://p"},
        }
        doc["encoder"]["autoscaling"] = {
            "enabled": True,
            "engine": "keda",
            "minReplicas": 0,
            "maxReplicas": 6,
            "keda": {"triggers": [trigger]},
        }
    return doc


def _role_of(topology: Topology, component: str) -> Role:
    role = topology.role(component)
    assert role is not None, f"mode renders no {component} role"
    return role


def assert_settings_reflected(doc: dict, topology: Topology) -> None:
    """Nothing the document asked for is silently dropped."""
    assert {r.component for r in topology.roles.values()} == set(MODE_ROLES[doc["mode"]])
    for key in MODE_ROLES[doc["mode"]]:
        values, role = doc[key], _role_of(topology, key)
        assert (role.name, role.replicas, role.port) == (values["name"], values["replicas"], values["port"])
        args = role.container["args"]
        assert args[len(args) - len(values["extraArgs"]) :] == values["extraArgs"]
        env = role.container.get("env", [])
        assert all(e in env for e in values.get("extraEnv", []))
        assert role.pod_template["spec"].get("nodeSelector", {}) == values.get("nodeSelector", {})
        if key == "router":
            assert role.flag("--policy") == [values["policy"]]
            assert role.flag("--retry-max-retries") == [str(values["retries"]["maxRetries"])]
            breaker = values["circuitBreaker"]
            assert ("--disable-circuit-breaker" in role.flags) != breaker["enabled"]
            if breaker["enabled"]:
                assert role.flag("--cb-timeout-duration-secs") == [str(breaker["timeoutSeconds"])]
            continue
        assert role.gpus() == values["tpSize"] and role.flag("--tp-size") == [str(values["tpSize"])]
        assert role.container["image"].endswith(":" + values.get("image", {}).get("tag", "v0.5.23"))
        assert ("--enable-metrics" in role.flags) == doc["metrics"]["enabled"]
        if doc["rdma"]["enabled"]:
            assert role.container["resources"]["limits"]["rdma/hca"] == 1


@FUZZ
@given(doc=valid_values())
def test_valid_values_render_valid_wired_objects(renderer: InProcessRenderer, doc: dict) -> None:
    objects = renderer.render(doc)
    topology = Topology.from_objects(objects)
    assert check_wiring(topology, objects) == []
    assert_settings_reflected(doc, topology)
    rbg = next(o for o in objects if o["kind"] == "RoleBasedGroup")
    assert validate_rbg_roles_strict(rbg) == []
    for obj in objects:
        if is_rbg_api_object(obj):
            crd = rbg_crd_path(obj["kind"])
            if crd is not None:
                assert validate_rbg_crd(obj, crd) == []
        else:
            assert validate_object(obj, "1.33") == []
    for role in rbg["spec"]["roles"]:
        assert (
            validate_builtin(pod_template_as_v1(role["standalonePattern"]["template"], role["name"]), "1.33")
            == []
        )


# Invalid documents: a valid one plus one mistake, and the value path the error must name.


def _used_sglang_role(draw: st.DrawFn, doc: dict) -> str:
    return draw(st.sampled_from([k for k in MODE_ROLES[doc["mode"]] if k != "router"]))


def _schema_mistakes(draw: st.DrawFn, doc: dict) -> tuple[str, list[str]]:
    """Mistakes the schema catches wherever they are, used by the mode or not."""
    key = draw(st.sampled_from([*SGLANG_ROLES, "router"]))
    choice = draw(st.sampled_from(["negative", "string-int", "enum", "unknown-key", "bad-name", "glued-arg"]))
    if choice == "negative":
        doc[key]["replicas"] = draw(st.integers(-5, -1))
        return f"{key}.replicas", []
    if choice == "string-int":
        doc[key]["port"] = "http"
        return f"{key}.port", []
    if choice == "enum":
        field = draw(
            st.sampled_from(
                [
                    "mode",
                    "encoderDiscovery.transferBackend",
                    "disaggregation.transferBackend",
                    "encoderDiscovery.mode",
                    "router.policy",
                    "model.source",
                ]
            )
        )
        parent, _, leaf = field.rpartition(".")
        (doc[parent] if parent else doc)[leaf] = draw(st.sampled_from(["tcp", "grpc", "EPD", "ucx", "s3"]))
        return field, []
    if choice == "unknown-key":
        parent = draw(st.sampled_from(["", key, "model", "encoderDiscovery", "rdma", "router.service"]))
        target = doc
        for part in filter(None, parent.split(".")):
            target = target.setdefault(part, {})
        misspelt = draw(st.sampled_from(["replica", "tpsize", "hfToken", "token", "nodeselector"]))
        target[misspelt] = 1
        return parent, [misspelt]
    if choice == "bad-name":
        doc[key]["name"] = draw(st.sampled_from(["Encoder", "vlm_encoder", "-x", "e" * 64]))
        return f"{key}.name", []
    doc[key]["extraArgs"] = ["--log-level info"]
    return f"{key}.extraArgs", []


def _template_mistakes(draw: st.DrawFn, doc: dict) -> tuple[str, list[str]]:
    """Mistakes only the templates catch; they need a role the mode renders."""
    key = _used_sglang_role(draw, doc)
    choices = ["gpu-mismatch", "duplicate-flag", "long-name", "duplicate-name"]
    if doc["mode"] in ("epd", "pd"):
        choices.append("mooncake-no-rdma")
    choice = draw(st.sampled_from(choices))
    if choice == "gpu-mismatch":
        doc[key]["resources"]["limits"] = {"nvidia.com/gpu": doc[key]["tpSize"] + draw(st.integers(1, 3))}
        return f"{key}.resources.limits.nvidia.com/gpu", [f"{key}.tpSize"]
    if choice == "duplicate-flag":
        flag = draw(st.sampled_from(CHART_SGLANG_FLAGS))
        doc[key]["extraArgs"] = [*doc[key]["extraArgs"], f"{flag}=x"]
        return f"{key}.extraArgs", [flag]
    if choice == "long-name":
        # Long enough for `s-<rbg>-<role>` to pass 63 characters; the first role that does is named.
        doc["fullnameOverride"] = "g" * (62 - len(doc[key]["name"]))
        return "fullnameOverride", ["63"]
    if choice == "duplicate-name":
        other = draw(st.sampled_from([k for k in MODE_ROLES[doc["mode"]] if k != key]))
        doc[other]["name"] = doc[key]["name"]
        return f"{other}.name", ["unique"]
    doc["rdma"]["enabled"] = False
    doc["encoderDiscovery"]["transferBackend"] = "auto"
    doc["disaggregation"]["transferBackend"] = "mooncake"
    return "disaggregation.transferBackend", ["rdma.enabled"]


@st.composite
def invalid_values(draw: st.DrawFn) -> tuple[dict, str, list[str]]:
    doc = copy.deepcopy(draw(valid_values()))
    make_mistake = draw(st.sampled_from([_schema_mistakes, _template_mistakes]))
    path, words = make_mistake(draw, doc)
    return doc, path, words


@FUZZ
@given(case=invalid_values())
def test_invalid_values_fail_naming_the_value(
    renderer: InProcessRenderer, case: tuple[dict, str, list[str]]
) -> None:
    doc, path, words = case
    with pytest.raises(RenderError) as failure:
        renderer.render(doc)
    message = str(failure.value)
    # Helm 4's schema errors write the path as /a/b/c; template checks write a.b.c.
    assert (
        path in message or "/" + path.replace(".", "/") in message or (path == "" and "at ''" in message)
    ), message
    for word in words:
        assert word in message, message
