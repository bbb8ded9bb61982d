"""Every container argv the chart renders goes through SGLang's and sglang-router's REAL parsers.

Needs `pip install --no-deps -r requirements/parsers.txt`; every test skips with the reason otherwise.
What the checkers run (and skip) is documented in src/sglang_epd/argv_check.py.
"""

from __future__ import annotations

import itertools

import pytest

from sglang_epd import argv_check
from sglang_epd.k8s_env import expand_all
from sglang_epd.render import EXAMPLES_DIR
from sglang_epd.topology import Role, Topology

# Every model the chart's examples and defaults serve is a Qwen2.5-VL: SGLang's EPD allow-list runs too.
ARCHITECTURE = "Qwen2_5_VLForConditionalGeneration"
SGLANG_COMMAND = ["python3", "-m", "sglang.launch_server"]
ROUTER_COMMAND = ["python3", "-m", "sglang_router.launch_router"]

MODES = ["epd", "pd", "encoder+collocated", "collocated"]
DISCOVERY = ["static", "dynamic"]
OPTIONS: dict[str, dict[str, object]] = {
    "router-discovery": {"router.discovery.enabled": True, "decode.port": 30000},
    "defaults": {},
    "rdma-mooncake": {
        "rdma.enabled": True,
        "rdma.ibDevices": "mlx5_0,mlx5_1",
        "disaggregation.transferBackend": "mooncake",
        "encoderDiscovery.transferBackend": "mooncake",
    },
    "nixl": {"disaggregation.transferBackend": "nixl"},
    "metrics-off": {"metrics.enabled": False},
    "prefix-mm-cache": {"encoder.prefixMmCache.enabled": True, "encoder.prefixMmCache.sizeMb": 4096},
    "adaptive-dispatch": {"prefill.adaptiveDispatchToEncoder": True},
    "tp2": {"encoder.tpSize": 2, "prefill.tpSize": 2, "decode.tpSize": 2, "server.tpSize": 2},
    "router-policies": {
        "router.policy": "power_of_two",
        "router.prefillPolicy": "cache_aware",
        "router.decodePolicy": "random",
    },
    "extra-args": {
        "encoder.extraArgs": ["--mem-fraction-static", "0.8"],
        "prefill.extraArgs": ["--mem-fraction-static", "0.8", "--chunked-prefill-size", "8192"],
        "decode.extraArgs": ["--mem-fraction-static", "0.8"],
        "server.extraArgs": ["--mem-fraction-static", "0.8"],
        "router.extraArgs": ["--request-timeout-secs", "600"],
    },
    "model-options": {
        "model.servedModelName": "vlm",
        "model.trustRemoteCode": True,
        "encoder.mmAttentionBackend": "sdpa",
    },
    "scaled-custom-ports": {
        "encoder.replicas": 3,
        "prefill.replicas": 2,
        "decode.replicas": 2,
        "server.replicas": 2,
        "encoderDiscovery.bootstrapPort": 9997,
        "disaggregation.bootstrapPort": 9998,
        "prefill.port": 40000,
        "router.port": 9000,
    },
}

EXAMPLES = sorted(p.name for p in EXAMPLES_DIR.glob("*.yaml"))
MATRIX = list(itertools.product(MODES, DISCOVERY, OPTIONS))


class _ParsedCounter:
    """Counts the argv handed to the real parsers and prints the total in pytest's terminal summary."""

    def __init__(self) -> None:
        self.sglang = 0
        self.router = 0

    def pytest_terminal_summary(self, terminalreporter) -> None:
        terminalreporter.write_line(
            f"real parsers: {self.sglang} SGLang and {self.router} sglang-router argv "
            "of the rendered chart parsed"
        )


@pytest.fixture(scope="session")
def parsed(request: pytest.FixtureRequest) -> _ParsedCounter:
    reason = argv_check.parsers_available()
    if reason:
        pytest.skip(reason)
    counter = _ParsedCounter()
    request.config.pluginmanager.register(counter, "sglang-epd-real-parsers-counter")
    return counter


def _args(role: Role) -> tuple[list[str], dict[str, str]]:
    """The role's container args with `$(VAR)` expanded as the kubelet would, and the container env."""
    env = argv_check.container_env(role.container)
    return expand_all(role.container.get("args", []), env), env


