"""Operations options render what they promise: autoscaling through the RBG scaling adapter (and a
`helm upgrade` the RBG webhook accepts), router service discovery with least RBAC, PodMonitors and the
dashboard ConfigMap, NetworkPolicies, PodDisruptionBudgets, the CoordinatedPolicy and security defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sglang_epd.dashboard import DASHBOARD_PATH
from sglang_epd.rbg_model import webhook_rejections
from sglang_epd.render import EXAMPLES_DIR, HelmRunner, RenderError, template_args
from sglang_epd.topology import GROUP_LABEL, ROLE_LABEL, Topology
from sglang_epd.wiring import check_wiring

from .kube_api_stub import kube_api_stub

AUTOSCALE = EXAMPLES_DIR / "qwen2.5-vl-7b-epd-autoscale.yaml"
RBGSA = {"apiVersion": "workloads.x-k8s.io/v1alpha2", "kind": "RoleBasedGroupScalingAdapter"}


def of_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def roles(objects: list[dict]) -> dict[str, dict]:
    rbg = next(o for o in objects if o["kind"] == "RoleBasedGroup")
    return {r["name"]: r for r in rbg["spec"]["roles"]}


def pod_spec(role: dict) -> dict:
    return role["standalonePattern"]["template"]["spec"]


# Autoscaling ------------------------------------------------------------------------------------------------


def live_group(objects: list[dict], encoders: int) -> dict:
    """The installed group after the HPA scaled the encoders to `encoders` (the adapter controller writes
    the count into the group)."""
    rbg = json.loads(json.dumps(next(o for o in objects if o["kind"] == "RoleBasedGroup")))
    rbg["metadata"]["namespace"] = "default"
    next(r for r in rbg["spec"]["roles"] if r["name"] == "vlm-encoder")["replicas"] = encoders
    return rbg


def encoder_adapter(encoders: int) -> dict:
    """The RoleBasedGroupScalingAdapter the controller created for the autoscaled encoder role."""
    meta = {"name": "sglang-epd-vlm-encoder", "namespace": "default"}
    return {**RBGSA, "metadata": meta, "spec": {"replicas": encoders}}


def render_upgrade(helm: HelmRunner, *extra: str) -> list[dict]:
    result = helm.run(*template_args(values_files=[AUTOSCALE]), "--is-upgrade", *extra)
    if result.returncode != 0:
        raise RenderError(result.stderr)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_install_renders_the_adapter_the_initial_count_and_an_hpa_on_the_adapter(render_chart) -> None:
    objects = render_chart(values_files=[AUTOSCALE])
    encoder, prefill = roles(objects)["vlm-encoder"], roles(objects)["vlm-prefill"]
    assert encoder["scalingAdapter"] == {"enable": True} and encoder["replicas"] == 2
    assert "scalingAdapter" not in prefill
    (hpa,) = of_kind(objects, "HorizontalPodAutoscaler").values()
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {**RBGSA, "name": "sglang-epd-vlm-encoder"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 6)
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "sglang_encoder_queue_wait_seconds_avg"
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 600


@pytest.mark.parametrize("with_adapter", [True, False], ids=["adapter", "group-only"])
def test_upgrade_renders_the_adapters_count_so_the_webhook_accepts_it(
    render_chart, any_helm: HelmRunner, tmp_path: Path, with_adapter: bool
) -> None:
    """`helm upgrade` reads the scaling adapter (else the live group) with lookup: the HPA's count stays,
    other roles follow values. The adapter's count wins: the webhook compares with it."""
    live = live_group(render_chart(values_files=[AUTOSCALE]), encoders=4 if with_adapter else 5)
    served = [live, encoder_adapter(5)] if with_adapter else [live]
    with kube_api_stub(served, tmp_path) as kubeconfig:
        server = ("--dry-run=server", "--kubeconfig", str(kubeconfig), "--disable-openapi-validation")
        upgrade = next(o for o in render_upgrade(any_helm, *server) if o["kind"] == "RoleBasedGroup")
    assert {name: r.get("replicas") for name, r in roles([upgrade]).items()} == {
        "vlm-encoder": 5,
        "vlm-prefill": 1,
        "vlm-decode": 1,
        "sglang-router": 1,
    }
    assert webhook_rejections(live, upgrade, {"vlm-encoder": 5}) == []
    # The same upgrade rendered from values alone is what the webhook refuses:
    fresh = next(o for o in render_chart(values_files=[AUTOSCALE]) if o["kind"] == "RoleBasedGroup")
    assert webhook_rejections(live, fresh, {"vlm-encoder": 5}) == [
        "spec.roles[0].replicas (role 'vlm-encoder'): cannot be changed to 2 while scalingAdapter.enable "
        "is true and the ScalingAdapter has spec.replicas 5"
    ]


