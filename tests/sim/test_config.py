"""SGLang's flags as the simulator reads them, including every command the chart renders."""

from __future__ import annotations

import os
import re
from collections.abc import Callable

import pytest

from sglang_epd.render import EXAMPLES_DIR
from sglang_epd.sim.config import Role, Settings, StartupError, load_config, parse_host_map
from sglang_epd.topology import Topology

LAUNCH_SERVER = ["python3", "-m", "sglang.launch_server"]


@pytest.mark.parametrize(
    ("flags", "role"),
    [
        ([], Role.SERVER),
        (["--encoder-only"], Role.ENCODER),
        (["--language-only"], Role.LANGUAGE),
        (["--language-only", "--disaggregation-mode", "prefill"], Role.LANGUAGE_PREFILL),
        (["--disaggregation-mode", "prefill"], Role.PREFILL),
        (["--disaggregation-mode", "decode"], Role.DECODE),
    ],
)
def test_role_from_flags(flags: list[str], role: Role) -> None:
    assert load_config(flags, env={}).role is role


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--encoder-only", "--language-only"], "--encoder-only and --language-only"),
        (["--encoder-only", "--disaggregation-mode", "prefill"], "--encoder-only cannot be combined"),
        (["--enable-prefix-mm-cache"], "only supported with --encoder-only"),
        (
            ["--disaggregation-mode", "prefill", "--disaggregation-transfer-backend", "fake"],
            "refused by a prefill server",
        ),
        (
            ["--encoder-only", "--encoder-register-urls", "prefill-0:8997"],
            "is not an http(s)://host:port URL",
        ),
    ],
)
def test_startup_refusals(flags: list[str], message: str) -> None:
    with pytest.raises(StartupError, match=re.escape(message)):
        load_config(flags, env={})


def test_unknown_flags_are_kept_for_the_log() -> None:
    config = load_config(["--port", "1234", "--attention-backend", "fa3", "--enable-torch-compile"], env={})
    assert config.args.port == 1234
    assert config.ignored_flags == ("--attention-backend", "fa3", "--enable-torch-compile")


def test_unknown_flag_is_never_taken_for_an_abbreviation() -> None:
    assert load_config(["--served-model", "x"], env={}).args.served_model_name is None


def test_nargs_plus_urls() -> None:
    config = load_config(
        ["--language-only", "--encoder-urls", "http://a:1", "http://b:2", "--port", "5"], env={}
    )
    assert config.args.encoder_urls == ["http://a:1", "http://b:2"]
    assert config.args.port == 5


def test_advertised_url_prefers_sglang_host_ip() -> None:
    assert (
        load_config(["--host", "0.0.0.0"], env={"SGLANG_HOST_IP": "10.1.2.3"}).url == "http://10.1.2.3:30000"
    )
    assert load_config(["--host", "127.0.0.9", "--port", "7"], env={}).url == "http://127.0.0.9:7"


def test_settings_defaults_are_sglangs() -> None:
    """srt/environ.py and srt/disaggregation/encoder/http_server.py of SGLang 0.5.23."""
    settings = Settings.from_env({})
    assert (settings.encoder_health_interval, settings.encoder_health_timeout) == (10, 2)
    assert (settings.encoder_evicted_ttl, settings.encode_timeout, settings.kv_timeout) == (600, 1800, 300)
    assert (settings.register_interval, settings.dispatch_min_items) == (5, 2)


def test_settings_read_sglangs_variables() -> None:
    settings = Settings.from_env(
        {
            "SGLANG_ENCODER_BOOTSTRAP_HEALTH_CHECK_INTERVAL": "1",
            "SGLANG_ENCODER_BOOTSTRAP_HEALTH_CHECK_TIMEOUT": "0.5",
            "SGLANG_ENCODER_BOOTSTRAP_EVICTED_TTL": "0",
            "SGLANG_DISAGGREGATION_WAITING_TIMEOUT": "7",
        }
    )
    assert (settings.encoder_health_interval, settings.encoder_health_timeout) == (1, 0.5)
    assert (settings.encoder_evicted_ttl, settings.kv_timeout) == (0, 7)


def test_host_map() -> None:
    assert parse_host_map("a.b=127.0.0.7, c=127.0.0.8") == {"a.b": "127.0.0.7", "c": "127.0.0.8"}
    with pytest.raises(StartupError):
        parse_host_map("nohost")


COMPONENT_ROLES = {
    ("epd", "encoder"): Role.ENCODER,
    ("epd", "prefill"): Role.LANGUAGE_PREFILL,
    ("epd", "decode"): Role.DECODE,
    ("pd", "prefill"): Role.PREFILL,
    ("pd", "decode"): Role.DECODE,
    ("collocated", "server"): Role.SERVER,
}


RENDERS = [(example.name, {}) for example in sorted(EXAMPLES_DIR.glob("*.yaml"))] + [
    ("qwen2.5-vl-7b-epd.yaml", {"mode": "collocated"}),
    ("qwen2.5-vl-7b-epd.yaml", {"mode": "pd"}),
    ("qwen2.5-vl-7b-epd.yaml", {"encoderDiscovery.mode": "static"}),
]


@pytest.mark.parametrize(("example", "set_values"), RENDERS, ids=[f"{e}-{s}" for e, s in RENDERS])
def test_every_rendered_server_command_runs_in_the_simulator(
    render_chart: Callable[..., list[dict]], example: str, set_values: dict
) -> None:
    objects = render_chart(values_files=[EXAMPLES_DIR / example], set_values=set_values)
    mode = next(o for o in objects if o["kind"] == "RoleBasedGroup")["metadata"]["labels"]["sglang-epd/mode"]
    servers = [r for r in Topology.from_objects(objects).roles.values() if r.argv[:3] == LAUNCH_SERVER]
    assert {r.component for r in servers} == {c for m, c in COMPONENT_ROLES if m == mode}
    for role in servers:
        # The RDMA example names an IB device; this machine has none (checked in its own test).
        config = load_config(role.argv[3:], env={"SGLANG_SIM_SKIP_IB_CHECK": "1"})
        assert config.role is COMPONENT_ROLES[(mode, role.component)], role.name
        assert config.ignored_flags == (), f"{role.name}: flags the simulator does not model"


@pytest.mark.skipif(os.path.isdir("/sys/class/infiniband"), reason="this machine has RDMA devices")
def test_ib_device_without_rdma_is_refused_like_sglang() -> None:
    flags = ["--disaggregation-mode", "decode", "--disaggregation-ib-device", "mlx5_0"]
    with pytest.raises(StartupError, match="/sys/class/infiniband"):
        load_config(flags, env={})
    assert load_config(flags, env={"SGLANG_SIM_SKIP_IB_CHECK": "1"}).role is Role.DECODE
