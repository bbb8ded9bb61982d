"""The connectivity the chart's NetworkPolicies allow, computed by network-config-analyzer (nca) for the
pods RBG makes of the rendered group and a few pods around it, and read back as a matrix of flows."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..render import REPO_ROOT
from ..validation import RBG_KIND
from .rbg_pods import role_pods

NCA_ENV = "SGLANG_EPD_NCA"
# requirements/nca.txt, installed by `make scanners`.
DEFAULT_NCA = REPO_ROOT / ".venv-nca" / "bin" / "nca"
COMPONENT_LABEL = "app.kubernetes.io/component"
NAMESPACE_LABEL = "kubernetes.io/metadata.name"
OUTSIDE = "outside"  # any IP address outside the cluster's pods (nca prints IP ranges)
ALL_PORTS = (1, 65535)


def find_nca() -> Path | None:
    """$SGLANG_EPD_NCA, else the project's .venv-nca; None when neither is there."""
    candidate = Path(os.environ.get(NCA_ENV) or DEFAULT_NCA)
    return candidate if os.access(candidate, os.X_OK) else None


# A connection set: protocol -> sorted, merged port ranges (inclusive).
Connections = dict[str, tuple[tuple[int, int], ...]]
ALL_CONNECTIONS: Connections = {"TCP": (ALL_PORTS,), "UDP": (ALL_PORTS,), "SCTP": (ALL_PORTS,)}


def connections(**protocols: Iterable[int | tuple[int, int]]) -> Connections:
    """connections(TCP=[8000, (32768, 60999)], UDP=[53]): ports or inclusive ranges per protocol."""
    result: Connections = {}
    for protocol, ports in protocols.items():
        ranges = sorted((p, p) if isinstance(p, int) else p for p in ports)
        merged: list[tuple[int, int]] = []
        for low, high in ranges:
            if merged and low <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(high, merged[-1][1]))
            else:
                merged.append((low, high))
        if merged:
            result[protocol] = tuple(merged)
    return result


def merge(*sets: Connections) -> Connections:
    protocols: dict[str, list[tuple[int, int]]] = {}
    for one in sets:
        for protocol, ranges in one.items():
            protocols.setdefault(protocol, []).extend(ranges)
    return connections(**protocols)


def describe(conns: Connections) -> str:
    if conns == ALL_CONNECTIONS:
        return "all"
    return "; ".join(
        f"{protocol} "
        + ",".join(str(a) if a == b else ("any" if (a, b) == ALL_PORTS else f"{a}-{b}") for a, b in ranges)
        for protocol, ranges in sorted(conns.items())
    )


_GROUP = re.compile(r"\{protocols:([A-Z, ]+?)(?:,dst_ports:([0-9,\-]+))?\}")


def parse_connections(text: str) -> Connections:
    """nca's `All connections` or `{protocols:TCP,dst_ports:8997,32768-60999}` groups (`;`-separated)."""
    text = text.strip()
    if text == "All connections":
        return dict(ALL_CONNECTIONS)
    protocols: dict[str, list[tuple[int, int]]] = {}
    for match in _GROUP.finditer(text):
        ports = [ALL_PORTS]
        if match.group(2):
            ports = [
                (int(part.split("-")[0]), int(part.split("-")[-1])) for part in match.group(2).split(",")
            ]
        for protocol in match.group(1).split(","):
            protocols.setdefault(protocol.strip(), []).extend(ports)
    if not protocols:
        raise ValueError(f"nca printed a connection this parser does not know: {text!r}")
    return connections(**protocols)


@dataclass(frozen=True)
class Probe:
    """A pod placed beside the group to see who may reach whom: its identity, namespace and labels."""

    identity: str
    namespace: str
    labels: Mapping[str, str]


