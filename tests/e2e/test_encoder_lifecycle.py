"""What the chart's encoder lifecycle protects against: the same open-loop scale-down (3 encoders -> 1)
with the chart's registrar, preStop drain and encoder-watcher, and with SGLang 0.5.23's own registration
(`--encoder-register-urls`, as SGLang's docs set it up), whose encoder never unregisters on SIGTERM
(srt/disaggregation/encoder/http_server.py: uvicorn re-raises SIGTERM, the atexit hook never runs).

It runs on the simulated and on the real SGLang servers (`servers`). A request sent to the stopped but
still listed encoder ends the language-only server (what real SGLang 0.5.23 does); the simulator can also be
set to fail only that request with 502 (what a reading of receiver.py predicts): the chart must protect in
both. The figures are printed for the notes.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from sglang_epd.deploy.local import LocalDeployment
from sglang_epd.deploy.servers import SglangServers
from sglang_epd.render import EXAMPLES_DIR
from sglang_epd.scenarios import (
    ImageSource,
    LoadUnderAction,
    ask,
    load_under_action,
    registered_encoder_urls,
    served_model,
    succeeded,
    wait_for_registration,
)
from sglang_epd.topology import (
    REGISTRAR_CONTAINER,
    WATCHER_CONTAINER,
    Topology,
    container_argv,
    parse_flags,
)
from sglang_epd.waiting import wait_for

SIM_VALUES = EXAMPLES_DIR / "sim-epd.yaml"


@pytest.fixture(autouse=True)
def _local_target_only(target: str) -> None:
    if target != "local":
        pytest.skip("rewrites the rendered pods and runs them on this machine: only with --target local")


def with_sglangs_own_registration(objects: list[dict]) -> list[dict]:
    """The rendered group without the chart's lifecycle: no registrar, preStop or encoder-watcher; each
    encoder registers itself with the bootstrap servers the registrar would have used."""
    objects = copy.deepcopy(objects)
    group = next(o for o in objects if o.get("kind") == "RoleBasedGroup")
    for role in group["spec"]["roles"]:
        spec = role["standalonePattern"]["template"]["spec"]
        registrar = next((c for c in spec["containers"] if c["name"] == REGISTRAR_CONTAINER), None)
        if registrar is not None:
            urls = parse_flags(container_argv(registrar)[3:])["--bootstrap-urls"][0]
            spec["containers"][0]["args"] += ["--encoder-register-urls", *urls]
            spec["containers"][0].pop("lifecycle")
        spec["containers"] = [
            c for c in spec["containers"] if c["name"] not in (REGISTRAR_CONTAINER, WATCHER_CONTAINER)
        ]
    return objects


@dataclass
class ScaleDown:
    run: LoadUnderAction
    prefill_restarts: int
    listed: list[str]  # what the prefill lists afterwards

    def report(self, what: str) -> str:
        late = self.run.failed_outside(window=0.0)
        return (
            f"scale-down 3 -> 1, {what}: {self.run.summary()}; {len(late)} failed that were not in flight; "
            f"prefill restarts {self.prefill_restarts}; the prefill lists {len(self.listed)} encoder(s) after"
        )


def scale_down_under_load(
    render_chart, workdir: Path, servers: SglangServers, lifecycle: str, env: dict[str, str] | None = None
) -> ScaleDown:
    """3 encoders -> 1 under open-loop load. A request sent to a stopped but still listed encoder ends the
    language-only server, as real SGLang 0.5.23 does (tests/fidelity/test_dead_encoder.py) and the simulator
    does by default."""
    objects = render_chart(values_files=[SIM_VALUES], set_values={"encoder.replicas": 3})
    if lifecycle == "sglang":
        objects = with_sglangs_own_registration(objects)
    topology = Topology.from_objects(objects)
    with LocalDeployment(topology, workdir, extra_env=env or {}, servers=servers) as deployment:
        wait_for_registration(deployment, topology, timeout=30)
        run = load_under_action(
            deployment.router_url,
            served_model(topology),
            ImageSource(seed=40_000),
            duration=8.0,
            rate=2.0,
            action_at=2.3,  # between arrivals, so that requests are in flight when the pods go
            action=lambda: deployment.scale("vlm-encoder", 1),
        )
        prefill = deployment.pods["vlm-prefill"]
        restarts = prefill[0].restarts
        deployment.wait_ready(prefill)  # a restarted real prefill takes tens of seconds
        listed = next(iter(registered_encoder_urls(deployment, topology).values()))
    return ScaleDown(run, restarts, listed)


# On real servers the same scale-down with the chart's lifecycle is part of
# test_system.py::test_encoders_added_and_removed_under_load_keep_serving (0 of 16 failed there).
@pytest.mark.simulator_only
def test_scale_down_under_load_with_the_charts_lifecycle_loses_nothing(
    render_chart, tmp_path: Path, servers: SglangServers
) -> None:
    outcome = scale_down_under_load(render_chart, tmp_path, servers, "chart")
    print(outcome.report(f"{servers.name} servers, lifecycle chart"))
    assert not outcome.run.failed, f"the chart's lifecycle lost requests: {outcome.run.summary()}"
    assert (outcome.prefill_restarts, len(outcome.listed)) == (0, 1)


# On real servers (run by hand, docs/simulator.md "Real SGLang servers": the prefill ended, restarted once
# and listed no encoder for good) this takes ~260 s of CI's 30 min; the prefill's end on a dead listed
# encoder runs on real servers in the hard-kill test below, and the encoder's one-shot registration in
# tests/fidelity/test_encoder_lifecycle.py.
@pytest.mark.simulator_only
def test_scale_down_under_load_with_sglangs_own_registration_loses_the_encoders(
    render_chart, tmp_path: Path, servers: SglangServers
) -> None:
    """The prefill ends; the restarted one starts with an empty list and SGLang's registration never comes
    back: the surviving encoder is lost for good."""
    outcome = scale_down_under_load(render_chart, tmp_path, servers, "sglang")
    print(outcome.report(f"{servers.name} servers, lifecycle sglang"))
    assert (outcome.prefill_restarts, outcome.listed) == (1, [])


@pytest.mark.simulator_only  # real SGLang 0.5.23 ends the server; only the simulator can be set to this
@pytest.mark.parametrize("lifecycle", ["chart", "sglang"])
def test_scale_down_loses_requests_without_the_charts_lifecycle_when_a_dead_encoder_fails_one_request(
    render_chart, tmp_path: Path, servers: SglangServers, lifecycle: str
) -> None:
    """What a reading of receiver.py predicts: only the request sent to the dead encoder fails (502)."""
    env = {"SGLANG_SIM_DEAD_ENCODER_ENDS_SERVER": "0"}
    outcome = scale_down_under_load(render_chart, tmp_path, servers, lifecycle, env)
    print(outcome.report(f"{servers.name} servers, a dead encoder fails the request, lifecycle {lifecycle}"))
    late = outcome.run.failed_outside(window=0.0)
    if lifecycle == "chart":
        assert not outcome.run.failed, f"the chart's lifecycle lost requests: {outcome.run.summary()}"
        assert (outcome.prefill_restarts, len(outcome.listed)) == (0, 1)
    else:
        assert late, (
            f"SGLang's own registration lost nothing, the test shows no risk: {outcome.run.summary()}"
        )


def group_connected_to(process_group: int, ip: str, port: int) -> bool:
    """A process of `process_group` has an established TCP connection to ip:port (its sockets' inodes in
    /proc/PID/fd, matched against /proc/net/tcp's remote address, little-endian hex, and state 01)."""
    inodes = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) == process_group:
                for fd in (stat.parent / "fd").iterdir():
                    with contextlib.suppress(OSError):
                        target = os.readlink(fd)
                        if target.startswith("socket:["):
                            inodes.add(target[8:-1])
    remote = f"{socket.inet_aton(ip)[::-1].hex().upper()}:{port:04X}"
    rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    return any(row[2] == remote and row[3] == "01" and row[9] in inodes for row in rows)


