"""The rendered chart, run locally (simulated SGLang roles, the real router), serves image requests the way
the EPD wiring says: images split over the encoders, streamed answers from decode, encoders that scale,
no process left behind. (Scaling and failure under load are target-agnostic: test_system.py.)"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from sglang_epd.deploy.local import LocalDeployment, LocalDeploymentError, helm_test_pods
from sglang_epd.render import EXAMPLES_DIR
from sglang_epd.scenarios import registered_encoder_urls
from sglang_epd.sim.client import ChatResult, chat_body, data_url, image_bytes, post_chat
from sglang_epd.topology import Topology
from sglang_epd.waiting import wait_for

SIM_VALUES = EXAMPLES_DIR / "sim-epd.yaml"
MODEL = "qwen2.5-vl-7b"


@pytest.fixture(autouse=True)
def _local_target_only(target: str) -> None:
    if target != "local":
        pytest.skip("runs the simulator on this machine: only with --target local")


@pytest.fixture(scope="module")
def images() -> list[str]:
    """Eight distinct 1080p JPEGs (distinct content, so no cache can hide encoder work)."""
    return [data_url(image_bytes(1920, 1080, "JPEG", seed=i), "jpeg") for i in range(8)]


def _deployment(render_chart, tmp_path: Path, **set_values: object) -> LocalDeployment:
    objects = render_chart(values_files=[SIM_VALUES], set_values=set_values)
    return LocalDeployment(Topology.from_objects(objects), tmp_path)


@pytest.fixture(scope="module")
def epd(render_chart, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalDeployment]:
    with _deployment(render_chart, tmp_path_factory.mktemp("epd")) as deployment:
        yield deployment


def ask(url: str, images: list[str], max_tokens: int = 6) -> ChatResult:
    async def send() -> ChatResult:
        async with aiohttp.ClientSession() as session:
            body = chat_body(
                "Describe the images.",
                images,
                max_tokens=max_tokens,
                stream=True,
                include_usage=True,
                model=MODEL,
            )
            return await post_chat(session, url, body)

    return asyncio.run(send())


def encoders_known(deployment: LocalDeployment) -> list[str]:
    (listed,) = registered_encoder_urls(deployment, deployment.topology).values()
    return listed


def split(result: ChatResult) -> list[int]:
    """Images per encoder for one request, from the server-side timings the answer carries."""
    return sorted(part["images"] for part in result.chunks[-1]["sglang_sim"]["encoders"])


def test_eight_images_through_router_are_split_over_encoders(epd: LocalDeployment, images: list[str]) -> None:
    result = ask(epd.router_url, images)
    assert result.status == 200 and result.done
    first = result.chunks[0]["choices"][0]["delta"]
    assert first["role"] == "assistant"
    assert result.text.strip(), "the streamed answer has text"
    assert result.usage["completion_tokens"] == 6
    timings = result.chunks[-1]["sglang_sim"]
    assert timings["role"] == "decode", "the client's stream comes from decode"
    assert timings["images"] == 8
    assert split(result) == [4, 4]
    assert {part["url"] for part in timings["encoders"]} == set(encoders_known(epd))


def test_encoders_registered_with_pod_addresses(epd: LocalDeployment) -> None:
    assert encoders_known(epd) == sorted(pod.url() for pod in epd.role_pods("encoder"))


def test_each_pod_gets_its_own_emptydirs(epd: LocalDeployment) -> None:
    """HOME is an emptyDir in the chart (SGLang's caches): locally a directory of each pod, never the path
    in the container."""
    homes = {
        pod.identity.name: pod.env["HOME"]
        for pods in epd.pods.values()
        for pod in pods
        if pod.role.component != "router"
    }
    assert len(set(homes.values())) == len(homes) > 0
    for name, home in homes.items():
        assert home == str(epd.workdir / "volumes" / name / "home") and Path(home).is_dir()


def test_one_image_request(epd: LocalDeployment, images: list[str]) -> None:
    result = ask(epd.router_url, images[:1])
    assert result.status == 200 and result.text.strip() and split(result) == [1]


@pytest.mark.parametrize(
    "values",
    [
        {"encoderDiscovery.mode": "static", "encoder.replicas": 3},
        {"mode": "encoder+collocated", "encoder.replicas": 2},
        {"mode": "pd"},
        {"mode": "collocated", "server.replicas": 2},
    ],
    ids=["epd-static", "encoder+collocated", "pd", "collocated"],
)
def test_every_mode_answers_an_eight_image_request(
    render_chart, tmp_path: Path, images: list[str], values: dict
) -> None:
    with _deployment(render_chart, tmp_path, **values) as deployment:
        result = ask(deployment.router_url, images)
        assert result.status == 200 and result.done and result.text.strip()
        timings = result.chunks[-1]["sglang_sim"]
        encoders = values.get("encoder.replicas", 0) if values.get("mode") != "pd" else 0
        if values.get("mode") in ("pd", "collocated"):
            assert not timings.get("encoders"), "no encoder role: the serving server encodes itself"
        else:
            assert len(split(result)) == encoders and sum(split(result)) == 8


def test_scaling_encoders_adds_them_to_the_split(render_chart, tmp_path: Path, images: list[str]) -> None:
    with _deployment(render_chart, tmp_path, **{"encoder.replicas": 1}) as deployment:
        assert split(ask(deployment.router_url, images)) == [8]
        deployment.scale("vlm-encoder", 3)
        wait_for(lambda: len(encoders_known(deployment)) == 3, 10, "3 registered encoders")
        assert split(ask(deployment.router_url, images)) == [2, 3, 3]
        deployment.scale("vlm-encoder", 2)
        wait_for(lambda: len(encoders_known(deployment)) == 2, 10, "the removed encoder to unregister")
        assert split(ask(deployment.router_url, images)) == [4, 4]


def test_stop_leaves_no_process(render_chart, tmp_path: Path) -> None:
    deployment = _deployment(render_chart, tmp_path).start()
    pids = [process.pid for process in deployment.processes()]
    assert len(pids) == 8  # 5 pods; the 2 encoders run their registrar, the prefill its encoder-watcher
    deployment.stop()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


RUN_AND_WAIT = """
import json, sys, tempfile, time
from pathlib import Path
from sglang_epd.deploy.local import LocalDeployment, LocalDeploymentError, helm_test_pods
from sglang_epd.render import render
from sglang_epd.topology import Topology
objects = render(values_files=[sys.argv[1]])
with LocalDeployment(Topology.from_objects(objects), Path(tempfile.mkdtemp())) as deployment:
    print(json.dumps([p.pid for p in deployment.processes()]), flush=True)
    time.sleep(600)
"""


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGKILL"])
def test_no_orphans_when_the_owner_is_interrupted_or_killed(signal_name: str) -> None:
    """Ctrl-C runs the context manager's teardown; a SIGKILLed owner takes its pods along (PDEATHSIG)."""
    owner = subprocess.Popen(
        [sys.executable, "-c", RUN_AND_WAIT, str(SIM_VALUES)],
        stdout=subprocess.PIPE,
        text=True,
        # A shell running CI in the background starts its children with SIGINT ignored, and Python keeps
        # an ignored SIGINT; a user's terminal delivers it. Restore the default so Ctrl-C is what we test.
        preexec_fn=_default_sigint,
    )
    try:
        pids = json.loads(owner.stdout.readline())
        assert len(pids) == 8  # 5 pods; the 2 encoders run their registrar, the prefill its encoder-watcher
        owner.send_signal(getattr(signal, signal_name))
        owner.wait(timeout=30)

        def all_gone() -> bool:
            alive = []
            for pid in pids:
                try:
                    os.kill(pid, 0)
                    alive.append(pid)
                except ProcessLookupError:
                    pass
            return not alive

        wait_for(all_gone, 20, f"the pods {pids} to exit after {signal_name} to their owner")
    finally:
        owner.kill()
        owner.wait()


def test_helm_test_fails_over_its_ttft_bound(epd: LocalDeployment, render_chart) -> None:
    """The other side of test_system's helm test: the hook's script fails a slow answer."""
    objects = render_chart(values_files=[SIM_VALUES], set_values={"helmTest.ttftBoundMs": 1})
    result = epd.helm_test(helm_test_pods(objects))
    assert result.returncode == 1 and "over the bound" in result.stdout, result.stdout


def test_router_discovery_is_refused_with_the_value_to_change(render_chart, tmp_path: Path) -> None:
    with pytest.raises(LocalDeploymentError, match=r"router\.discovery\.enabled=false"):
        _deployment(render_chart, tmp_path, **{"router.discovery.enabled": True, "decode.port": 30000})


def test_a_restarted_prefill_gets_every_encoder_back(render_chart, tmp_path: Path) -> None:
    """SGLang's own registration never registers again; the registrar sidecar does, with no encoder
    restart: the prefill comes back with an empty list and lists both encoders again."""
    with _deployment(render_chart, tmp_path) as deployment:
        assert len(encoders_known(deployment)) == 2
        encoder_pids = [p.process.pid for p in deployment.pods["vlm-encoder"]]
        deployment.kill("vlm-prefill", 0)
        deployment.scale("vlm-prefill", 1)
        wait_for(lambda: len(encoders_known(deployment)) == 2, 10, "both encoders to register again")
        assert [p.process.pid for p in deployment.pods["vlm-encoder"]] == encoder_pids