def cluster_inputs(
    objects: Iterable[dict], namespace: str, probes: Iterable[Probe]
) -> tuple[list[dict], list[dict], list[dict], dict[str, str]]:
    """(policies, pods, namespaces, identity of every pod) for nca: every replica of every role as RBG
    makes it, the chart's other pods (the helm test), and the probes."""
    policies, pods = [], []
    identities: dict[str, str] = {}
    for obj in objects:
        if obj.get("kind") == "NetworkPolicy":
            policies.append(obj)
        elif obj.get("kind") == RBG_KIND:
            pods += role_pods(obj, namespace, all_replicas=True)
        elif obj.get("kind") == "Pod":
            pods.append({**obj, "metadata": {**obj["metadata"], "namespace": namespace}})
    for pod in pods:
        identities[f"{namespace}/{pod['metadata']['name']}"] = pod["metadata"]["labels"][COMPONENT_LABEL]
    for probe in probes:
        name = f"probe-{probe.identity}"
        pods.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": probe.namespace, "labels": dict(probe.labels)},
                "spec": {"containers": [{"name": "probe", "image": "probe"}]},
            }
        )
        identities[f"{probe.namespace}/{name}"] = probe.identity
    namespace_names = sorted({namespace, *(pod["metadata"]["namespace"] for pod in pods)})
    namespaces = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": {NAMESPACE_LABEL: n}}}
        for n in namespace_names
    ]
    return policies, pods, namespaces, identities


def connectivity(
    nca: Path, policies: list[dict], pods: list[dict], namespaces: list[dict]
) -> dict[tuple[str, str], Connections]:
    """nca's connectivity map, pod to pod ("namespace/name") and to OUTSIDE, as parsed connection sets."""
    with tempfile.TemporaryDirectory(prefix="sglang-epd-nca-") as tmp:
        folder = Path(tmp)
        files = {
            "policies.yaml": yaml.safe_dump_all(policies),
            "pods.yaml": yaml.safe_dump({"apiVersion": "v1", "kind": "PodList", "items": pods}),
            "namespaces.yaml": yaml.safe_dump(
                {"apiVersion": "v1", "kind": "NamespaceList", "items": namespaces}
            ),
        }
        for name, text in files.items():
            (folder / name).write_text(text)
        result = subprocess.run(
            [
                str(nca),
                "--connectivity",
                str(folder / "policies.yaml"),
                "--pod_list",
                str(folder / "pods.yaml"),
                "--ns_list",
                str(folder / "namespaces.yaml"),
                "--output_format",
                "txt_no_fw_rules",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    flows: dict[tuple[str, str], Connections] = {}
    for line in result.stdout.splitlines():
        if " => " not in line or " : " not in line:
            continue
        pair, _, conns = line.partition(" : ")
        source, _, target = (_endpoint(end) for end in pair.partition(" => "))
        flows[(source, target)] = merge(flows.get((source, target), {}), parse_connections(conns))
    if not flows:
        raise RuntimeError(
            f"nca ({nca}) exited {result.returncode} without a connectivity map:\n"
            f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        )
    return flows


def _endpoint(text: str) -> str:
    text = text.strip()
    return text.removesuffix("[Pod]") if text.endswith("[Pod]") else OUTSIDE


def by_identity(
    flows: Mapping[tuple[str, str], Connections], identities: Mapping[str, str]
) -> dict[tuple[str, str], Connections]:
    """The pod-to-pod map folded onto identities (role components, probes, OUTSIDE). Replicas of a role
    must agree: a pair whose pods disagree raises, naming them."""
    folded: dict[tuple[str, str], tuple[Connections, tuple[str, str]]] = {}
    endpoints = [*identities, OUTSIDE]
    for source in endpoints:
        for target in endpoints:
            if source == target:
                continue
            key = (identities.get(source, OUTSIDE), identities.get(target, OUTSIDE))
            conns = flows.get((source, target), {})
            if key in folded and folded[key][0] != conns:
                seen, (seen_source, seen_target) = folded[key]
                raise AssertionError(
                    f"{source} -> {target} allows {describe(conns) or 'nothing'} but "
                    f"{seen_source} -> {seen_target} allows {describe(seen) or 'nothing'}"
                )
            folded.setdefault(key, (conns, (source, target)))
    return {key: conns for key, (conns, _pods) in folded.items() if conns}