def test_upgrade_without_cluster_access_renders_the_values_count(render_chart, helm: HelmRunner) -> None:
    """`helm template --is-upgrade` or a client-side dry run cannot read the cluster: the values' count is
    rendered, never an omitted field, which the CRD would default to 1 and the webhook reject whenever the
    adapter is not at 1 (the GitOps fix is in the chart README, "Upgrades and GitOps")."""
    upgrade = render_upgrade(helm)
    assert roles(upgrade)["vlm-encoder"]["replicas"] == 2
    live = live_group(render_chart(values_files=[AUTOSCALE]), encoders=5)
    rbg = next(o for o in upgrade if o["kind"] == "RoleBasedGroup")
    omitted = json.loads(json.dumps(rbg))
    omitted["spec"]["roles"][0].pop("replicas")
    assert webhook_rejections(live, omitted, {"vlm-encoder": 5}) != []  # what the old chart rendered


def test_keda_scaled_object_targets_the_adapter(render_chart) -> None:
    trigger = {
        "type": "prometheus",
        "metadata": {
            "serverAddress": "http://prometheus.monitoring:9090",
            "query": "sum(rate(sglang:encoder_queue_wait_seconds_sum[1m]))",
            "threshold": "0.2",
        },
    }
    objects = render_chart(
        set_values={
            "encoder.autoscaling": {
                "enabled": True,
                "engine": "keda",
                "minReplicas": 0,
                "keda": {"triggers": [trigger], "cooldownPeriod": 900},
            }
        }
    )
    (scaled,) = of_kind(objects, "ScaledObject").values()
    assert scaled["spec"]["scaleTargetRef"] == {**RBGSA, "name": "sglang-epd-vlm-encoder"}
    assert scaled["spec"]["minReplicaCount"] == 0 and scaled["spec"]["cooldownPeriod"] == 900
    assert scaled["spec"]["triggers"] == [trigger]
    assert not of_kind(objects, "HorizontalPodAutoscaler"), "KEDA makes its own HPA"


# Router discovery -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["epd", "pd", "encoder+collocated", "collocated"])
def test_router_discovery_watches_its_own_pods_with_a_namespaced_role(render_chart, mode: str) -> None:
    objects = render_chart(
        set_values={"mode": mode, "router.discovery.enabled": True, "decode.port": 30000},
        namespace="vlm",
    )
    topology = Topology.from_objects(objects)
    assert check_wiring(topology, objects) == []
    router = topology.role("router")
    assert router is not None
    assert router.flag("--service-discovery-namespace") == ["vlm"]
    assert not {"--prefill", "--decode", "--worker-urls"} & set(router.flags)
    workers = ["prefill", "decode"] if mode in ("epd", "pd") else ["server"]
    for component in workers:
        flag = "--selector" if component == "server" else f"--{component}-selector"
        role = topology.role(component)
        assert role is not None
        assert router.flag(flag) == [f"{GROUP_LABEL}=sglang-epd", f"{ROLE_LABEL}={role.name}"]
    (role_obj,) = of_kind(objects, "Role").values()
    assert role_obj["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
    ]
    assert not of_kind(objects, "ClusterRole") and not of_kind(objects, "ClusterRoleBinding")
    (binding,) = of_kind(objects, "RoleBinding").values()
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "sglang-epd-router", "namespace": "vlm"}
    ]
    spec = router.pod_template["spec"]
    assert spec["serviceAccountName"] == "sglang-epd-router" and spec["automountServiceAccountToken"] is True


# Monitoring -------------------------------------------------------------------------------------------------


def test_a_pod_monitor_per_role_labels_series_as_the_dashboard_expects(render_chart) -> None:
    objects = render_chart(values_files=[AUTOSCALE])
    monitors = of_kind(objects, "PodMonitor")
    topology = Topology.from_objects(objects)
    assert set(monitors) == {f"sglang-epd-{name}" for name in topology.roles}
    for role in topology.roles.values():
        monitor = monitors[f"sglang-epd-{role.name}"]
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert monitor["spec"]["selector"]["matchLabels"] == {
            GROUP_LABEL: "sglang-epd",
            ROLE_LABEL: role.name,
        }
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        ports = {p["name"] for p in role.container["ports"]}
        assert endpoint["port"] in ports and endpoint["port"] == (
            "metrics" if role.component == "router" else "http"
        )
        assert {r["targetLabel"] for r in endpoint["relabelings"]} == {"rbg_group", "role", "component"}


