"""How exact and how cheap is the load client? A script that prints figures (not a test).

    python -m sglang_epd.bench.client_accuracy [--levels 1,16,64] [--seconds 30] [--out DIR]

1. Through the router: the simulated EPD deployment (sim-epd.yaml, --encoders encoders) runs kep-8img at
   each level of concurrent streams. Per request, client TTFT minus the serving (decode) server's own
   `sglang_sim.ttft_ms`: that difference is not client error alone, it also holds the upload to the
   router, the router's handling and its forwarding of the body to the decode, which the decode's clock
   never sees. The router's own clock is compared too: the mean of its
   `smg_http_request_duration_seconds` for POST /v1/chat/completions (request received to response
   headers; the simulator starts its response with the first token) against the client's mean TTFB.
   sglang-router 0.3.2 has no TTFT histogram in HTTP PD mode.
2. Direct: the same levels against one collocated simulator server (no router), fast cost settings so
   that enough requests finish: client TTFT minus server TTFT is the client's own bias plus loopback.
3. The fast stand-in (its own process, `standin`): one stream gives the client's own TTFT bias against a
   server whose clock starts at the request's first bytes and that has nothing else to do; then one
   Locust process, closed loop, 32 streams: how many streamed 8-image requests per second the client
   drives, and its CPU time per request.

Every figure also lands in OUT/bench.json; each run's raw samples are under OUT/<part>-<level>/.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from ..load.samples import SAMPLES_FILE, read_samples
from ..load.simrun import locust_command, sim_deployment
from ..load.stats import describe
from ..reports.report import SUMMARY_FILE
from ..sim.client import wait_until_healthy

ROUTER_METRICS_PORT = 29000
FAST_ENCODER_ENV = {"SGLANG_SIM_ENCODE_MS_PER_TOKEN": "0.003"}
CAPACITY_USERS = 32


def _locust(host: str, out: Path, users: int, seconds: int, profile: str = "kep-8img") -> dict[str, Any]:
    command = locust_command(
        host,
        [
            "--profile",
            profile,
            "-u",
            str(users),
            "-r",
            str(users),
            "-t",
            f"{seconds}s",
            "--results-dir",
            str(out),
            "--no-plots",
            "--only-summary",
            "--drain-timeout",
            "120",
        ],
    )
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if not (out / SUMMARY_FILE).is_file():
        raise RuntimeError(
            f"locust wrote no summary (exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    summary = json.loads((out / SUMMARY_FILE).read_text())
    summary["_wall_s"] = time.perf_counter() - started
    return summary


def _bias(out: Path) -> dict[str, Any]:
    samples = [
        s for s in read_samples(out / SAMPLES_FILE) if s.get("ok") and s.get("server_ttft_ms") is not None
    ]
    described = describe(s["ttft_ms"] - s["server_ttft_ms"] for s in samples)
    return {key: described.get(key) for key in ("count", "p50", "p99", "max")}


def _router_chat_duration(url: str) -> tuple[float, float]:
    """(sum seconds, count) of the router's smg_http_request_duration_seconds for chat completions."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    total = count = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != "smg_http_request_duration_seconds":
            continue
        for sample in family.samples:
            if sample.labels.get("path") == "/v1/chat/completions":
                if sample.name.endswith("_sum"):
                    total += sample.value
                elif sample.name.endswith("_count"):
                    count += sample.value
    return total, count


def _row(level: int, summary: dict[str, Any], bias: dict[str, Any]) -> dict[str, Any]:
    client = summary["run"]["client"]
    lags = [lag for lag in client.get("loop_lag_ms_by_process") or () if lag]
    return {
        "streams": level,
        "requests": summary["requests"]["ok"],
        "errors": summary["requests"]["errors"],
        "ttft_p50_ms": summary["metrics"]["ttft_ms"].get("p50"),
        "bias_p50_ms": bias.get("p50"),
        "bias_p99_ms": bias.get("p99"),
        "client_cpu_ms_per_request": client.get("cpu_ms_per_request"),
        "client_cpu_utilization": client.get("max_cpu_utilization"),
        "loop_lag_p99_ms": lags[0].get("p99") if lags else None,
        "ttfb_mean_ms": summary["metrics"]["ttfb_ms"].get("mean"),
    }


def through_router(levels: Sequence[int], seconds: int, encoders: int, out: Path) -> list[dict[str, Any]]:
    rows = []
    with sim_deployment(set_values={"encoder.replicas": encoders}) as deployment:
        router = deployment.role_pods("router")[0]
        metrics_url = f"http://{router.ip}:{ROUTER_METRICS_PORT}/metrics"
        for level in levels:
            before = _router_chat_duration(metrics_url)
            summary = _locust(deployment.router_url, out / f"router-{level}", level, seconds)
            after = _router_chat_duration(metrics_url)
            row = _row(level, summary, _bias(out / f"router-{level}"))
            calls = after[1] - before[1]
            router_mean_ms = (after[0] - before[0]) / calls * 1000 if calls else None
            row["router_duration_mean_ms"] = router_mean_ms
            if router_mean_ms is not None and row["ttfb_mean_ms"] is not None:
                row["ttfb_minus_router_mean_ms"] = row["ttfb_mean_ms"] - router_mean_ms
            rows.append(row)
            print(f"  router, {level} streams: {_line(row)}", flush=True)
    return rows


