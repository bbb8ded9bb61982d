"""EPD encoders: registration, health-check eviction and recovery, the split of a request's images."""

from __future__ import annotations

import signal

import aiohttp
import pytest

from sglang_epd.sim.client import chat_body, data_url, image_bytes, wait_for
from sglang_epd.waiting import http_status

from .simproc import Http, SimLauncher, SimServer, free_port

BOOT = "--encoder-bootstrap-port"


def images(count: int, first_seed: int = 0) -> list[str]:
    return [data_url(image_bytes(64, 64, seed=first_seed + i)) for i in range(count)]


def known_encoders(http: Http, language: SimServer) -> list[str]:
    status, body = http.get_json(f"{language.port_url(BOOT)}/list_encoder_urls")
    assert status == 200
    return body["encoder_urls"]  # type: ignore[index]


def encoder_state(http: Http, language: SimServer, url: str) -> dict:
    _, info = http.get_json(f"{language.url}/server_info")
    return next(e for e in info["sglang_sim"]["encoders"] if e["url"] == url)  # type: ignore[index]


@pytest.fixture
def language_server(sims: SimLauncher) -> SimServer:
    """Dynamic discovery, no encoder yet; health checks too rare to interfere."""
    return sims.start(
        "--language-only",
        "--enable-metrics",
        free_port_flags=(BOOT,),
        env={"SGLANG_ENCODER_BOOTSTRAP_HEALTH_CHECK_INTERVAL": "60"},
    )


@pytest.fixture
def two_encoders(sims: SimLauncher, language_server: SimServer, http: Http) -> list[SimServer]:
    """Two encoders registered with `language_server` (the chart's dynamic discovery)."""
    flags = ("--encoder-only", "--enable-metrics", "--encoder-register-urls", language_server.port_url(BOOT))
    encoders = [sims.start(*flags, wait=False) for _ in range(2)]  # start both at once
    for encoder in encoders:
        sims.wait_healthy(encoder)
    wait_for(lambda: len(known_encoders(http, language_server)) == 2, 10, "both encoders to register")
    return encoders


@pytest.fixture
def encoder_before_language_server(sims: SimLauncher) -> tuple[SimServer, SimServer]:
    """An encoder whose first registration attempt fails, then the language server it registers with."""
    host = sims.address()
    boot = free_port(host)
    encoder = sims.start("--encoder-only", "--encoder-register-urls", f"http://{host}:{boot}")
    wait_for(lambda: "attempt 1/30" in encoder.log(), 10, "a failed registration attempt")
    return encoder, sims.start("--language-only", BOOT, str(boot), host=host)


@pytest.fixture
def encoder_using_a_pod_dns_name(sims: SimLauncher, language_server: SimServer) -> SimServer:
    """The chart's --encoder-register-urls names the prefill pod; SGLANG_SIM_HOSTS maps it to loopback."""
    pod = "demo-sglang-epd-vlm-prefill-0.s-demo-sglang-epd-vlm-prefill"
    return sims.start(
        "--encoder-only",
        "--encoder-register-urls",
        f"http://{pod}:{language_server.flag(BOOT)}",
        env={"SGLANG_SIM_HOSTS": f"{pod}={language_server.host}"},
    )


@pytest.fixture
def watched_encoder(sims: SimLauncher) -> SimServer:
    return sims.start("--encoder-only")


@pytest.fixture
def watching_language_server(sims: SimLauncher, watched_encoder: SimServer) -> SimServer:
    """A static --encoder-urls list and a 0.1 s health-check interval."""
    return sims.start(
        "--language-only",
        "--encoder-urls",
        watched_encoder.url,
        free_port_flags=(BOOT,),
        env={"SGLANG_ENCODER_BOOTSTRAP_HEALTH_CHECK_INTERVAL": "0.1"},
    )


