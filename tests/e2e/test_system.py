"""System tests whose bodies run unchanged against the local deployment (simulated and real SGLang
servers) and a real cluster (`--target kube`): they need the rendered topology and a
`deploy.base.Deployment` (router URL, running pods, a GET on a pod, scale, kill)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from sglang_epd.load.simrun import locust_command
from sglang_epd.scenarios import (
    HEIGHT,
    IMAGES,
    WIDTH,
    ImageSource,
    ask,
    encoders_scaled_under_load,
    eviction_window_s,
    load_under_action,
    median_ttft_ms,
    sequential_requests,
    served_model,
    succeeded,
    wait_for_registration,
)
from sglang_epd.sim.client import ChatResult
from sglang_epd.sim.cost import ideal_ttft_ms
from sglang_epd.topology import Role, Topology
from sglang_epd.waiting import wait_for

# Encoders retry registration every few seconds (SGLang: 5 s), and a cluster adds pod start-up.
REGISTRATION_TIMEOUT_S = {"local": 30.0, "kube": 300.0}
# A restarted language server loads its model again (real SGLang on this CPU: ~40 s, and ~60 s more until
# the decode takes its KV cache again; a cluster: the model load).
RESTART_TIMEOUT_S = 900.0


@pytest.fixture(scope="module")
def topology(render_chart, values_files: list[Path]) -> Topology:
    """What the values say the deployment is: the rendered RoleBasedGroup."""
    return Topology.from_objects(render_chart(values_files=values_files))


@pytest.fixture(scope="module")
def model(topology: Topology) -> str:
    return served_model(topology)


@pytest.fixture(scope="module")
def registration_timeout(target: str) -> float:
    return REGISTRATION_TIMEOUT_S[target]


@pytest.fixture
def dynamic_encoders(deployment, topology: Topology, registration_timeout: float) -> Iterator[Role]:
    """The encoder role, when each encoder's registrar sidecar registers it (dynamic discovery): only then
    can encoders be added or lost without re-rendering the prefill. Its replica count is restored after."""
    encoder = topology.role("encoder")
    if encoder is None:
        pytest.skip("the values have no encoder role (mode pd or collocated)")
    if encoder.registrar_flags is None:
        pytest.skip("static encoder discovery: changing encoders needs a helm upgrade of the prefill's list")
    yield encoder
    if len(deployment.running_pods(encoder.name)) != encoder.replicas:
        deployment.scale(encoder.name, encoder.replicas)
    wait_for_registration(deployment, topology, registration_timeout)


def language_server_restarts(deployment, topology: Topology) -> int:
    return sum(
        pod.restarts for role in topology.language_roles() for pod in deployment.running_pods(role.name)
    )


def ask_once(url: str, model: str, images: int) -> ChatResult:
    async def send() -> ChatResult:
        async with aiohttp.ClientSession() as session:
            return await ask(session, url, model, ImageSource().request_images(images), max_tokens=16)

    return asyncio.run(send())


def test_topology_is_what_the_values_say(deployment, topology: Topology, registration_timeout: float) -> None:
    running = {name: len(deployment.running_pods(name)) for name in topology.roles}
    assert running == {name: role.replicas for name, role in topology.roles.items()}
    encoder = topology.role("encoder")
    if encoder is not None and encoder.registrar_flags is not None:
        urls = wait_for_registration(deployment, topology, registration_timeout)
        assert len(urls) == encoder.replicas


@pytest.mark.parametrize("images", [1, 8])
def test_image_request_returns_text(deployment, model: str, images: int) -> None:
    result = ask_once(deployment.router_url, model, images)
    assert result.status == 200, result.body or result.headers.get("error")
    assert succeeded(result) and result.text.strip(), "a streamed, non-empty answer"


def test_helm_test_hook_passes(deployment) -> None:
    """The chart's test Pod: `helm test` on a cluster, its own command against the local router here."""
    result = deployment.helm_test()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout


@pytest.mark.simulator_only  # locally: the tiny model's ViT costs real SGLang next to nothing on a CPU
def test_second_encoder_lowers_eight_image_ttft(
    deployment, topology: Topology, model: str, dynamic_encoders: Role, registration_timeout: float
) -> None:
    url, source = deployment.router_url, ImageSource(seed=10_000)
    ttft_ms = {}
    for encoders in (1, 2):
        deployment.scale(dynamic_encoders.name, encoders)
        assert len(wait_for_registration(deployment, topology, registration_timeout)) == encoders
        ttft_ms[encoders] = median_ttft_ms(sequential_requests(url, model, source, requests=5))
    print(f"8-image TTFT p50: 1 encoder {ttft_ms[1]:.0f} ms, 2 encoders {ttft_ms[2]:.0f} ms")
    assert ttft_ms[2] < ttft_ms[1], f"a second encoder did not lower TTFT p50: {ttft_ms}"


