"""What the chart's encoder lifecycle protects against: the same open-loop scale-down (3 encoders -> 1)
with the chart's registrar, preStop drain and encoder-watcher, and with SGLang 0.5.23's own registration
(`--encoder-register-urls`, as SGLang's docs set it up), whose encoder never unregisters on SIGTERM
(srt/disaggregation/encoder/http_server.py: uvicorn re-raises SIGTERM, the atexit hook never runs).

Both outcomes of a request sent to the stopped but still listed encoder are run: the language-only server
ends (what the real servers did when issue 14 was filed) or only that request fails with 502 (what a
reading of receiver.py predicts); the chart must protect in both. The figures are printed for the notes.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from sglang_epd.deploy.local import LocalDeployment
from sglang_epd.render import EXAMPLES_DIR
from sglang_epd.scenarios import (
    ImageSource,
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
from sglang_epd.waiting import wait_for

SIM_VALUES = EXAMPLES_DIR / "sim-epd.yaml"
DEAD_ENCODER = {"ends the server": "1", "fails the request": "0"}


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


@pytest.mark.parametrize("dead_encoder", list(DEAD_ENCODER))
@pytest.mark.parametrize("lifecycle", ["chart", "sglang"])
def test_scale_down_under_load_loses_requests_only_without_the_charts_lifecycle(
    render_chart, tmp_path: Path, lifecycle: str, dead_encoder: str
) -> None:
    objects = render_chart(values_files=[SIM_VALUES], set_values={"encoder.replicas": 3})
    if lifecycle == "sglang":
        objects = with_sglangs_own_registration(objects)
    topology = Topology.from_objects(objects)
    env = {"SGLANG_SIM_DEAD_ENCODER_ENDS_SERVER": DEAD_ENCODER[dead_encoder]}
    with LocalDeployment(topology, tmp_path, extra_env=env) as deployment:
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
        restarts = deployment.pods["vlm-prefill"][0].restarts
        wait_for(lambda: deployment.running_pods("vlm-prefill"), 30, "the prefill to run")
        listed = next(iter(registered_encoder_urls(deployment, topology).values()))
    late = run.failed_outside(window=0.0)
    print(
        f"scale-down 3 -> 1, lifecycle {lifecycle}, a dead listed encoder {dead_encoder}: {run.summary()}; "
        f"{len(late)} failed that were not in flight; prefill restarts {restarts}; the prefill lists "
        f"{len(listed)} encoder(s) afterwards"
    )
    if lifecycle == "chart":
        assert not run.failed, f"the chart's lifecycle lost requests: {run.summary()}"
        assert (restarts, len(listed)) == (0, 1)
    elif dead_encoder == "fails the request":
        assert late, (
            f"SGLang's own registration lost nothing: the test no longer shows the risk ({run.summary()})"
        )
    else:
        # The router retries what the crash cut off, but the restarted prefill starts with an empty list and
        # SGLang's registration never comes back: the surviving encoder is lost for good.
        assert (restarts, listed) == (1, [])