@pytest.fixture
def language_server_with_dead_encoder(sims: SimLauncher) -> SimServer:
    host = sims.address()
    dead = f"http://{host}:{free_port(host)}"
    return sims.start(
        "--language-only",
        "--encoder-urls",
        dead,
        free_port_flags=(BOOT,),
        env={"SGLANG_ENCODER_BOOTSTRAP_HEALTH_CHECK_INTERVAL": "60"},
    )


@pytest.fixture
def cached_encoder(sims: SimLauncher) -> SimServer:
    return sims.start("--encoder-only", "--enable-prefix-mm-cache", "--enable-metrics")


def test_sigint_unregisters_the_encoder(
    language_server: SimServer, two_encoders: list[SimServer], http: Http
) -> None:
    """SGLang's atexit hook unregisters after a clean exit (SIGINT: uvicorn returns, atexit runs)."""
    assert sorted(known_encoders(http, language_server)) == sorted(e.url for e in two_encoders)
    assert two_encoders[0].stop(signal.SIGINT) == 0
    # Health checks run every 60 s here, so only the encoder's DELETE /unregister_encoder_url explains this.
    assert known_encoders(http, language_server) == [two_encoders[1].url]


def test_sigterm_leaves_the_encoder_registered(
    language_server: SimServer, two_encoders: list[SimServer], http: Http
) -> None:
    """SGLang 0.5.23 on SIGTERM (what the kubelet sends): uvicorn re-raises it and the atexit hook never
    runs, so the stopped encoder stays listed until the health checks evict it."""
    assert two_encoders[0].stop(signal.SIGTERM) == -signal.SIGTERM
    assert sorted(known_encoders(http, language_server)) == sorted(e.url for e in two_encoders)
    assert "unregistered" not in two_encoders[0].log()


def test_registration_comes_before_listening(
    sims: SimLauncher, language_server: SimServer, http: Http
) -> None:
    """launch_server starts the registration thread, then uvicorn: for a while the language server lists
    an encoder that refuses connections."""
    encoder = sims.start(
        "--encoder-only",
        "--encoder-register-urls",
        language_server.port_url(BOOT),
        env={"SGLANG_SIM_ENCODER_LISTEN_DELAY": "3"},
        wait=False,
    )
    wait_for(lambda: known_encoders(http, language_server) == [encoder.url], 10, "the registration")
    assert http_status(f"{encoder.url}/health") is None
    sims.wait_healthy(encoder)


def test_registration_retries_until_the_language_server_is_up(
    encoder_before_language_server: tuple[SimServer, SimServer], http: Http
) -> None:
    encoder, language = encoder_before_language_server
    wait_for(lambda: known_encoders(http, language) == [encoder.url], 10, "the encoder to register")
    assert f"registered {encoder.url} with" in encoder.log()


def test_pod_dns_names_resolve_through_sglang_sim_hosts(
    language_server: SimServer, encoder_using_a_pod_dns_name: SimServer, http: Http
) -> None:
    encoder = encoder_using_a_pod_dns_name
    wait_for(lambda: known_encoders(http, language_server) == [encoder.url], 10, "registration by DNS name")


def test_dead_encoder_is_evicted_after_3_failures_and_readded(
    sims: SimLauncher, watched_encoder: SimServer, watching_language_server: SimServer, http: Http
) -> None:
    language = watching_language_server
    assert known_encoders(http, language) == [watched_encoder.url]
    watched_encoder.stop(signal.SIGKILL)  # no unregistration: only health checks can notice
    wait_for(lambda: known_encoders(http, language) == [], 10, "eviction")
    assert encoder_state(http, language, watched_encoder.url)["evicted"]
    assert "after 3 consecutive failures" in language.log()

    sims.restart(watched_encoder)
    wait_for(lambda: known_encoders(http, language) == [watched_encoder.url], 10, "re-adding on recovery")
    assert encoder_state(http, language, watched_encoder.url) == {
        "url": watched_encoder.url,
        "evicted": False,
        "consecutive_failures": 0,
    }


