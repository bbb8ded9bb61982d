"""Bug (b) of issue 14 with the REAL servers, and what the chart's encoder-watcher does about it.

A language-only server (`launch_server --language-only --encoder-urls ...` on the CPU, a tiny random
Qwen2.5-VL) whose listed encoder was killed: SGLang 0.5.23 dispatches the next image request to it, the
dispatch fails (502 inside the scheduler), and the scheduler dies of
`TypeError: object of type 'NoneType' has no len()` in output_streamer.py (via
request_receiver._apply_mm_receiver), which takes the whole server down (kill_process_tree). With the
chart's encoder-watcher beside it (charts/sglang-epd/files/encoder-registrar.py `watch`), the dead encoder
is unregistered within a second, and the same request is served: with no encoder listed, a Qwen2.5-VL
language-only server encodes the images itself (point 6 of the issue). With
`--encoder-transfer-backend zmq_to_tokenizer` the request is refused with a 503 and the server lives.

The simulator must do the same in both cases (SGLANG_SIM_DEAD_ENCODER_ENDS_SERVER defaults to 1).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from sglang_epd.render import CHART_DIR
from sglang_epd.sim.client import ChatResult, chat_body, data_url, image_bytes, post_chat
from sglang_epd.waiting import wait_for
from tests.sim.simproc import SimLauncher, free_port

from .real_sglang import RealSglang

WATCHER = CHART_DIR / "files" / "encoder-registrar.py"
NO_HEALTH_CHECKS = {"SGLANG_ENCODER_BOOTSTRAP_HEALTH_CHECK_INTERVAL": "0"}  # only the watcher takes it out
CRASH_TIMEOUT_S = 60.0  # SGLang kills its process tree 5 s after the scheduler died


@dataclass
class Pair:
    """A language-only server with one listed encoder, the processes behind them, and a model name."""

    language: str
    bootstrap: str
    model: str
    language_process: subprocess.Popen
    kill_encoder: Callable[[], None]


def real_pair(sglang: RealSglang, sims: SimLauncher, model: Path, *flags: str) -> Pair:
    host = sims.address()
    encoder = sglang.server(model, host, free_port(host), "--encoder-only", *flags)
    bootstrap_port = free_port(host)
    language = sglang.server(
        model,
        host,
        free_port(host),
        "--language-only",
        "--encoder-urls",
        encoder.url,
        "--encoder-bootstrap-port",
        str(bootstrap_port),
        *flags,
        env=NO_HEALTH_CHECKS,
    )
    return Pair(
        language.url,
        f"http://{host}:{bootstrap_port}",
        str(model),
        language.process,
        lambda: encoder.stop(signal.SIGKILL),
    )


def sim_pair(sims: SimLauncher, *flags: str) -> Pair:
    host = sims.address()
    encoder = sims.start("--encoder-only", *flags, host=host)
    bootstrap_port = free_port(host)
    language = sims.start(
        "--language-only",
        "--encoder-urls",
        encoder.url,
        "--encoder-bootstrap-port",
        str(bootstrap_port),
        *flags,
        host=host,
        env=NO_HEALTH_CHECKS,
    )
    model = "Qwen/Qwen2.5-VL-7B-Instruct"
    return Pair(
        language.url,
        f"http://{host}:{bootstrap_port}",
        model,
        language.process,
        lambda: encoder.stop(signal.SIGKILL),
    )


@pytest.fixture(params=["sglang", "simulator"])
def start_pair(request: pytest.FixtureRequest, sims: SimLauncher) -> Callable[..., Pair]:
    """Starts an encoder and a language-only server listing it, both with the given extra flags."""
    if request.param == "simulator":
        return lambda *flags: sim_pair(sims, *flags)
    sglang, model = request.getfixturevalue("sglang"), request.getfixturevalue("tiny_model")
    return lambda *flags: real_pair(sglang, sims, model, *flags)


@pytest.fixture
def pair(start_pair: Callable[..., Pair]) -> Pair:
    return start_pair()


@pytest.fixture
def start_watcher(tmp_path: Path) -> Iterator[Callable[[Pair], None]]:
    started: list[subprocess.Popen] = []

    def start(pair: Pair) -> None:
        host, port = pair.bootstrap.removeprefix("http://").rsplit(":", 1)
        argv = [sys.executable, str(WATCHER), "watch", "--bootstrap-port", port, "--interval", "0.5"]
        log = (tmp_path / "encoder-watcher.log").open("wb")
        started.append(
            subprocess.Popen(argv, env={**os.environ, "SGLANG_HOST_IP": host}, stdout=log, stderr=log)
        )

    yield start
    for process in started:
        process.terminate()
        process.wait(10)


def listed(bootstrap: str) -> list[str]:
    with urllib.request.urlopen(f"{bootstrap}/list_encoder_urls", timeout=5) as response:
        return json.loads(response.read())["encoder_urls"]


def image_request(pair: Pair) -> ChatResult | Exception:
    body = chat_body("What is in this image?", [data_url(image_bytes(64, 64))], model=pair.model, stream=True)

    async def send() -> ChatResult:
        async with aiohttp.ClientSession() as session:
            return await post_chat(session, pair.language, body, timeout=CRASH_TIMEOUT_S)

    try:
        return asyncio.run(send())
    except (aiohttp.ClientError, TimeoutError) as error:
        return error


# On real servers this is tests/e2e/test_encoder_lifecycle.py's hard-killed encoder [real] (the prefill
# dies of it and is restarted): running it here again would cost CI a minute for the same evidence.
@pytest.mark.parametrize("start_pair", ["simulator"], indirect=True)
def test_a_request_to_a_dead_listed_encoder_ends_the_language_server(pair: Pair) -> None:
    assert isinstance(image_request(pair), ChatResult)  # served through the encoder
    pair.kill_encoder()
    answer = image_request(pair)
    wait_for(lambda: pair.language_process.poll() is not None, CRASH_TIMEOUT_S, "the language server to end")
    assert not isinstance(answer, ChatResult) or answer.status != 200 or not answer.done, answer


def test_the_charts_encoder_watcher_unregisters_it_first(
    pair: Pair, start_watcher: Callable[[Pair], None]
) -> None:
    start_watcher(pair)
    encoder = listed(pair.bootstrap)
    pair.kill_encoder()
    wait_for(lambda: listed(pair.bootstrap) == [], 10, f"the watcher to unregister {encoder}")
    answer = image_request(pair)
    assert isinstance(answer, ChatResult) and answer.status == 200 and answer.done, answer
    assert answer.error is None and pair.language_process.poll() is None


def test_with_embeddings_to_the_tokenizer_the_request_is_refused_and_the_server_lives(
    start_pair: Callable[..., Pair],
) -> None:
    """--encoder-transfer-backend zmq_to_tokenizer: the tokenizer waits for the embeddings itself and
    refuses a request it got none for (tokenizer_manager.py, _reject_missing_dispatched_encoder_embedding)."""
    pair = start_pair("--encoder-transfer-backend", "zmq_to_tokenizer")
    pair.kill_encoder()
    answer = image_request(pair)
    assert isinstance(answer, ChatResult) and answer.status == 503, answer
    assert "did not return multimodal embeddings" in json.dumps(answer.body)
    assert pair.language_process.poll() is None