def direct(levels: Sequence[int], seconds: int, out: Path) -> list[dict[str, Any]]:
    rows = []
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp, (Path(tmp) / "sim.log").open("wb") as log:
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, **FAST_ENCODER_ENV}
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sglang_epd.sim",
                "--model-path",
                "/models/Qwen/Qwen2.5-VL-7B-Instruct",
                "--served-model-name",
                "qwen2.5-vl-7b",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            wait_until_healthy(url, timeout=30, process=server)
            for level in levels:
                summary = _locust(url, out / f"direct-{level}", level, seconds)
                row = _row(level, summary, _bias(out / f"direct-{level}"))
                rows.append(row)
                print(f"  direct, {level} streams: {_line(row)}", flush=True)
        finally:
            server.terminate()
            server.wait(timeout=10)
    return rows


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def against_standin(seconds: int, out: Path) -> dict[str, Any]:
    """One stream (the client's own TTFT bias: the stand-in's clock starts at the request's first bytes
    and it has nothing else to do), then CAPACITY_USERS streams (what one Locust process can drive)."""
    standin = subprocess.Popen(
        [sys.executable, "-m", "sglang_epd.standin", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = standin.stdout.readline().split()[-1]  # "listening on http://..."
        single = _locust(url, out / "standin-1", 1, seconds)
        summary = _locust(url, out / "capacity", CAPACITY_USERS, seconds)
    finally:
        standin.terminate()
        standin.wait(timeout=10)
    client = summary["run"]["client"]
    return {
        "one_stream": _row(1, single, _bias(out / "standin-1")),
        "users": CAPACITY_USERS,
        "requests_per_s": summary["throughput"]["requests_per_s"],
        "request_mb": _mean_request_mb(out / "capacity"),
        "client_cpu_ms_per_request": client.get("cpu_ms_per_request"),
        "client_cpu_kernel_share": client["cpu_system_s"] / client["cpu_s"] if client.get("cpu_s") else None,
        "client_cpu_utilization": client.get("max_cpu_utilization"),
        "capacity_run": _row(CAPACITY_USERS, summary, _bias(out / "capacity")),
        "errors": summary["requests"]["errors"],
    }


def _mean_request_mb(out: Path) -> float:
    samples = read_samples(out / SAMPLES_FILE)
    return sum(s["request_bytes"] for s in samples) / len(samples) / 1e6 if samples else 0.0


def _fmt(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _line(row: dict[str, Any]) -> str:
    text = (
        f"{row['requests']} requests, TTFT p50 {_fmt(row['ttft_p50_ms'], 0)} ms, client-server TTFT median "
        f"{_fmt(row['bias_p50_ms'])} ms p99 {_fmt(row['bias_p99_ms'])} ms, "
        f"loop lag p99 {_fmt(row['loop_lag_p99_ms'])} ms, "
        f"client {_fmt((row['client_cpu_utilization'] or 0) * 100, 0)}% CPU"
    )
    if "ttfb_minus_router_mean_ms" in row:
        text += f", client TTFB - router duration (means) {_fmt(row['ttfb_minus_router_mean_ms'])} ms"
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sglang_epd.bench.client_accuracy", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--levels", default="1,16,64", help="concurrent streams, comma-separated")
    parser.add_argument("--seconds", type=int, default=30, help="per level")
    parser.add_argument("--encoders", type=int, default=4)
    parser.add_argument("--capacity-seconds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("results/bench-accuracy"))
    parser.add_argument("--skip", action="append", default=[], choices=["router", "direct", "standin"])
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    figures: dict[str, Any] = {"levels": levels, "seconds": args.seconds, "encoders": args.encoders}
    if "router" not in args.skip:
        print(f"1. through the router: sim-epd with {args.encoders} encoders, kep-8img", flush=True)
        figures["router"] = through_router(levels, args.seconds, args.encoders, args.out)
    if "direct" not in args.skip:
        print("2. direct to one collocated simulator server (fast encoder costs), kep-8img", flush=True)
        figures["direct"] = direct(levels, args.seconds, args.out)
    if "standin" not in args.skip:
        print(
            f"3. the fast stand-in: 1 stream, then {CAPACITY_USERS} streams from one Locust process",
            flush=True,
        )
        figures["standin"] = result = against_standin(args.capacity_seconds, args.out)
        print(f"  stand-in, 1 stream: {_line(result['one_stream'])}", flush=True)
        print(
            f"  {_fmt(result['requests_per_s'], 1)} streamed 8-image requests/s "
            f"({_fmt(result['request_mb'], 1)} MB each), "
            f"{_fmt(result['client_cpu_ms_per_request'])} ms client CPU per request "
            f"({_fmt((result['client_cpu_kernel_share'] or 0) * 100, 0)}% of it in the kernel), "
            f"{_fmt((result['client_cpu_utilization'] or 0) * 100, 0)}% of one core; "
            f"{_line(result['capacity_run'])}",
            flush=True,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"figures: {args.out / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
