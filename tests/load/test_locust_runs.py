"""Locust itself, headless in a subprocess, against the simulated EPD deployment and the stand-in:
raw samples, summary, reports, every exit code, open loop, the ramp, master + worker."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from ..sim.simproc import free_port
from .conftest import write_profile

PASSED, SLO_MISSED, ERRORS, COULD_NOT_RUN = 0, 3, 4, 5


def test_kep_8img_passes_against_the_simulated_epd_deployment(
    sim_router: str, run_locust, tmp_path: Path
) -> None:
    html, csv_prefix = tmp_path / "locust.html", tmp_path / "locust"
    run = run_locust(
        sim_router,
        "--profile",
        "kep-8img",
        "-u",
        "2",
        "-r",
        "2",
        "--slo",
        "ttft_p99_ms=60000",
        "--html",
        str(html),
        "--csv",
        str(csv_prefix),
        seconds=4,
    )
    assert run.returncode == PASSED, run.output
    samples = run.samples()
    assert samples and all(s["ok"] for s in samples)
    for sample in samples:
        assert (sample["images"], sample["resolution"], sample["image_format"]) == (8, "1920x1080", "jpeg")
        assert sample["request_bytes"] > 8_000_000
        assert sample["output_tokens"] == 128 and sample["output_tokens_source"] == "usage"
        assert len(sample["itl_ms"]) == 127
        assert (
            sample["ttft_ms"] >= sample["server_ttft_ms"] > 0
        )  # the decode's own clock sees less of the path
    summary = run.summary()
    assert summary["verdict"]["status"] == "passed"
    assert summary["run"]["model"] == "qwen2.5-vl-7b"  # from the router's /v1/models
    assert summary["metrics"]["ttft_ms"]["count"] == len(samples)
    assert {p.name for p in run.results.glob("*.png")} == {
        "ttft_by_images.png",
        "ttft_over_time.png",
        "ttft_cdf.png",
    }
    with (tmp_path / "locust_stats.csv").open() as stream:
        rows = {(row["Type"], row["Name"]) for row in csv.DictReader(stream)}
    assert {("E2E", "8 images"), ("TTFT", "8 images"), ("TPOT", "8 images")} <= rows
    assert "TTFT" in html.read_text()


def test_an_impossible_slo_is_missed(sim_router: str, run_locust, tiny_profile: Path) -> None:
    run = run_locust(
        sim_router,
        "--profile",
        str(tiny_profile),
        "-u",
        "2",
        "-r",
        "2",
        "--slo",
        "ttft_p95_ms=0.001",
        "--no-plots",
    )
    assert run.returncode == SLO_MISSED, run.output
    assert run.summary()["verdict"]["reasons"][0].startswith("ttft_p95_ms:")
    assert "verdict: SLO MISSED (exit code 3)" in run.output


def test_a_failing_target_is_errors_above_the_allowed_rate(
    standin: str, run_locust, tiny_profile: Path
) -> None:
    run = run_locust(
        f"{standin}/standin/mode=http-500",
        "--profile",
        str(tiny_profile),
        "-u",
        "2",
        "-r",
        "2",
        "--slo",
        "error_rate_max=0.1",
        "--no-plots",
        seconds=2,
    )
    assert run.returncode == ERRORS, run.output
    samples = run.samples()
    assert samples and {s["error"] for s in samples} == {"http_500"}
    assert "stand-in failure" in run.summary()["verdict"]["reasons"][0]


def test_an_unreachable_host_could_not_run(run_locust, tiny_profile: Path) -> None:
    host = f"http://127.0.0.1:{free_port('127.0.0.1')}"
    run = run_locust(host, "--profile", str(tiny_profile), "-u", "1", "-r", "1", "--no-plots")
    assert run.returncode == COULD_NOT_RUN, run.output
    assert f"cannot reach the target {host}" in run.output
    assert run.summary()["verdict"]["status"] == "could_not_run"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--profile", "no-such-profile"], "no profile named 'no-such-profile'"),
        (["--slo", "ttft_p42_ms=1"], "unknown percentile 'p42'"),
        (["--rate", "5", "--ramp", "1,10"], "--rate and --ramp exclude each other"),
    ],
    ids=["profile", "slo", "options"],
)
def test_bad_options_could_not_run(standin: str, run_locust, args: list[str], message: str) -> None:
    run = run_locust(standin, *args)
    assert run.returncode == COULD_NOT_RUN, run.output
    assert message in run.output


def test_a_bad_profile_file_could_not_run(standin: str, run_locust, tmp_path: Path) -> None:
    bad = write_profile(tmp_path / "bad.yaml", images_per_request=8, resolution="8k-ish")
    run = run_locust(standin, "--profile", str(bad))
    assert run.returncode == COULD_NOT_RUN, run.output
    assert f"profile bad ({bad}): resolution: resolution '8k-ish' is neither WIDTHxHEIGHT" in run.output


def test_open_loop_arrivals_keep_their_rate(standin: str, run_locust, tiny_profile: Path) -> None:
    run = run_locust(
        f"{standin}/standin/ttft_ms=300",
        "--profile",
        str(tiny_profile),
        "--rate",
        "20",
        "--arrivals",
        "uniform",
        "-u",
        "2",
        "-r",
        "2",
        "--no-plots",
        seconds=3,
    )
    assert run.returncode == PASSED, run.output
    samples = run.samples()
    starts = sorted(s["start"] for s in samples)
    rate = (len(starts) - 1) / (starts[-1] - starts[0])
    assert rate == pytest.approx(20, rel=0.2)  # a 300 ms server does not slow 50 ms arrivals
    assert all(s["lag_ms"] is not None and s["scheduled"] is not None for s in samples)
    assert run.summary()["schedule_lag_ms"]["p50"] < 20


def test_the_ramp_finds_the_highest_rate_meeting_the_slo(standin: str, run_locust, tmp_path: Path) -> None:
    text_only = write_profile(tmp_path / "text.yaml", images_per_request=0, max_tokens=4)
    # One request at a time, 200 ms each: 3 req/s meets a 500 ms TTFT, 6 req/s overloads the server.
    run = run_locust(
        f"{standin}/standin/service_ms=200",
        "--profile",
        str(text_only),
        "--ramp",
        "3,3,5",
        "--arrivals",
        "uniform",
        "--slo",
        "ttft_p95_ms=500",
        "--no-plots",
        seconds=30,
    )
    assert run.returncode == PASSED, run.output
    ramp = run.summary()["run"]["ramp"]
    assert [step["status"] for step in ramp["steps"]] == ["passed", "slo_missed"]
    assert ramp["max_rate_meeting_slo"] == 3.0
    assert "highest rate meeting the SLO: 3.00 req/s" in run.output


def test_master_and_worker_aggregate_samples_on_the_master(
    standin: str, run_locust, locust_worker, tiny_profile: Path
) -> None:
    port = free_port("127.0.0.1")
    worker = locust_worker(port)
    run = run_locust(
        standin,
        "--master",
        "--master-bind-port",
        str(port),
        "--expect-workers",
        "1",
        "--expect-workers-max-wait",
        "30",
        "--profile",
        str(tiny_profile),
        "-u",
        "2",
        "-r",
        "2",
        "--slo",
        "ttft_p99_ms=5000",
        "--no-plots",
        seconds=3,
    )
    assert run.returncode == PASSED, run.output
    samples = run.samples()
    assert len(samples) > 10 and all(s["ok"] and s["worker"] == 0 for s in samples)
    assert len({s["request_id"] for s in samples}) == len(samples)
    summary = run.summary()
    assert summary["run"]["locust_processes"] == 1 and summary["requests"]["total"] == len(samples)
    assert worker.wait(timeout=30) == 0
