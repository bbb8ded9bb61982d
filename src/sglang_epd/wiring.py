"""Checks that the rendered roles are wired to each other the way SGLang and RBG need.

Every check reads the rendered objects only, so a wiring mistake in the chart (a DNS name RBG never
creates, a port another role does not listen on, a dependency pointing the wrong way) is found without
a cluster. Each problem is one sentence naming the role, the flag and what was expected.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from .topology import (
    GROUP_LABEL,
    REGISTRAR_CONTAINER,
    ROLE_LABEL,
    WATCHER_CONTAINER,
    Role,
    Topology,
    TopologyError,
    container_argv,
    parse_flags,
)

SGLANG_COMPONENTS = ("encoder", "prefill", "decode", "server")
URL_SCHEMES = ("http://", "https://")
# The discovering router reads each prefill pod's bootstrap port from this annotation (sglang-router).
BOOTSTRAP_PORT_ANNOTATION = "sglang.ai/bootstrap-port"


def check_wiring(topology: Topology, objects: list[dict], gpu_resource: str = "nvidia.com/gpu") -> list[str]:
    problems: list[str] = []
    for role in topology.roles.values():
        problems += _check_argv_tokens(role)
        problems += _check_dependencies_exist(topology, role)
        if role.component in SGLANG_COMPONENTS:
            problems += _check_sglang_pod(role, gpu_resource)
            problems += _check_flag_combinations(role)
    problems += _check_urls(topology)
    problems += _check_discovery_direction(topology)
    problems += _check_pd(topology)
    problems += _check_router_service(topology, objects)
    return problems


def _check_argv_tokens(role: Role) -> list[str]:
    # Kubernetes passes each list element as one argv entry: "--port 30000" would be one unknown flag.
    # Values may hold spaces (a JSON argument, say); flags never do.
    return [
        f"{role.name}: argv element {token!r} glues a flag to its value; use two elements"
        for token in role.argv
        if not isinstance(token, str) or (token.startswith("-") and token.split() != [token])
    ]


def _check_dependencies_exist(topology: Topology, role: Role) -> list[str]:
    problems = []
    for dependency in role.dependencies:
        if dependency == role.name:
            problems.append(f"{role.name}: depends on itself")
        elif dependency not in topology.roles:
            problems.append(f"{role.name}: depends on {dependency!r}, which is not a role of the group")
    return problems


def _check_sglang_pod(role: Role, gpu_resource: str) -> list[str]:
    problems = []
    container = role.container
    if role.flag("--host") != ["0.0.0.0"]:
        problems.append(f"{role.name}: --host must be 0.0.0.0 (SGLang listens on 127.0.0.1 by default)")
    tp_size = int((role.flag("--tp-size") or ["1"])[0])
    if role.gpus(gpu_resource) != tp_size:
        problems.append(f"{role.name}: {role.gpus(gpu_resource)} x {gpu_resource} for --tp-size {tp_size}")
    host_ip = [e for e in container.get("env", []) if e.get("name") == "SGLANG_HOST_IP"]
    if [e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in host_ip] != ["status.podIP"]:
        problems.append(f"{role.name}: SGLANG_HOST_IP must come from status.podIP")
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    if ports.get("http") != role.port:
        problems.append(f"{role.name}: container port 'http' is {ports.get('http')}, --port is {role.port}")
    for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = container.get(probe_name, {}).get("httpGet", {})
        if (get.get("path"), get.get("port")) != ("/health", "http"):
            problems.append(f"{role.name}: {probe_name} must GET /health on port http")
    if not _has_memory_shm(role):
        problems.append(f"{role.name}: /dev/shm must be a memory-backed emptyDir")
    return problems


def _has_memory_shm(role: Role) -> bool:
    mounts = {m["name"]: m["mountPath"] for m in role.container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in role.pod_template["spec"].get("volumes", [])}
    return any(
        path == "/dev/shm" and volumes.get(name, {}).get("emptyDir", {}).get("medium") == "Memory"
        for name, path in mounts.items()
    )


def _check_flag_combinations(role: Role) -> list[str]:
    # Start-up checks SGLang applies in ServerArgs (facts: sglang-epd.md, EPD flags).
    flags = role.flags
    problems = []
    if "--encoder-only" in flags and ("--language-only" in flags or "--disaggregation-mode" in flags):
        problems.append(
            f"{role.name}: --encoder-only cannot be combined with --language-only/--disaggregation-mode"
        )
    if "--enable-prefix-mm-cache" in flags and "--encoder-only" not in flags:
        problems.append(f"{role.name}: --enable-prefix-mm-cache is only valid with --encoder-only")
    duplicated = [name for name, occurrences in flags.items() if len(occurrences) > 1]
    if duplicated and role.component != "router":
        problems.append(f"{role.name}: flags given more than once: {duplicated}")
    return problems


def _url_occurrences(role: Role) -> Iterator[tuple[str, list[str]]]:
    """Every flag's values in the role's argv, and in its registrar sidecar's (`--bootstrap-urls`)."""
    for flags in (role.flags, role.registrar_flags or {}):
        for flag, occurrences in flags.items():
            for values in occurrences:
                yield flag, values


