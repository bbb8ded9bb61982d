"""System tests whose bodies run unchanged against the local deployment and a real cluster
(`--target kube`): they need only the router URL and the rendered topology."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import aiohttp
import pytest

from sglang_epd.load.simrun import locust_command
from sglang_epd.sim.client import ChatResult, chat_body, data_url, image_bytes, post_chat
from sglang_epd.sim.cost import ideal_ttft_ms
from sglang_epd.topology import Topology


@pytest.fixture(scope="module")
def topology(render_chart, values_files: list[Path]) -> Topology:
    """What the values say the deployment is: the rendered RoleBasedGroup."""
    return Topology.from_objects(render_chart(values_files=values_files))


@pytest.fixture(scope="module")
def model(topology: Topology) -> str:
    return next(r for r in topology.roles.values() if r.component != "router").flag("--served-model-name")[0]


def ask(url: str, model: str, images: int) -> ChatResult:
    urls = [data_url(image_bytes(1280, 720, "JPEG", seed=1000 + i), "jpeg") for i in range(images)]

    async def send() -> ChatResult:
        async with aiohttp.ClientSession() as session:
            body = chat_body("Describe the images.", urls, max_tokens=16, stream=True, model=model)
            return await post_chat(session, url, body, timeout=600)

    return asyncio.run(send())


@pytest.mark.parametrize("images", [1, 8])
def test_image_request_returns_text(deployment, model: str, images: int) -> None:
    result = ask(deployment.router_url, model, images)
    assert result.status == 200, result.body
    assert result.done and result.text.strip(), "a streamed, non-empty answer"


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
        slo_ms = 2.5 * ideal_ttft_ms([(1920, 1080)] * 8, encoder.replicas if encoder else 0, text_tokens=32)
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
