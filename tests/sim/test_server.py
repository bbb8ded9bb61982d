"""A simulator process: start-up refusals, loading, the info endpoints, metrics, shutdown."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from sglang_epd.sim.client import http_status, wait_for

from .simproc import Http, SimLauncher, SimServer


@pytest.fixture
def plain_server(sims: SimLauncher) -> SimServer:
    return sims.start("--served-model-name", "qwen2.5-vl-7b", "--tp-size", "2", "--enable-metrics")


@pytest.fixture
def slow_loading_server(sims: SimLauncher) -> SimServer:
    return sims.start("--language-only", env={"SGLANG_SIM_LOAD_SECONDS": "1"}, wait=False)


@pytest.fixture
def slow_loading_encoder(sims: SimLauncher) -> SimServer:
    return sims.start("--encoder-only", env={"SGLANG_SIM_LOAD_SECONDS": "1"}, wait=False)


@pytest.fixture
def server_without_metrics(sims: SimLauncher) -> SimServer:
    return sims.start()


@pytest.fixture
def encoder(sims: SimLauncher) -> SimServer:
    return sims.start("--encoder-only", "--enable-metrics")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--encoder-only", "--language-only"], "--encoder-only and --language-only"),
        (["--encoder-only", "--disaggregation-mode", "decode"], "--encoder-only cannot be combined"),
        (["--enable-prefix-mm-cache", "--language-only"], "only supported with --encoder-only"),
        (["--disaggregation-mode", "both"], "invalid choice"),
    ],
)
def test_startup_conflicts_exit_non_zero(flags: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sglang_epd.sim", "--port", "1", *flags],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert message in result.stderr


def test_health_is_503_while_loading(slow_loading_server: SimServer) -> None:
    health = f"{slow_loading_server.url}/health"
    assert wait_for(lambda: http_status(health), 30, "the server to listen") == 503
    wait_for(lambda: http_status(health) == 200, 30, "the end of loading")


def test_encoder_listens_only_once_loaded(slow_loading_encoder: SimServer) -> None:
    """SGLang's encoder runs uvicorn after the model loaded (encoder/http_server.py, launch_server): until
    then nothing answers, and its first answer is a healthy one."""
    health = f"{slow_loading_encoder.url}/health"
    assert http_status(health) is None
    assert wait_for(lambda: http_status(health), 30, "the encoder to listen") == 200


def test_model_and_server_info(plain_server: SimServer, http: Http) -> None:
    status, models = http.get_json(f"{plain_server.url}/v1/models")
    assert status == 200 and models["data"][0]["id"] == "qwen2.5-vl-7b"
    for path in ("/model_info", "/get_model_info"):
        status, info = http.get_json(f"{plain_server.url}{path}")
        assert status == 200 and info["model_path"] == "Qwen/Qwen2.5-VL-7B-Instruct"
    status, info = http.get_json(f"{plain_server.url}/server_info")
    assert status == 200
    assert (info["tp_size"], info["port"], info["sglang_sim"]["role"]) == (2, plain_server.port, "server")
    assert http_status(f"{plain_server.url}/health_generate") == 200
    assert http_status(f"{plain_server.url}/generate") == 404


def test_encoder_has_no_model_or_server_info_routes(encoder: SimServer, http: Http) -> None:
    for path in ("/v1/models", "/model_info", "/server_info", "/get_server_info"):
        assert http_status(f"{encoder.url}{path}") == 404, path
    assert http_status(f"{encoder.url}/health_generate") == 200
    status, info = http.get_json(f"{encoder.url}/sglang_sim/info")
    assert status == 200 and info["sglang_sim"]["role"] == "encoder"


def test_encoder_exports_no_request_gauges(encoder: SimServer, http: Http) -> None:
    assert http_status(f"{encoder.url}/metrics") == 200
    for name in ("sglang:num_running_reqs", "sglang:num_queue_reqs"):
        assert http.metric_names(encoder.url).isdisjoint({name}), name


def test_metrics_only_with_enable_metrics(plain_server: SimServer, server_without_metrics: SimServer) -> None:
    assert http_status(f"{server_without_metrics.url}/metrics") == 404
    assert http_status(f"{plain_server.url}/metrics") == 200


def test_sigterm_stops_cleanly(plain_server: SimServer) -> None:
    assert plain_server.stop() == 0
    assert "shutting down" in plain_server.log()


def test_an_encoder_dies_of_sigterm_like_uvicorn(encoder: SimServer) -> None:
    """uvicorn re-raises SIGTERM after its graceful shutdown: the process ends by the signal."""
    assert encoder.stop() == -signal.SIGTERM
    assert "shutting down" in encoder.log()