def _check_urls(topology: Topology) -> list[str]:
    """Every URL in any argv names an existing pod and a port that pod's role listens on for that flag."""
    problems = []
    for role in topology.roles.values():
        for flag, values in _url_occurrences(role):
            for url in (v for v in values if v.startswith(URL_SCHEMES)):
                try:
                    target, _pod, port = topology.resolve_url(url)
                except TopologyError as error:
                    problems.append(f"{role.name} {flag}: {error}")
                    continue
                expected = _expected_target(flag, target)
                if expected is None:
                    problems.append(
                        f"{role.name} {flag}: {url} points at role {target.name} ({target.component})"
                    )
                elif port != expected:
                    problems.append(
                        f"{role.name} {flag}: {url} uses port {port}, {target.name} listens on {expected}"
                    )
    return problems


def _expected_target(flag: str, target: Role) -> int | None:
    """The port a URL given with this flag must use on the target role, or None for a wrong target."""
    if flag == "--bootstrap-urls":  # the encoder registrar's: a language server's EncoderBootstrapServer
        bootstrap = target.flag("--encoder-bootstrap-port")
        return int(bootstrap[0]) if bootstrap and "--language-only" in target.flags else None
    wanted_component = {
        "--encoder-urls": "encoder",
        "--prefill": "prefill",
        "--decode": "decode",
        "--worker-urls": "server",
    }.get(flag)
    return target.port if wanted_component == target.component else None


def _urls_of(role: Role, flag: str) -> list[str]:
    return [
        v
        for name, values in _url_occurrences(role)
        if name == flag
        for v in values
        if v.startswith(URL_SCHEMES)
    ]


def _one_url_per_pod(owner: Role, flag: str, target: Role) -> list[str]:
    hosts = Counter(url.split("//", 1)[1].split(":", 1)[0] for url in _urls_of(owner, flag))
    expected = Counter(pod.host for pod in target.pods)
    if hosts != expected:
        return [
            f"{owner.name} {flag}: lists {sorted(hosts.elements())}, want each pod of {target.name} "
            f"once: {sorted(expected.elements())}"
        ]
    return []


