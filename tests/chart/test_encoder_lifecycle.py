"""The rendered encoder lifecycle: the bootstrap health-check variables on the language role, the
encoder-watcher beside it (dynamic discovery only) and the encoder's registrar with its preStop drain."""

from __future__ import annotations

import pytest

from sglang_epd.topology import REGISTRAR_CONTAINER, WATCHER_CONTAINER, Topology, container_argv, parse_flags

HEALTH_VARIABLES = (
    "SGLANG_ENCODER_BOOTSTRAP_HEALTH_CHECK_INTERVAL",
    "SGLANG_ENCODER_BOOTSTRAP_HEALTH_CHECK_TIMEOUT",
    "SGLANG_ENCODER_BOOTSTRAP_EVICTED_TTL",
)


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


@pytest.mark.parametrize(("mode", "language"), [("epd", "prefill"), ("encoder+collocated", "server")])
def test_health_check_values_are_sglangs_variables_on_the_language_role_only(
    render_chart, mode: str, language: str
) -> None:
    topology = Topology.from_objects(
        render_chart(
            set_values={
                "mode": mode,
                "encoderDiscovery.healthCheck.intervalSeconds": 4,
                "encoderDiscovery.healthCheck.timeoutSeconds": 6,
                "encoderDiscovery.healthCheck.evictedTtlSeconds": 120,
            }
        )
    )
    for role in topology.roles.values():
        env = env_of(role.container)
        if role.component == language:
            assert [env[name] for name in HEALTH_VARIABLES] == ["4", "6", "120"]
        else:
            assert not set(HEALTH_VARIABLES) & set(env), role.name


def test_defaults_are_sglang_0_5_23s(render_chart) -> None:
    """srt/environ.py, Envs: SGLANG_ENCODER_BOOTSTRAP_HEALTH_CHECK_INTERVAL 10, _TIMEOUT 2,
    _EVICTED_TTL 600."""
    prefill = Topology.from_objects(render_chart()).role("prefill")
    assert [env_of(prefill.container)[name] for name in HEALTH_VARIABLES] == ["10", "2", "600"]


def test_watcher_reads_the_language_pods_own_bootstrap_server(render_chart) -> None:
    topology = Topology.from_objects(
        render_chart(
            set_values={
                "encoderDiscovery.bootstrapPort": 9997,
                "encoderDiscovery.watcher.intervalSeconds": 2,
                "encoderDiscovery.watcher.connectTimeoutSeconds": 0.5,
            }
        )
    )
    watchers = {r.component for r in topology.roles.values() if r.sidecar(WATCHER_CONTAINER)}
    assert watchers == {"prefill"}
    watcher = topology.role("prefill").sidecar(WATCHER_CONTAINER)
    argv = container_argv(watcher)
    assert argv[2] == "watch"
    assert parse_flags(argv[3:]) == {
        "--bootstrap-port": [["9997"]],
        "--interval": [["2"]],
        "--connect-timeout": [["0.5"]],
    }
    assert watcher["resources"]["limits"]["memory"]
    assert [e["valueFrom"]["fieldRef"]["fieldPath"] for e in watcher["env"]] == ["status.podIP"]


@pytest.mark.parametrize(
    "values",
    [{"encoderDiscovery.watcher.enabled": False}, {"encoderDiscovery.mode": "static"}],
    ids=["disabled", "static-discovery"],
)
def test_no_watcher_when_off_or_when_encoders_are_listed_statically(render_chart, values: dict) -> None:
    """Static --encoder-urls are the whole list and nothing registers them again: unregistering a dead one
    would lose it for good, so static discovery leaves dead encoders to the health checks (evicted, then
    revived when they answer)."""
    topology = Topology.from_objects(render_chart(set_values=values))
    assert not any(r.sidecar(WATCHER_CONTAINER) for r in topology.roles.values())


def test_registrar_drains_within_the_grace_period(render_chart) -> None:
    topology = Topology.from_objects(
        render_chart(
            set_values={
                "encoderDiscovery.registrar.drainSeconds": 20,
                "encoder.terminationGracePeriodSeconds": 45,
            }
        )
    )
    encoder = topology.role("encoder")
    assert encoder.sidecar(REGISTRAR_CONTAINER) is not None
    pre_stop = encoder.container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[2] == "stop" and parse_flags(pre_stop[3:])["--drain-seconds"] == [["20"]]
    assert encoder.pod_template["spec"]["terminationGracePeriodSeconds"] == 45