def test_8_images_on_2_encoders_split_4_and_4(
    language_server: SimServer, two_encoders: list[SimServer], http: Http
) -> None:
    result = http.chat(language_server.url, chat_body("compare", images(8), max_tokens=2))
    assert result.status == 200, result.body
    parts = result.sim["encoders"]
    assert sorted(p["images"] for p in parts) == [4, 4]
    assert sorted(p["image_indices"] for p in parts) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert {p["url"] for p in parts} == {e.url for e in two_encoders}
    for encoder in two_encoders:
        assert http.metric(encoder.url, "sglang:encoder_mm_items_per_request_sum") == 4
        assert http.metric(encoder.url, "sglang:encoder_request_e2e_latency_seconds_count") == 1
        assert (
            http.metric(
                language_server.url, "sglang_sim:encoder_dispatched_images_total", encoder=encoder.url
            )
            == 4
        )


def test_3_images_on_2_encoders_split_in_list_order(
    language_server: SimServer, two_encoders: list[SimServer], http: Http
) -> None:
    """MMReceiver.encode: contiguous slices in the order the encoders are listed; which one gets the
    larger share is random (_assign_items_by_modality)."""
    listed = known_encoders(http, language_server)
    splits = set()
    for _ in range(12):
        result = http.chat(language_server.url, chat_body("compare", images(3), max_tokens=1))
        parts = sorted(result.sim["encoders"], key=lambda p: listed.index(p["url"]))
        splits.add(tuple(tuple(p["image_indices"]) for p in parts))
    assert splits == {((0, 1), (2,)), ((0,), (1, 2))}  # both, with probability 1 - 2 * 2**-12


def test_encoder_order_is_shuffled_per_request(
    language_server: SimServer, two_encoders: list[SimServer], http: Http
) -> None:
    body = chat_body("one image", images(1), max_tokens=1)
    results = http.chat_all([(language_server.url, body)] * 20)
    used = {r.sim["encoders"][0]["url"] for r in results}
    assert used == {e.url for e in two_encoders}  # all on one encoder: probability 2 * 2**-20


def test_prefix_mm_cache_hits_cost_nothing(cached_encoder: SimServer, http: Http) -> None:
    image = {"index": 0, "width": 1920, "height": 1080, "hash": "same-bytes"}
    first = http.post_json(f"{cached_encoder.url}/encode", {"rid": "a", "part_index": 0, "images": [image]})[
        1
    ]
    second = http.post_json(f"{cached_encoder.url}/encode", {"rid": "b", "part_index": 0, "images": [image]})[
        1
    ]
    assert first["images"][0] == {"index": 0, "hash": "same-bytes", "vision_tokens": 2691, "cache_hit": False}
    assert second["images"][0]["cache_hit"] is True
    assert first["timings"]["forward_ms"] == pytest.approx(5 + 0.03 * 2691)
    assert second["timings"]["forward_ms"] == 0
    assert http.metric(cached_encoder.url, "sglang:encoder_cache_hit_files_total") == 1


def test_an_encoder_preprocesses_off_its_gpu(sims: SimLauncher, http: Http) -> None:
    """Every share is loaded and run through the image processor on the CPU before it asks for the GPU
    (disaggregation/encoder/server.py MMEncoder.batch_encode), so a small share is not held up by a large
    one still in preprocessing."""
    cpu_work = {"SGLANG_SIM_IMAGE_LOAD_MS_PER_TOKEN": "0.01",
                "SGLANG_SIM_ENCODER_PREPROCESS_MS_PER_TOKEN": "0.05"}
    encoder = sims.start("--encoder-only", env=cpu_work)
    big = [{"index": i, "width": 1920, "height": 1080, "hash": f"big-{i}"} for i in range(4)]
    small = [{"index": 0, "width": 448, "height": 448, "hash": "small"}]
    (_, first), (_, second) = http.post_json_all(
        [(f"{encoder.url}/encode", {"rid": "big", "part_index": 0, "images": big}),
         (f"{encoder.url}/encode", {"rid": "small", "part_index": 0, "images": small})]
    )  # fmt: skip
    assert first["timings"]["preprocess_ms"] == pytest.approx(0.01 * 2691 + 0.05 * 4 * 2691)
    assert second["timings"]["preprocess_ms"] == pytest.approx(0.01 * 256 + 0.05 * 256)
    assert second["timings"]["e2e_ms"] < first["timings"]["preprocess_ms"]