def _problems(objects: list[dict], parsed: _ParsedCounter) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    for role in Topology.from_objects(objects).roles.values():
        args, env = _args(role)
        if role.component == "router":
            assert role.container["command"] == ROUTER_COMMAND
            found = argv_check.check_router_argv(args)
            parsed.router += 1
        else:
            assert role.container["command"] == SGLANG_COMMAND
            found = argv_check.check_sglang_argv(args, env=env, architecture=ARCHITECTURE)
            parsed.sglang += 1
        if found:
            problems[f"{role.name} {' '.join(args)}"] = found
    return problems


@pytest.mark.parametrize("example", EXAMPLES)
def test_examples_parse(example: str, render_chart, parsed: _ParsedCounter) -> None:
    objects = render_chart(values_files=[EXAMPLES_DIR / example])
    assert _problems(objects, parsed) == {}


@pytest.mark.parametrize(("mode", "discovery", "option"), MATRIX, ids=["-".join(c) for c in MATRIX])
def test_matrix_parses(mode: str, discovery: str, option: str, render_chart, parsed: _ParsedCounter) -> None:
    values = {"mode": mode, "encoderDiscovery.mode": discovery, **OPTIONS[option]}
    objects = render_chart(set_values=values)
    assert _problems(objects, parsed) == {}


# --- the checkers do catch what the parsers reject ----------------------------------------------------------


@pytest.fixture(scope="module")
def epd_roles(render_chart, parsed: _ParsedCounter) -> dict[str, Role]:
    topology = Topology.from_objects(render_chart(set_values={"mode": "epd"}))
    return {role.component: role for role in topology.roles.values()}


# (role, flags added to its rendered argv, what SGLang's own checks must say)
SGLANG_MISTAKES = {
    "unknown-flag": ("prefill", ["--no-such-flag", "1"], "unrecognized arguments: --no-such-flag"),
    "encoder-and-language-only": ("encoder", ["--language-only"], "--encoder-only and --language-only"),
    "prefix-cache-off-the-encoder": (
        "prefill",
        ["--enable-prefix-mm-cache"],
        "--enable-prefix-mm-cache requires --encoder-only",
    ),
    "encoder-in-pd-mode": (
        "encoder",
        ["--disaggregation-mode", "prefill"],
        "--encoder-only and --disaggregation-mode",
    ),
}


@pytest.mark.parametrize("mistake", list(SGLANG_MISTAKES), ids=list(SGLANG_MISTAKES))
def test_sglang_mistake_is_reported(epd_roles, mistake: str) -> None:
    component, extra, expected = SGLANG_MISTAKES[mistake]
    args, env = _args(epd_roles[component])
    problems = argv_check.check_sglang_argv([*args, *extra], env=env)
    assert len(problems) == 1
    assert expected in problems[0]


def test_unknown_transfer_backend_is_reported(epd_roles) -> None:
    args, env = _args(epd_roles["decode"])
    i = args.index("--disaggregation-transfer-backend")
    problems = argv_check.check_sglang_argv([*args[: i + 1], "rdma", *args[i + 2 :]], env=env)
    assert len(problems) == 1
    assert "argument --disaggregation-transfer-backend: invalid choice: 'rdma'" in problems[0]


def test_unsupported_architecture_is_reported(epd_roles) -> None:
    args, env = _args(epd_roles["encoder"])
    problems = argv_check.check_sglang_argv(args, env=env, architecture="LlamaForCausalLM")
    assert len(problems) == 1
    assert "LlamaForCausalLM is not supported for encoder disaggregation" in problems[0]


@pytest.mark.parametrize("flag", ["--policy", "--prefill-policy", "--decode-policy"])
def test_router_policy_the_router_rejects_is_reported(epd_roles, flag: str) -> None:
    args, _env = _args(epd_roles["router"])
    problems = argv_check.check_router_argv([*args, flag, "fastest"])
    assert len(problems) == 1
    assert f"argument {flag}: invalid choice: 'fastest'" in problems[0]


def test_router_bad_bootstrap_port_is_reported(epd_roles) -> None:
    args, _env = _args(epd_roles["router"])
    problems = argv_check.check_router_argv([*args, "--prefill", "http://p-1.s-p:30000", "port"])
    assert len(problems) == 1
    assert "Invalid bootstrap port: port" in problems[0]
