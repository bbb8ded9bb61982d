"""The connectivity the rendered NetworkPolicies allow, computed by network-config-analyzer for every mode
and encoder discovery, must equal the intended matrix below, written once from SGLang 0.5.23's sources:
who opens which connection to whom (the flows are cited in the chart's `sglang-epd.flows` helper)."""

from __future__ import annotations

import itertools

import pytest

from sglang_epd.render import EXAMPLES_DIR
from sglang_epd.security.connectivity import (
    OUTSIDE,
    Connections,
    Probe,
    by_identity,
    cluster_inputs,
    connections,
    connectivity,
    describe,
    find_nca,
)

from .matrix import MODES

NAMESPACE = "vlm"
GATEWAY, MONITORING, OTHER = "gateway", "monitoring", "other"
EPHEMERAL = (32768, 60999)  # networkPolicy.ephemeralPorts: the kernel's range for zmq bind_to_random_port
MOONCAKE = (15000, 17000)  # networkPolicy.mooncakePorts: Mooncake's MC_MIN_RPC_PORT..MC_MAX_RPC_PORT
# A pod in the release namespace, one in an allowed client namespace, one elsewhere, a metrics scraper,
# and cluster DNS.
PROBES = (
    Probe("neighbour", NAMESPACE, {"app": "neighbour"}),
    Probe("gateway", GATEWAY, {"app": "gateway"}),
    Probe("stranger", OTHER, {"app": "stranger"}),
    Probe("scraper", MONITORING, {"app": "prometheus"}),
    Probe("dns", "kube-system", {"k8s-app": "kube-dns"}),
)
BASE = {
    "networkPolicy.enabled": True,
    "networkPolicy.routerClientNamespaces": [{"kubernetes.io/metadata.name": GATEWAY}],
    "networkPolicy.metricsNamespaces": [{"kubernetes.io/metadata.name": MONITORING}],
}
VARIANTS: dict[str, dict[str, object]] = {
    "default": {},
    "release-namespace-clients": {"networkPolicy.routerClientNamespaces": []},
    "nixl": {"disaggregation.transferBackend": "nixl"},
    "mooncake-rdma": {
        "rdma.enabled": True,
        "disaggregation.transferBackend": "mooncake",
        "encoderDiscovery.transferBackend": "mooncake",
    },
    "router-discovery": {"router.discovery.enabled": True, "decode.port": 30000},
    "pvc-model-no-metrics": {
        "model.source": "pvc",
        "model.pvc.claimName": "weights",
        "metrics.enabled": False,
    },
    "ingress-only": {"networkPolicy.egress.enabled": False},
    "no-external": {"networkPolicy.egress.external.cidrs": []},
    "custom-ports": {
        "encoder.port": 40002,
        "prefill.port": 40000,
        "decode.port": 40001,
        "server.port": 40003,
        "router.port": 9000,
        "encoderDiscovery.bootstrapPort": 9997,
        "disaggregation.bootstrapPort": 9998,
    },
}
CHART_DEFAULTS = {
    "encoder.port": 30002,
    "prefill.port": 30000,
    "decode.port": 30001,
    "server.port": 30000,
    "router.port": 8000,
    "router.metricsPort": 29000,
    "encoderDiscovery.bootstrapPort": 8997,
    "disaggregation.bootstrapPort": 8998,
    "disaggregation.transferBackend": "mooncake_tcp",
    "encoderDiscovery.transferBackend": "auto",
    "model.source": "huggingface",
    "metrics.enabled": True,
    "router.discovery.enabled": False,
    "networkPolicy.egress.enabled": True,
    "networkPolicy.egress.external.cidrs": ["0.0.0.0/0"],
    "networkPolicy.routerClientNamespaces": [{}],
}


def tcp(*ports: int | tuple[int, int]) -> Connections:
    return connections(TCP=ports)


