"""SGLang 0.5.23's encoder lifecycle with the REAL encoder server (`launch_server --encoder-only` on the
CPU, a tiny random Qwen2.5-VL) beside the simulator's: registered with `--encoder-register-urls`, then
stopped by SIGTERM (what the kubelet sends) or SIGINT, against SGLang's own EncoderBootstrapServer.

Bug (a) of issue 14, shown with the real server: after SIGTERM the encoder stays listed (uvicorn re-raises
SIGTERM and the atexit unregister in srt/disaggregation/encoder/http_server.py never runs); SIGINT
unregisters. The chart therefore never relies on it (its registrar's preStop unregisters first).
"""

from __future__ import annotations

import json
import signal
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from sglang_epd.waiting import wait_for
from tests.sim.simproc import SimLauncher, free_port

from .real_sglang import RealSglang

NO_HEALTH_CHECKS = {"SGLANG_ENCODER_BOOTSTRAP_HEALTH_CHECK_INTERVAL": "0"}  # only (un)registration counts
StartEncoder = Callable[
    [str, int, str], Callable[[int], int]
]  # (host, port, bootstrap) -> stop(signal) -> rc


@pytest.fixture
def start_real_encoder(sglang: RealSglang, tiny_model: Path) -> StartEncoder:
    def start(host: str, port: int, bootstrap: str) -> Callable[[int], int]:
        encoder = sglang.server(
            tiny_model, host, port, "--encoder-only", "--encoder-register-urls", bootstrap
        )
        return encoder.stop

    return start


@pytest.fixture
def start_sim_encoder(sims: SimLauncher) -> StartEncoder:
    def start(host: str, port: int, bootstrap: str) -> Callable[[int], int]:
        encoder = sims.start("--encoder-only", "--encoder-register-urls", bootstrap, host=host, port=port)
        return encoder.stop

    return start


def listed(bootstrap: str) -> list[str]:
    with urllib.request.urlopen(f"{bootstrap}/list_encoder_urls", timeout=5) as response:
        return json.loads(response.read())["encoder_urls"]


@pytest.mark.parametrize(
    ("signum", "exit_code", "still_listed"),
    [(signal.SIGTERM, -signal.SIGTERM, True), (signal.SIGINT, 0, False)],
    ids=["sigterm", "sigint"],
)
@pytest.mark.parametrize("encoder", ["sglang", "simulator"])
def test_an_encoder_unregisters_itself_on_sigint_only(
    request: pytest.FixtureRequest,
    sglang: RealSglang,
    sims: SimLauncher,
    encoder: str,
    signum: int,
    exit_code: int,
    still_listed: bool,
) -> None:
    host = sims.address()
    bootstrap = sglang.bootstrap_server(host, free_port(host), NO_HEALTH_CHECKS, []).url
    start: StartEncoder = request.getfixturevalue(
        "start_real_encoder" if encoder == "sglang" else "start_sim_encoder"
    )
    port = free_port(host)
    url = f"http://{host}:{port}"
    stop = start(host, port, bootstrap)
    wait_for(lambda: listed(bootstrap) == [url], 30, f"{url} to register itself with {bootstrap}")
    assert stop(signum) == exit_code
    assert listed(bootstrap) == ([url] if still_listed else [])