def _check_discovery_direction(topology: Topology) -> list[str]:
    """Static: language servers list the encoders and wait for them (an RBG dependency). Dynamic: each
    encoder pod's registrar registers it with every language server, and the encoder role neither depends
    on a role nor is depended on (RBG re-checks dependencies on every reconcile: docs/rbg-rules.md)."""
    encoder = topology.role("encoder")
    problems = []
    for language in topology.language_roles():
        if encoder is None:
            problems.append(f"{language.name}: --language-only without an encoder role")
            continue
        static = "--encoder-urls" in language.flags
        dynamic = encoder.registrar_flags is not None
        if static == dynamic:
            problems.append(
                f"{language.name}/{encoder.name}: exactly one of --encoder-urls (static) and the encoder's "
                "registrar container (dynamic) must be set"
            )
        if "--encoder-register-urls" in encoder.flags:
            problems.append(
                f"{encoder.name}: --encoder-register-urls registers only within 150 s of start-up and never "
                "again; the registrar sidecar does it"
            )
        if static:
            problems += _one_url_per_pod(language, "--encoder-urls", encoder)
            if encoder.name not in language.dependencies or language.name in encoder.dependencies:
                problems.append(
                    f"static discovery: {language.name} must depend on {encoder.name}, not the reverse"
                )
        if dynamic:
            problems += _check_registrar(encoder, language, topology)
            problems += _check_watcher(language)
            dependents = [r.name for r in topology.roles.values() if encoder.name in r.dependencies]
            if encoder.dependencies or dependents:
                problems.append(
                    f"dynamic discovery: {encoder.name} must have no dependencies and no dependents "
                    f"(has {encoder.dependencies}, depended on by {dependents})"
                )
        if encoder.flag("--encoder-transfer-backend") != language.flag("--encoder-transfer-backend"):
            problems.append(f"{encoder.name}/{language.name}: --encoder-transfer-backend differs")
    return problems


def _check_registrar(encoder: Role, language: Role, topology: Topology) -> list[str]:
    """The registrar targets every language pod (by pod name, or through the language role's headless
    Service) on its bootstrap port, names the encoder's port, and the sglang container's preStop hook runs
    the same registrar's `stop`."""
    flags = encoder.registrar_flags or {}
    bootstrap = language.flag("--encoder-bootstrap-port") or ["8997"]
    problems = []
    if flags.get("--port") != [[str(encoder.port)]]:
        problems.append(f"{encoder.name} registrar --port {flags.get('--port')}, want {encoder.port}")
    if flags.get("--bootstrap-port") != [bootstrap]:
        problems.append(
            f"{encoder.name} registrar --bootstrap-port {flags.get('--bootstrap-port')}, want {bootstrap}"
        )
    if "--bootstrap-service" in flags:
        service = f"s-{topology.group}-{language.name}"
        if flags["--bootstrap-service"] != [[service]]:
            problems.append(
                f"{encoder.name} registrar --bootstrap-service {flags['--bootstrap-service']}, want {service}"
            )
    else:  # each URL's target and port are checked with every other URL (_check_urls)
        problems += _one_url_per_pod(encoder, "--bootstrap-urls", language)
    pre_stop = encoder.container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    run = container_argv(encoder.sidecar(REGISTRAR_CONTAINER) or {})
    if pre_stop[:2] != run[:2] or pre_stop[2:3] != ["stop"] or pre_stop[3:] != run[3:]:
        problems.append(
            f"{encoder.name}: the sglang container's preStop must run the registrar's stop with its flags"
        )
    return problems


def _check_watcher(language: Role) -> list[str]:
    """The language pod's encoder-watcher (when rendered) reads this pod's own bootstrap server."""
    watcher = language.sidecar(WATCHER_CONTAINER)
    if watcher is None:
        return []
    argv = container_argv(watcher)
    bootstrap = language.flag("--encoder-bootstrap-port") or ["8997"]
    flags = parse_flags(argv[3:])
    if argv[2:3] != ["watch"] or flags.get("--bootstrap-port") != [bootstrap]:
        want = f"watch --bootstrap-port {bootstrap[0]}"
        return [f"{language.name} {WATCHER_CONTAINER}: want `{want}`, got {argv}"]
    return []