def intended(mode: str, values: dict[str, object]) -> dict[tuple[str, str], Connections]:
    """Who may open which connection to whom, and nothing else (pairs between the probes aside)."""
    v = {**CHART_DEFAULTS, **values}
    roles = MODES[mode]
    port = {role: int(v[f"{role}.port"]) for role in roles}  # type: ignore[arg-type]
    language = {"epd": "prefill", "encoder+collocated": "server"}.get(mode)
    flows: dict[tuple[str, str], Connections] = {}

    def allow(source: str, target: str, conns: Connections) -> None:
        flows[(source, target)] = conns

    clients = ["gateway"] if v["networkPolicy.routerClientNamespaces"] else ["neighbour"]
    for client in [*clients, "helm-test"]:
        allow(client, "router", tcp(port["router"]))
    if v["metrics.enabled"]:
        for role in roles:
            allow("scraper", role, tcp(int(v["router.metricsPort"]) if role == "router" else port[role]))  # type: ignore[arg-type]
    for role in ("prefill", "decode", "server"):
        if role in roles:
            allow("router", role, tcp(port[role]))
    if language:
        # /encode, /scheduler_receive_url, /send; the bootstrap server's /health probes; the watcher.
        allow(language, "encoder", tcp(port["encoder"]))
        # Registration with the EncoderBootstrapServer; embeddings pushed to the prefill's random ZMQ ports
        # (and Mooncake writes by the encoder).
        to_language = [int(v["encoderDiscovery.bootstrapPort"]), EPHEMERAL]  # type: ignore[arg-type]
        if v["encoderDiscovery.transferBackend"] == "mooncake":
            to_language.append(MOONCAKE)
        allow("encoder", language, tcp(*to_language))
    if "decode" in roles:
        if v["disaggregation.transferBackend"] == "nixl":
            allow("decode", "prefill", tcp((1, 65535)))
            allow("prefill", "decode", tcp((1, 65535)))
        else:
            # PD bootstrap (/route, /query_dp_ranks, heartbeats), re-bootstrap /generate, ZMQ rank_port.
            allow(
                "decode", "prefill", tcp(int(v["disaggregation.bootstrapPort"]), port["prefill"], EPHEMERAL)
            )  # type: ignore[arg-type]
            # KV status to the decode's ZMQ rank_port; Mooncake's writes of the KV cache.
            allow("prefill", "decode", tcp(EPHEMERAL, MOONCAKE))
    if not v["networkPolicy.egress.enabled"]:
        # Egress stays open: the group's pods reach every pod outside it and everything outside the cluster.
        for source in [*roles, "helm-test"]:
            for target in ["neighbour", "gateway", "stranger", "scraper", "dns", OUTSIDE]:
                allow(source, target, connections(TCP=[(1, 65535)], UDP=[(1, 65535)], SCTP=[(1, 65535)]))
        return flows
    for source in [*roles, "helm-test"]:
        allow(source, "dns", connections(TCP=[53], UDP=[53]))
    if v["networkPolicy.egress.external.cidrs"]:
        for role in roles:
            fetches_images = role in ("encoder", "prefill", "server")
            if role != "router" and (fetches_images or v["model.source"] == "huggingface"):
                allow(role, OUTSIDE, tcp(80, 443))
    if v["router.discovery.enabled"]:
        allow("router", OUTSIDE, tcp(443, 6443))
    return flows


CASES = [
    (mode, discovery, variant)
    for mode, discovery, variant in itertools.product(MODES, ("dynamic", "static"), VARIANTS)
    if not (variant == "nixl" and "decode" not in MODES[mode])
]
PROBE_IDS = {probe.identity for probe in PROBES}


@pytest.fixture(scope="session")
def nca_path():
    path = find_nca()
    if path is None:
        pytest.skip(
            "network-config-analyzer is not installed: `make scanners` puts nca 2.1.0 into .venv-nca "
            "(or set SGLANG_EPD_NCA to an nca executable)"
        )
    return path


def _allowed(objects: list[dict], nca_path) -> dict[tuple[str, str], Connections]:
    policies, pods, namespaces, identities = cluster_inputs(objects, NAMESPACE, PROBES)
    folded = by_identity(connectivity(nca_path, policies, pods, namespaces), identities)
    # Between the probes and the outside nothing is the chart's business.
    return {(s, t): c for (s, t), c in folded.items() if not ({s, t} <= PROBE_IDS | {OUTSIDE})}


def _table(flows: dict[tuple[str, str], Connections]) -> str:
    return "\n".join(f"  {s:>10} -> {t:<10} {describe(c)}" for (s, t), c in sorted(flows.items()))


def _assert_matrix(allowed, expected, case: str) -> None:
    wrong = {
        pair: (allowed.get(pair, {}), expected.get(pair, {}))
        for pair in set(allowed) | set(expected)
        if allowed.get(pair, {}) != expected.get(pair, {})
    }
    assert not wrong, (
        f"{case}: connectivity differs from the intended matrix:\n"
        + "\n".join(
            f"  {s} -> {t}: nca says {describe(a) or 'nothing'}, intended {describe(e) or 'nothing'}"
            for (s, t), (a, e) in sorted(wrong.items())
        )
        + f"\nnca's whole matrix:\n{_table(allowed)}"
    )


@pytest.mark.parametrize(("mode", "discovery", "variant"), CASES, ids=lambda p: str(p))
def test_connectivity_is_the_intended_matrix(mode, discovery, variant, render_chart, nca_path) -> None:
    values = {**BASE, "mode": mode, "encoderDiscovery.mode": discovery, **VARIANTS[variant]}
    objects = render_chart(namespace=NAMESPACE, set_values=values)
    _assert_matrix(_allowed(objects, nca_path), intended(mode, values), f"{mode}/{discovery}/{variant}")


def test_kep_example_matrix(render_chart, nca_path, capsys: pytest.CaptureFixture[str]) -> None:
    """The KEP example with network policies on; prints the table for the chart README."""
    objects = render_chart(
        namespace=NAMESPACE, values_files=[EXAMPLES_DIR / "qwen2.5-vl-7b-epd.yaml"], set_values=BASE
    )
    allowed = _allowed(objects, nca_path)
    _assert_matrix(
        allowed, intended("epd", {**BASE, "encoder.port": 30002, "decode.port": 30001}), "KEP example"
    )
    with capsys.disabled():
        print(f"\nnca 2.1.0 connectivity, KEP example with network policies:\n{_table(allowed)}")
