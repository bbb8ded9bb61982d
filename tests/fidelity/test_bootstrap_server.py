"""SGLang's EncoderBootstrapServer against the simulator's: the same requests, the same answers.

The real one is sglang 0.5.23's own class (srt/disaggregation/encoder/receiver.py), run by
tests/fidelity/real/bootstrap_server.py in .venv-sglang; the simulator's is a --language-only server's
(sglang_epd/sim/encoder_registry.py). Both read the health-check settings from the same SGLang variables.
A new SGLang pin that changes any of these answers fails here.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest

from sglang_epd.waiting import wait_for
from tests.sim.simproc import SimLauncher, free_port

from .fake_encoder import FakeEncoders
from .real_sglang import RealSglang

StartBootstrap = Callable[[dict[str, str], list[str]], str]  # (env, --encoder-urls) -> base URL

INTERVAL_S = 0.25
HEALTH_ENV = {
    "SGLANG_ENCODER_BOOTSTRAP_HEALTH_CHECK_INTERVAL": str(INTERVAL_S),
    "SGLANG_ENCODER_BOOTSTRAP_HEALTH_CHECK_TIMEOUT": str(INTERVAL_S),
    "SGLANG_ENCODER_BOOTSTRAP_EVICTED_TTL": "3",
}
NO_HEALTH_CHECKS = {"SGLANG_ENCODER_BOOTSTRAP_HEALTH_CHECK_INTERVAL": "0"}


@pytest.fixture
def start_sglang(sglang: RealSglang, sims: SimLauncher) -> StartBootstrap:
    def start(env: dict[str, str], static: list[str]) -> str:
        host = sims.address()
        return sglang.bootstrap_server(host, free_port(host), env, static).url

    return start


@pytest.fixture
def start_simulator(sims: SimLauncher) -> StartBootstrap:
    def start(env: dict[str, str], static: list[str]) -> str:
        host = sims.address()
        port = free_port(host)
        urls = ("--encoder-urls", *static) if static else ()
        sims.start("--language-only", "--encoder-bootstrap-port", str(port), *urls, host=host, env=env)
        return f"http://{host}:{port}"

    return start


def call(method: str, url: str, body: bytes | None = None) -> tuple[int, object]:
    """(status, body as JSON where it is JSON, else text)."""
    request = urllib.request.Request(
        url, data=body, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read().decode()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


def listed(base: str) -> list[str]:
    status, body = call("GET", f"{base}/list_encoder_urls")
    assert status == 200, body
    return body["encoder_urls"]  # type: ignore[index]


def register(base: str, url: str) -> None:
    assert call("POST", f"{base}/register_encoder_url", json.dumps({"url": url}).encode()) == (200, "OK")


def api_transcript(base: str) -> list[tuple[str, object]]:
    def ask(method: str, path: str, body: object = None, raw: bytes | None = None) -> tuple[str, object]:
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        status, answer = call(method, f"{base}{path}", data)
        if status == 422:  # FastAPI's validation error: its wording is FastAPI's, the shape is the contract
            answer = sorted(answer) if isinstance(answer, dict) else answer
        return f"{method} {path} {body if raw is None else raw!r}", (status, answer)

    return [
        ask("GET", "/list_encoder_urls"),
        ask("POST", "/register_encoder_url", {"url": "http://10.0.0.5:30002"}),
        ask("POST", "/register_encoder_url", {"url": "http://10.0.0.5:30002"}),
        ask("POST", "/register_encoder_url", {"url": "not-a-url"}),
        ask("GET", "/list_encoder_urls"),
        ask("DELETE", "/unregister_encoder_url", {"url": "http://10.0.0.9:30002"}),
        ask("DELETE", "/unregister_encoder_url", {"url": "http://10.0.0.5:30002"}),
        ask("POST", "/register_encoder_url", {}),
        ask("POST", "/register_encoder_url", {"url": ""}),
        ask("DELETE", "/unregister_encoder_url", {"other": 1}),
        ask("POST", "/register_encoder_url", [1, 2]),
        ask("POST", "/register_encoder_url", raw=b"not json"),
        ask("GET", "/health"),
        ask("GET", "/list_encoder_urls"),
    ]


def test_api_answers_are_sglangs(start_sglang: StartBootstrap, start_simulator: StartBootstrap) -> None:
    static = ["http://10.0.0.4:30002"]
    real = api_transcript(start_sglang(NO_HEALTH_CHECKS, static))
    simulated = api_transcript(start_simulator(NO_HEALTH_CHECKS, static))
    assert simulated == real
    # What SGLang 0.5.23 answers, spelled out (the scenarios, the kube target and the registrar rely on it).
    answers = dict(real)
    assert answers["GET /list_encoder_urls None"] == (200, {"encoder_urls": [*static, "not-a-url"]})
    assert answers["POST /register_encoder_url {}"] == (400, {"error": "Missing or empty 'url' field"})
    assert answers["DELETE /unregister_encoder_url {'url': 'http://10.0.0.9:30002'}"] == (200, "OK")
    assert answers["POST /register_encoder_url [1, 2]"] == (422, ["detail"])


def health_transcript(start: StartBootstrap, encoders: FakeEncoders) -> dict[str, object]:
    """Registration, eviction after failed probes, revival, the evicted TTL, unregistering an evicted URL."""
    base = start(HEALTH_ENV, [])
    a, b, slow = encoders.start(), encoders.start(), encoders.start()
    seen: dict[str, object] = {}
    register(base, a.url)
    register(base, b.url)

    before = a.set("fail")
    wait_for(lambda: a.url not in listed(base), 10, "the failing encoder to be evicted", interval=0.02)
    seen["failed probes before eviction"] = a.probes - before
    evicted_at = a.probes
    wait_for(lambda: a.probes >= evicted_at + 2, 10, "probes of the evicted encoder")
    a.set("ok")
    wait_for(lambda: a.url in listed(base), 10, "the evicted encoder to come back")
    seen["revived URL listed last"] = listed(base) == [b.url, a.url]

    slow.slow_seconds = 4 * INTERVAL_S
    before = slow.set("slow")
    register(base, slow.url)
    wait_for(lambda: slow.url not in listed(base), 10, "the slow encoder to be evicted", interval=0.02)
    seen["slow probes before eviction"] = slow.probes - before
    slow.set("ok")
    wait_for(lambda: slow.url in listed(base), 10, "the slow encoder to come back")

    b.set("fail")
    wait_for(lambda: b.url not in listed(base), 10, "the second encoder to be evicted", interval=0.02)
    time.sleep(3 + 2 * INTERVAL_S)  # past SGLANG_ENCODER_BOOTSTRAP_EVICTED_TTL: nothing to wait for but time
    dropped_at = b.set("ok")
    time.sleep(4 * INTERVAL_S)  # a revival would have come within two intervals
    seen["revived after the TTL"] = b.url in listed(base)
    seen["probed after the TTL"] = b.probes > dropped_at

    a.set("fail")
    wait_for(lambda: a.url not in listed(base), 10, "the encoder to be evicted again", interval=0.02)
    assert call("DELETE", f"{base}/unregister_encoder_url", json.dumps({"url": a.url}).encode()) == (
        200,
        "OK",
    )
    unregistered_at = a.set("ok")
    time.sleep(4 * INTERVAL_S)
    seen["revived after unregister"] = a.url in listed(base)
    seen["probed after unregister"] = a.probes > unregistered_at
    return seen


def test_health_checks_evict_revive_and_drop_like_sglang(
    start_sglang: StartBootstrap, start_simulator: StartBootstrap, fake_encoders: FakeEncoders
) -> None:
    real = health_transcript(start_sglang, fake_encoders)
    simulated = health_transcript(start_simulator, fake_encoders)
    assert simulated == real
    assert real == {
        "failed probes before eviction": 3,
        "revived URL listed last": True,
        "slow probes before eviction": 3,  # a probe slower than the timeout is a miss
        "revived after the TTL": False,
        "probed after the TTL": False,
        "revived after unregister": False,
        "probed after unregister": False,
    }