# Locally on real servers a request is often at the killed encoder, and the prefill's restart plus the PD
# pair's reconnection then take minutes of this 2-core machine: test_encoder_lifecycle.py's hard-kill test
# runs that case on real servers, deterministically.
@pytest.mark.simulator_only
def test_killed_encoder_loses_only_requests_around_the_kill(
    deployment, topology: Topology, model: str, dynamic_encoders: Role, registration_timeout: float
) -> None:
    """Open-loop 8-image load; one of two encoders is killed 3 s in. A request may fail only if it was in
    flight at the kill or was sent before the language servers evicted the dead encoder; every later one
    succeeds. If a request was at the encoder when it died, SGLang 0.5.23 ends the language-only server
    (request_receiver._apply_mm_receiver; the chart README's "what a hard kill still does"): then the
    requests lost are those until it is back, and it must come back with every running encoder. Afterwards
    the servers list exactly the running encoders (locally the survivor; on a cluster also the pod the
    controller re-created)."""
    if len(deployment.running_pods(dynamic_encoders.name)) < 2:
        deployment.scale(dynamic_encoders.name, 2)
    wait_for_registration(deployment, topology, registration_timeout)
    restarts_before = language_server_restarts(deployment, topology)
    window = eviction_window_s(topology)
    run = load_under_action(
        deployment.router_url,
        model,
        ImageSource(seed=20_000),
        duration=3 + window + 6,
        rate=1.0,
        action_at=3.0,
        action=lambda: deployment.kill(dynamic_encoders.name, 1),
    )
    print(f"kill 1 of 2 encoders: {run.summary()}")
    if language_server_restarts(deployment, topology) > restarts_before:
        began = time.monotonic()
        wait_for(
            lambda: succeeded(ask_once(deployment.router_url, model, IMAGES)),
            RESTART_TIMEOUT_S,
            "a request to be served after the language server's restart",
            interval=1.0,
        )
        print(
            "a request was at the killed encoder: a language server restarted, served again "
            f"{time.monotonic() - began:.0f} s after the load"
        )
    else:
        late = run.failed_outside(window)
        assert not late, (
            f"{len(late)} request(s) failed that were neither in flight at the kill nor sent in the "
            f"{window:.0f} s eviction window, first sent at {late[0].at:.1f} s: {late[0].result.headers}"
        )
        assert run.seconds_to_recover is not None, f"traffic did not recover: {run.summary()}"
    wait_for_registration(deployment, topology, registration_timeout)


def test_encoders_added_and_removed_under_load_keep_serving(
    deployment, topology: Topology, dynamic_encoders: Role, registration_timeout: float
) -> None:
    """Open-loop 8-image load while the encoder role scales 2 -> 3, then 3 -> 1 (what an autoscaler does).
    Adding loses nothing; a removed encoder unregisters before it stops, so only requests in flight at the
    scale-down may fail."""
    grow, shrink = encoders_scaled_under_load(
        deployment,
        topology,
        [2, 3, 1],
        source=ImageSource(seed=30_000),
        duration=8.0,
        rate=2.0,
        action_at=2.3,  # between arrivals, so that requests are in flight when pods go
        registration_timeout=registration_timeout,
    )
    for step in (grow, shrink):
        print(f"encoders {step.before} -> {step.after} under load: {step.run.summary()}")
        assert len(step.registered) == step.after
    assert not grow.run.failed, f"adding an encoder failed requests: {grow.run.summary()}"
    late = shrink.run.failed_outside(window=0.0)
    assert not late, f"requests not in flight at the scale-down failed: {shrink.run.summary()}"


@pytest.mark.simulator_only  # locally: the SLO is derived from the simulator's cost model
def test_short_load_meets_ttft_slo(
    deployment, topology: Topology, target: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """kep-8img for a few seconds; the SLO is given (kube) or derived from the cost model (local)."""
    slo_ms = request.config.getoption("--ttft-slo-ms")
    if slo_ms is None:
        if target == "kube":
            pytest.skip("give the cluster's TTFT SLO with --ttft-slo-ms")
        encoder = topology.role("encoder")
        # Two closed-loop users: at worst a request waits for the other one's encode and prefill.
        slo_ms = 2.5 * ideal_ttft_ms(
            [(WIDTH, HEIGHT)] * IMAGES, encoder.replicas if encoder else 0, text_tokens=32
        )
    results = tmp_path / "load"
    command = locust_command(
        deployment.router_url,
        [
            "--profile",
            "kep-8img",
            "-u",
            "2",
            "-r",
            "2",
            "-t",
            "8s",
            "--only-summary",
            "--slo",
            f"ttft_p95_ms={slo_ms:.0f},error_rate_max=0",
            "--results-dir",
            str(results),
        ],
    )
    run = subprocess.run(command, capture_output=True, text=True, timeout=180)
    summary = json.loads((results / "summary.json").read_text())
    assert run.returncode == 0, f"{summary['verdict']} (SLO ttft_p95_ms={slo_ms:.0f})\n{run.stdout[-2000:]}"
    assert summary["requests"]["ok"] >= 2
