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

import copy
from dataclasses import dataclass
from pathlib import Path

import pytest

from sglang_epd.deploy.local import LocalDeployment
from sglang_epd.deploy.servers import SglangServers
from sglang_epd.render import EXAMPLES_DIR
from sglang_epd.scenarios import (
    ImageSource,
    LoadUnderAction,
    load_under_action,
    registered_encoder_urls,
    served_model,
    wait_for_registration,
)
from sglang_epd.topology import (
    REGISTRAR_CONTAINER,
    WATCHER_CONTAINER,
    Topology,
    container_argv,
    parse_flags,
)

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


@pytest.mark.parametrize("lifecycle", ["chart", "sglang"])
def test_scale_down_under_load_loses_requests_only_without_the_charts_lifecycle(
    render_chart, tmp_path: Path, servers: SglangServers, lifecycle: str
) -> None:
    """A request sent to the stopped but still listed encoder ends the language-only server, as real
    SGLang 0.5.23 does (tests/fidelity/test_dead_encoder.py) and the simulator does by default."""
    outcome = scale_down_under_load(render_chart, tmp_path, servers, lifecycle)
    print(outcome.report(f"{servers.name} servers, lifecycle {lifecycle}"))
    if lifecycle == "chart":
        assert not outcome.run.failed, f"the chart's lifecycle lost requests: {outcome.run.summary()}"
        assert (outcome.prefill_restarts, len(outcome.listed)) == (0, 1)
    else:
        # The prefill ends; the restarted one starts with an empty list and SGLang's registration never
        # comes back: the surviving encoder is lost for good.
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