def test_a_request_at_a_hard_killed_encoder_ends_the_prefill_and_the_group_recovers(
    render_chart, tmp_path: Path, servers: SglangServers
) -> None:
    """What no lifecycle can prevent (chart README, "Encoder lifecycle"): an encoder killed while a request
    is at it (a lost node) ends the language-only prefill, in SGLang 0.5.23 through
    request_receiver._apply_mm_receiver and a TypeError in output_streamer.py. The encoder is frozen
    (SIGSTOP) until the prefill has a connection open to it (its kernel still accepts them), so that the
    request is certainly at it when it dies; the bootstrap server's health checks are off, so that only the
    request connects the prefill to it. The kubelet restarts the prefill, the registrar registers the
    surviving encoder with it again, and requests are served again."""
    no_probes = {"encoderDiscovery.healthCheck.intervalSeconds": 0}
    topology = Topology.from_objects(render_chart(values_files=[SIM_VALUES], set_values=no_probes))
    encoder = topology.roles["vlm-encoder"]
    model = served_model(topology)

    def request() -> bool:
        async def send() -> bool:
            async with aiohttp.ClientSession() as session:
                return succeeded(
                    await ask(session, deployment.router_url, model, ImageSource().request_images())
                )

        return asyncio.run(send())

    with LocalDeployment(topology, tmp_path, servers=servers) as deployment, ThreadPoolExecutor(1) as pool:
        wait_for_registration(deployment, topology, timeout=30)
        victim = deployment.pods[encoder.name][1]
        os.kill(victim.process.pid, signal.SIGSTOP)  # type: ignore[union-attr]
        at_the_encoder = pool.submit(request)  # 8 images: both encoders get some
        prefill = deployment.pods["vlm-prefill"]
        wait_for(
            lambda: group_connected_to(prefill[0].process.pid, victim.ip, encoder.port),  # type: ignore[union-attr]
            60,
            "the prefill to send the frozen encoder its part of the request",
        )
        killed_at = time.monotonic()
        deployment.kill(encoder.name, 1)
        wait_for(lambda: prefill[0].restarts == 1, 60, "the prefill to end and be restarted")
        deployment.wait_ready(prefill)
        listed = wait_for_registration(deployment, topology, timeout=60)
        wait_for(request, 300, "a request to be served again", interval=1.0)
        recovered_s = time.monotonic() - killed_at
        print(
            f"hard kill of an encoder with a request at it, {servers.name} servers: the request "
            f"{'succeeded (the router retried it)' if at_the_encoder.result() else 'failed'}, the prefill "
            f"restarted once, {len(listed)} encoder listed again, served again {recovered_s:.0f} s after"
        )
    assert len(listed) == 1, f"the restarted prefill lists {listed}, not the surviving encoder"