def test_dashboard_config_map_carries_the_dashboard_for_the_sidecar(render_chart) -> None:
    objects = render_chart(
        values_files=[AUTOSCALE],
        set_values={"metrics.grafanaDashboard.namespace": "monitoring"},
    )
    config_map = of_kind(objects, "ConfigMap")["sglang-epd-dashboard"]
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["sglang-epd.json"]) == json.loads(DASHBOARD_PATH.read_text())


# Network policies -------------------------------------------------------------------------------------------


def _peers(policy: dict) -> set[str]:
    return {
        peer["podSelector"]["matchLabels"][ROLE_LABEL]
        for rule in policy["spec"]["ingress"]
        for peer in rule["from"]
        if ROLE_LABEL in peer.get("podSelector", {}).get("matchLabels", {})
    }


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (
            "epd",
            {
                "vlm-encoder": {"vlm-prefill"},
                "vlm-prefill": {"vlm-encoder", "vlm-decode", "sglang-router"},
                "vlm-decode": {"vlm-prefill", "sglang-router"},
            },
        ),
        (
            "pd",
            {"vlm-prefill": {"vlm-decode", "sglang-router"}, "vlm-decode": {"vlm-prefill", "sglang-router"}},
        ),
        (
            "encoder+collocated",
            {"vlm-encoder": {"vlm-server"}, "vlm-server": {"vlm-encoder", "sglang-router"}},
        ),
        ("collocated", {"vlm-server": {"sglang-router"}}),
    ],
)
def test_network_policies_let_in_only_the_roles_that_talk(render_chart, mode: str, expected: dict) -> None:
    """Which roles each policy names; the ports, and what the policies mean together, are computed by
    network-config-analyzer in test_network_connectivity.py."""
    objects = render_chart(set_values={"mode": mode, "networkPolicy.enabled": True})
    all_policies = of_kind(objects, "NetworkPolicy")
    policies = {
        p["spec"]["podSelector"]["matchLabels"][ROLE_LABEL]: p
        for p in all_policies.values()
        if ROLE_LABEL in p["spec"]["podSelector"]["matchLabels"]
    }
    assert set(policies) == {*expected, "sglang-router"}
    assert set(all_policies) - {p["metadata"]["name"] for p in policies.values()} == {"sglang-epd-helm-test"}
    for role, peers in expected.items():
        assert _peers(policies[role]) == peers
    router = policies["sglang-router"]["spec"]["ingress"]
    assert router == [{"from": [{"podSelector": {}}], "ports": [{"port": "http", "protocol": "TCP"}]}]


def test_router_clients_and_metrics_scrapers_by_namespace(render_chart) -> None:
    gateway, monitoring = (
        {"kubernetes.io/metadata.name": "gateway"},
        {"kubernetes.io/metadata.name": "monitoring"},
    )
    objects = render_chart(
        set_values={
            "networkPolicy.enabled": True,
            "networkPolicy.routerClientNamespaces": [gateway],
            "networkPolicy.metricsNamespaces": [monitoring],
        }
    )
    policies = of_kind(objects, "NetworkPolicy")
    clients, scrape = policies["sglang-epd-sglang-router"]["spec"]["ingress"]
    assert clients["from"][0] == {"namespaceSelector": {"matchLabels": gateway}}
    assert clients["from"][1]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "helm-test"
    assert scrape == {
        "from": [{"namespaceSelector": {"matchLabels": monitoring}}],
        "ports": [{"port": "metrics", "protocol": "TCP"}],
    }
    encoder_scrape = policies["sglang-epd-vlm-encoder"]["spec"]["ingress"][-1]
    assert encoder_scrape["ports"] == [{"port": "http", "protocol": "TCP"}]


# Disruption budgets, coordinated updates, security ----------------------------------------------------------


def test_pod_disruption_budget_per_role(render_chart) -> None:
    objects = render_chart(
        set_values={"podDisruptionBudget.enabled": True, "podDisruptionBudget.maxUnavailable": "50%"}
    )
    budgets = of_kind(objects, "PodDisruptionBudget")
    assert set(budgets) == {f"sglang-epd-{name}" for name in roles(objects)}
    for name, budget in budgets.items():
        assert budget["spec"] == {
            "maxUnavailable": "50%",
            "selector": {
                "matchLabels": {GROUP_LABEL: "sglang-epd", ROLE_LABEL: name.removeprefix("sglang-epd-")}
            },
        }


def test_coordinated_policy_is_named_like_the_group_and_pairs_prefill_with_decode(render_chart) -> None:
    objects = render_chart(set_values={"coordinatedPolicy.enabled": True, "fullnameOverride": "vlm"})
    (policy,) = of_kind(objects, "CoordinatedPolicy").values()
    # rolebasedgroup_controller.go handleCoordinationStrategies reads the policy named like the group.
    assert policy["metadata"]["name"] == "vlm"
    assert policy["spec"]["policies"] == [
        {
            "name": "prefill-decode-rollout",
            "roles": ["vlm-prefill", "vlm-decode"],
            "strategy": {"rollingUpdate": {"maxSkew": 1, "maxUnavailable": 1}},
        }
    ]