def test_without_encoders_the_language_server_encodes_itself(language_server: SimServer, http: Http) -> None:
    """A Qwen2.5-VL --language-only server keeps its vision tower (srt/models/qwen2_5_vl.py): broken
    registration is slow, not failed (receiver.py, _send_encode_request)."""
    result = http.chat(language_server.url, chat_body("look", images(2)))
    assert result.status == 200, result.body
    assert result.sim["encoders"] == [] and result.sim["encode_ms"] > 0
    assert "processing without encoder disaggregation" in language_server.log()


def test_a_listed_dead_encoder_ends_the_language_server(
    language_server_with_dead_encoder: SimServer, http: Http
) -> None:
    """SGLang 0.5.23: the failed dispatch kills the scheduler, and with it the whole server."""
    server = language_server_with_dead_encoder
    with pytest.raises(aiohttp.ServerDisconnectedError):
        http.chat(server.url, chat_body("look", images(2), stream=True))
    assert server.process.wait(10) == -signal.SIGKILL
    assert "TypeError in output_streamer.stream_output" in server.log()


@pytest.fixture
def dead_encoder_url(sims: SimLauncher) -> str:
    host = sims.address()
    return f"http://{host}:{free_port(host)}"


def test_without_the_crash_a_dead_encoder_aborts_the_request_with_502(
    sims: SimLauncher, dead_encoder_url: str, http: Http
) -> None:
    """What a reading of receiver.py predicts (_extract_encoder_error: BAD_GATEWAY), for a simulator told
    that the server survives: the streamed request gets its 200 and the error event."""
    server = sims.start(
        "--language-only",
        "--encoder-urls",
        dead_encoder_url,
        free_port_flags=(BOOT,),
        env={
            "SGLANG_ENCODER_BOOTSTRAP_HEALTH_CHECK_INTERVAL": "60",
            "SGLANG_SIM_DEAD_ENCODER_ENDS_SERVER": "0",
        },
    )
    streamed = http.chat(server.url, chat_body("look", images(2), stream=True))
    assert (streamed.status, streamed.done, streamed.chunks[0]["error"]["type"]) == (200, True, "BAD_GATEWAY")
    plain = http.chat(server.url, chat_body("look", images(2)))
    assert (plain.status, plain.body["type"]) == (502, "502")
    assert server.process.poll() is None


@pytest.mark.parametrize("encoders", ["dead", "none"])
def test_zmq_to_tokenizer_refuses_images_it_got_no_embeddings_for(
    sims: SimLauncher, dead_encoder_url: str, http: Http, encoders: str
) -> None:
    """tokenizer_manager.py, _reject_missing_dispatched_encoder_embedding: 503 before any output, no local
    encoding and no crash."""
    urls = ("--encoder-urls", dead_encoder_url) if encoders == "dead" else ()
    server = sims.start(
        "--language-only",
        "--encoder-transfer-backend",
        "zmq_to_tokenizer",
        *urls,
        free_port_flags=(BOOT,),
        env={"SGLANG_ENCODER_BOOTSTRAP_HEALTH_CHECK_INTERVAL": "60"},
    )
    result = http.chat(server.url, chat_body("look", images(2), stream=True))
    assert (result.status, result.body["type"]) == (503, "503")
    assert "The encoder did not return multimodal embeddings" in result.error
    assert server.process.poll() is None