def _check_pd(topology: Topology) -> list[str]:
    router = topology.role("router")
    prefill, decode, server = topology.role("prefill"), topology.role("decode"), topology.role("server")
    if router is None:
        return ["no router role"]
    problems = []
    if prefill and decode:
        if "--pd-disaggregation" not in router.flags:
            problems.append(
                f"{router.name}: prefill and decode roles exist but --pd-disaggregation is missing"
            )
        bootstrap = prefill.flag("--disaggregation-bootstrap-port")
        if "--service-discovery" in router.flags:
            problems += _discovers(router, "--prefill-selector", prefill, topology.group)
            problems += _discovers(router, "--decode-selector", decode, topology.group)
            annotations = prefill.pod_template.get("metadata", {}).get("annotations", {})
            if [annotations.get(BOOTSTRAP_PORT_ANNOTATION)] != bootstrap:
                problems.append(f"{prefill.name}: pods must carry {BOOTSTRAP_PORT_ANNOTATION}: {bootstrap}")
        else:
            problems += _one_url_per_pod(router, "--prefill", prefill)
            problems += _one_url_per_pod(router, "--decode", decode)
        # The router sends bootstrap_port from `--prefill URL PORT`; decode falls back to its own flag.
        for values in router.flags.get("--prefill", []):
            if values[1:] != bootstrap:
                problems.append(f"{router.name} --prefill {values}: bootstrap port must be {bootstrap}")
        if decode.flag("--disaggregation-bootstrap-port") != bootstrap:
            problems.append(f"{decode.name}: --disaggregation-bootstrap-port differs from {prefill.name}'s")
        if decode.flag("--disaggregation-transfer-backend") != prefill.flag(
            "--disaggregation-transfer-backend"
        ):
            problems.append(f"{prefill.name}/{decode.name}: --disaggregation-transfer-backend differs")
        for role, mode in ((prefill, "prefill"), (decode, "decode")):
            if role.flag("--disaggregation-mode") != [mode]:
                problems.append(f"{role.name}: must run --disaggregation-mode {mode}")
        workers = [prefill, decode]
    elif server and "--service-discovery" in router.flags:
        problems += _discovers(router, "--selector", server, topology.group)
        workers = [server]
    elif server:
        problems += _one_url_per_pod(router, "--worker-urls", server)
        workers = [server]
    else:
        return [*problems, "router has no prefill+decode or server roles to route to"]
    if "--service-discovery" in router.flags:
        if router.dependencies:
            problems.append(
                f"{router.name}: discovers its workers and must depend on no role ({router.dependencies})"
            )
    else:
        for worker in workers:
            if worker.name not in router.dependencies:
                problems.append(
                    f"{router.name}: must depend on {worker.name} (it adds those pods once, at start)"
                )
    problems += [
        f"{router.name}: must not depend on {dep} (only on the workers it is given)"
        for dep in router.dependencies
        if dep not in {w.name for w in workers}
    ]
    return problems


def _discovers(router: Role, flag: str, target: Role, group: str) -> list[str]:
    """With --service-discovery the router finds pods by labels (RBG sets group-name and role-name on
    every pod) and reaches all of them on --service-discovery-port."""
    wanted = {f"{GROUP_LABEL}={group}", f"{ROLE_LABEL}={target.name}"}
    problems = []
    if set(router.flag(flag) or []) != wanted:
        problems.append(f"{router.name} {flag}: {router.flag(flag)}, want {sorted(wanted)}")
    if router.flag("--service-discovery-port") != [str(target.port)]:
        problems.append(f"{router.name} --service-discovery-port must be {target.name}'s port {target.port}")
    if not router.flag("--service-discovery-namespace"):
        problems.append(
            f"{router.name}: --service-discovery-namespace missing (it would watch every namespace)"
        )
    return problems


def _check_router_service(topology: Topology, objects: list[dict]) -> list[str]:
    router = topology.role("router")
    services = [o for o in objects if o.get("kind") == "Service"]
    if router is None or not services:
        return ["no router Service"]
    wanted = {GROUP_LABEL: topology.group, ROLE_LABEL: router.name}
    router_ports = {p.get("name") for p in router.container.get("ports", [])}
    problems = []
    for service in services:
        if service["spec"].get("selector") != wanted:
            problems.append(f"Service {service['metadata']['name']}: selector must be {wanted}")
        for port in service["spec"].get("ports", []):
            if port.get("targetPort") not in router_ports:
                problems.append(
                    f"Service {service['metadata']['name']}: targetPort {port.get('targetPort')} "
                    f"is not a router container port ({sorted(router_ports)})"
                )
    return problems