def _containers(objects: list[dict]) -> dict[str, dict]:
    found = {}
    for name, role in roles(objects).items():
        spec = pod_spec(role)
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            found[f"{name}/{container['name']}"] = container
    for pod in of_kind(objects, "Pod").values():
        found[f"{pod['metadata']['name']}/{pod['spec']['containers'][0]['name']}"] = pod["spec"][
            "containers"
        ][0]
    return found


@pytest.mark.parametrize("rdma", [False, True], ids=["tcp", "rdma"])
def test_least_privilege_by_default(render_chart, rdma: bool) -> None:
    objects = render_chart(set_values={"rdma.enabled": rdma})
    for name, container in _containers(objects).items():
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False and "privileged" not in context, name
        assert context["capabilities"]["drop"] == ["ALL"], name
        sglang = container["name"] == "sglang"
        assert context["capabilities"].get("add", []) == (["IPC_LOCK"] if rdma and sglang else []), name
        assert context["readOnlyRootFilesystem"] is True, name
        # Only IPC_LOCK needs root: Kubernetes gives a non-root process no added capability.
        root = {"runAsUser": 0, "runAsNonRoot": False}
        assert {k: context[k] for k in root if k in context} == (root if rdma and sglang else {}), name
    pods = [pod_spec(r) for r in roles(objects).values()] + [
        p["spec"] for p in of_kind(objects, "Pod").values()
    ]
    for spec in pods:
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"] == {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        }
    assert not of_kind(objects, "ServiceAccount"), "no account without router discovery"


def test_sglang_writes_only_to_its_emptydirs(render_chart) -> None:
    """Read-only root filesystems: SGLang and the model download write to /tmp and HOME (emptyDirs), the
    weights are mounted read-only where SGLang runs (tests/fidelity/test_non_root.py runs real SGLang so)."""
    for name, role in roles(render_chart()).items():
        spec = pod_spec(role)
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            if container["name"] not in ("sglang", "model-download"):
                assert "volumeMounts" not in container or all(
                    m.get("readOnly") for m in container["volumeMounts"]
                )
                continue
            writable = {m["mountPath"]: m["name"] for m in container["volumeMounts"] if not m.get("readOnly")}
            env = {e["name"]: e.get("value") for e in container["env"]}
            expected = {"/tmp": "tmp", "/home/sglang": "home"}
            if container["name"] == "sglang":
                expected["/dev/shm"] = "dshm"
            else:
                expected["/models"] = "model"  # the download's target
            assert writable == expected, (name, container["name"])
            assert env["HOME"] == "/home/sglang"
            assert all("emptyDir" in volumes[v] for v in writable.values())
            assert volumes["tmp"]["emptyDir"] == {"sizeLimit": "16Gi"}


@pytest.mark.parametrize("host_network", [False, True])
def test_network_policies_pin_the_ports_they_admit(render_chart, host_network: bool) -> None:
    """SGLang's random ZMQ ports come from the pod's ip_local_port_range, set to the admitted range;
    Mooncake's from MC_MIN_RPC_PORT..MC_MAX_RPC_PORT. A host-network pod has no sysctls of its own (and no
    policy)."""
    objects = render_chart(
        set_values={
            "networkPolicy.enabled": True,
            "networkPolicy.ephemeralPorts": {"start": 40000, "end": 50000},
            "rdma.enabled": host_network,
            "rdma.hostNetwork": host_network,
        }
    )
    for name, role in roles(objects).items():
        spec = pod_spec(role)
        sysctls = spec["securityContext"].get("sysctls")
        if host_network:
            assert sysctls is None, name
        else:
            assert sysctls == [{"name": "net.ipv4.ip_local_port_range", "value": "40000 50000"}], name
        if name == "sglang-router":
            continue
        env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
        uses_mooncake = name in ("vlm-prefill", "vlm-decode")  # PD over mooncake_tcp; encoders use ZMQ
        assert (env.get("MC_MIN_RPC_PORT"), env.get("MC_MAX_RPC_PORT")) == (
            ("15000", "17000") if uses_mooncake else (None, None)
        ), name


def test_privileged_only_by_explicit_value_and_only_sglang(render_chart) -> None:
    objects = render_chart(set_values={"security.privileged": True, "rdma.enabled": True})
    for name, container in _containers(objects).items():
        assert container["securityContext"].get("privileged", False) == name.endswith("/sglang"), name
