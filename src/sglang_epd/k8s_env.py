"""What a container's environment and argv look like once Kubernetes and RBG have filled them in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


def expand(text: str, env: Mapping[str, str]) -> str:
    """Expand `$(VAR)` the way the kubelet does in command, args and env values: a defined VAR is replaced
    by its value, `$$` is a literal `$` (so `$$(VAR)` stays `$(VAR)`), an undefined `$(VAR)` or an
    unterminated `$(` is left as written, and any other `$x` is kept."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$" or i + 1 >= len(text):
            out.append(char)
            i += 1
            continue
        following = text[i + 1]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "(":
            close = text.find(")", i + 2)
            if close == -1:
                out.append("$(")
                i += 2
            else:
                name = text[i + 2 : close]
                out.append(env.get(name, f"$({name})"))
                i = close + 1
        else:
            out.append("$" + following)
            i += 2
    return "".join(out)


def expand_all(argv: list[str], env: Mapping[str, str]) -> list[str]:
    return [expand(token, env) for token in argv]


@dataclass(frozen=True)
class PodIdentity:
    """What the API server and the RBG controller know about one pod."""

    group: str
    role: str
    index: int
    ip: str
    namespace: str = "default"

    @property
    def name(self) -> str:
        return f"{self.group}-{self.role}-{self.index}"

    def rbg_env(self) -> dict[str, str]:
        # Injected by RBG into every container (standalone pattern, RoleInstanceSet workload).
        return {
            "RBG_GROUP_NAME": self.group,
            "RBG_ROLE_NAME": self.role,
            "RBG_ROLE_INDEX": str(self.index),
            "RBG_ROLE_INSTANCE_NAME": self.name,
            "RBG_COMPONENT_NAME": self.role,
            "RBG_COMPONENT_INDEX": "0",
        }

    def field(self, path: str) -> str | None:
        return {
            "status.podIP": self.ip,
            "status.hostIP": self.ip,
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
        }.get(path)


class UnresolvableEnvError(ValueError):
    pass


def container_env(container: Mapping, pod: PodIdentity, strict: bool = True) -> dict[str, str]:
    """The container's environment as Kubernetes builds it: RBG's variables, then the declared `env`
    in order, each value expanded against the variables defined before it. A value from a Secret or
    ConfigMap cannot be known here: an error when `strict`, else left undefined."""
    env = pod.rbg_env()
    for entry in container.get("env", []):
        name = entry["name"]
        if "value" in entry:
            env[name] = expand(str(entry["value"]), env)
            continue
        source = entry.get("valueFrom", {})
        field = source.get("fieldRef", {}).get("fieldPath")
        value = pod.field(field) if field else None
        if value is None:
            if not strict:
                continue
            raise UnresolvableEnvError(
                f"{pod.name}: env {name} comes from {source}, which a local run cannot provide"
            )
        env[name] = value
    return env
