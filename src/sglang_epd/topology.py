"""The deployment's topology, read from the rendered RoleBasedGroup (never re-derived from values).

Pod names follow the RBG standalone pattern: pod i of role R in group G is `G-R-i`, its hostname is
the pod name and its subdomain the role's headless Service `s-G-R`, so its stable DNS name is
`G-R-i.s-G-R` within the namespace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

RBG_API_VERSION = "workloads.x-k8s.io/v1alpha2"
COMPONENT_LABEL = "app.kubernetes.io/component"
# Set by the RBG controller on every pod it creates.
GROUP_LABEL = "rbg.workloads.x-k8s.io/group-name"
ROLE_LABEL = "rbg.workloads.x-k8s.io/role-name"
# The encoder pod's sidecar that registers it with the language servers (files/encoder-registrar.py).
REGISTRAR_CONTAINER = "registrar"
# The language-server pod's sidecar that unregisters encoders that stopped accepting connections.
WATCHER_CONTAINER = "encoder-watcher"


class TopologyError(ValueError):
    pass


def container_argv(container: dict) -> list[str]:
    """A container's command followed by its args: the argv it runs."""
    return [*container.get("command", []), *container.get("args", [])]


def parse_flags(argv: list[str]) -> dict[str, list[list[str]]]:
    """`--flag v1 v2 --switch` -> {"--flag": [["v1", "v2"]], "--switch": [[]]}; a repeated flag keeps
    every occurrence (the router takes one `--prefill URL PORT` per prefill pod)."""
    flags: dict[str, list[list[str]]] = {}
    current: list[str] | None = None
    for token in argv:
        if token.startswith("--"):
            name, _, inline = token.partition("=")
            current = [inline] if inline else []
            flags.setdefault(name, []).append(current)
        elif current is None:
            raise TopologyError(f"argument {token!r} comes before any flag in {argv}")
        else:
            current.append(token)
    return flags


@dataclass(frozen=True)
class Pod:
    role: str
    index: int
    name: str
    host: str


@dataclass
class Role:
    name: str
    component: str
    replicas: int
    dependencies: list[str]
    pod_template: dict
    group: str
    pods: list[Pod] = field(init=False)

    def __post_init__(self) -> None:
        service = f"s-{self.group}-{self.name}"
        self.pods = [
            Pod(self.name, i, f"{self.group}-{self.name}-{i}", f"{self.group}-{self.name}-{i}.{service}")
            for i in range(self.replicas)
        ]

    @property
    def container(self) -> dict:
        return self.pod_template["spec"]["containers"][0]

    @property
    def argv(self) -> list[str]:
        return container_argv(self.container)

    @property
    def flags(self) -> dict[str, list[list[str]]]:
        return parse_flags(self.container.get("args", []))

    def flag(self, name: str) -> list[str] | None:
        """Values of a flag that occurs once (None when absent)."""
        occurrences = self.flags.get(name)
        if occurrences is None:
            return None
        if len(occurrences) != 1:
            raise TopologyError(f"{name} occurs {len(occurrences)} times in role {self.name}")
        return occurrences[0]

    def sidecar(self, name: str) -> dict | None:
        """Another container of the pod template, by name (e.g. the encoder's `registrar`)."""
        return next((c for c in self.pod_template["spec"]["containers"][1:] if c.get("name") == name), None)

    @property
    def registrar_flags(self) -> dict[str, list[list[str]]] | None:
        """Flags of the encoder registrar (`python3 encoder-registrar.py run --port ...`), or None."""
        registrar = self.sidecar(REGISTRAR_CONTAINER)
        return None if registrar is None else parse_flags(container_argv(registrar)[3:])

    def registrar_urls(self) -> list[str]:
        """The bootstrap URLs the registrar registers this encoder with (empty when it resolves a Service)."""
        return [url for values in (self.registrar_flags or {}).get("--bootstrap-urls", []) for url in values]

    @property
    def port(self) -> int:
        return int((self.flag("--port") or ["30000"])[0])

    def gpus(self, resource_name: str = "nvidia.com/gpu") -> int:
        limits = self.container.get("resources", {}).get("limits", {})
        return int(limits.get(resource_name, 0))


@dataclass
class Topology:
    group: str
    namespace: str | None
    roles: dict[str, Role]

    @classmethod
    def from_objects(cls, objects: list[dict]) -> Topology:
        groups = [o for o in objects if o.get("kind") == "RoleBasedGroup"]
        if len(groups) != 1:
            raise TopologyError(f"expected one RoleBasedGroup in the rendered chart, found {len(groups)}")
        rbg = groups[0]
        if rbg.get("apiVersion") != RBG_API_VERSION:
            raise TopologyError(
                f"RoleBasedGroup has apiVersion {rbg.get('apiVersion')}, want {RBG_API_VERSION}"
            )
        group = rbg["metadata"]["name"]
        roles = {}
        for spec in rbg["spec"]["roles"]:
            template = spec["standalonePattern"]["template"]
            roles[spec["name"]] = Role(
                name=spec["name"],
                component=template["metadata"]["labels"][COMPONENT_LABEL],
                replicas=spec.get("replicas", 1),
                dependencies=list(spec.get("dependencies", [])),
                pod_template=template,
                group=group,
            )
        return cls(group=group, namespace=rbg["metadata"].get("namespace"), roles=roles)

    def language_roles(self) -> list[Role]:
        """Roles running `--language-only`: the servers encoders send embeddings to (and register with)."""
        return [r for r in self.roles.values() if "--language-only" in r.flags]

    def role(self, component: str) -> Role | None:
        """The role with this app.kubernetes.io/component (encoder, prefill, decode, server, router)."""
        matches = [r for r in self.roles.values() if r.component == component]
        return matches[0] if matches else None

    def pod_by_host(self, host: str) -> Pod | None:
        for role in self.roles.values():
            for pod in role.pods:
                if pod.host == host:
                    return pod
        return None

    def resolve_url(self, url: str) -> tuple[Role, Pod, int]:
        """The role, pod and port a URL in some argv addresses; TopologyError when it names no pod."""
        parts = urlsplit(url)
        pod = self.pod_by_host(parts.hostname or "")
        if pod is None:
            known = ", ".join(p.host for r in self.roles.values() for p in r.pods)
            raise TopologyError(f"{url} names no pod of the group (pods: {known})")
        if parts.port is None:
            raise TopologyError(f"{url} has no port")
        return self.roles[pod.role], pod, parts.port


def describe(topology: Topology) -> str:
    """A plain-text summary: roles in start-up order, their pods' DNS names and the URLs they are given."""
    lines = [f"RoleBasedGroup {topology.group}"]
    for role in topology.roles.values():
        depends = f"  (after {', '.join(role.dependencies)})" if role.dependencies else ""
        gpus = f", {role.gpus()} GPU(s) each" if role.component != "router" else ""
        lines.append(f"  {role.name} [{role.component}] x{role.replicas}, port {role.port}{gpus}{depends}")
        lines += [f"    pod {pod.host}" for pod in role.pods]
        if role.registrar_urls():
            lines.append(f"    registrar --bootstrap-urls {' '.join(role.registrar_urls())}")
        for flag, occurrences in role.flags.items():
            for values in occurrences:
                if any(v.startswith(("http://", "https://")) for v in values):
                    lines.append(f"    {flag} {' '.join(values)}")
    return "\n".join(lines)
