"""Benchmark on the local simulated deployment: 8-image TTFT with 1, 2, 4 and 8 encoders against the cost
model's ideal, and what killing an encoder under load costs.

    python -m sglang_epd.bench.epd_scaling [--encoders 1 2 4 8] [--requests 12] [--json results/bench.json]

Figures, not assertions: the tests assert behaviour; this prints how close the deployment comes to the
cost model (goal: within 15 % of the ideal at low load) and the failure figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp

from ..deploy.local import LocalDeployment
from ..load.stats import percentile
from ..render import EXAMPLES_DIR, render
from ..sim.client import ChatResult, chat_body, data_url, image_bytes, post_chat
from ..sim.cost import ideal_ttft_ms
from ..topology import Topology

VALUES = EXAMPLES_DIR / "sim-epd.yaml"
# Router settings compared in the failure run. A dead encoder makes the prefill's requests fail until the
# prefill evicts it; with the circuit breaker on, those failures open the only prefill's circuit.
FAILURE_SETUPS: dict[str, dict[str, object]] = {
    "circuit breaker on (10 failures / 60 s), retries 5": {"router.circuitBreaker.enabled": True},
    "circuit breaker off, retries 5": {
        "router.circuitBreaker.enabled": False,
        "router.retries.maxRetries": 5,
    },
    "circuit breaker off, no retry": {"router.circuitBreaker.enabled": False, "router.retries.maxRetries": 1},
}
MODEL = "qwen2.5-vl-7b"
WIDTH, HEIGHT, IMAGES = 1920, 1080, 8


@dataclass
class ScalingRow:
    encoders: int
    requests: int
    ttft_p50_ms: float
    ttft_p90_ms: float
    server_ttft_p50_ms: float
    ideal_ttft_ms: float

    @property
    def off_ideal(self) -> float:
        return self.ttft_p50_ms / self.ideal_ttft_ms - 1


@dataclass
class FailureResult:
    requests: int
    failed: int
    in_flight_at_kill: int
    recovered: bool  # some request after the last failure succeeded before the load ended
    seconds_to_recover: float  # from the kill to the last failed request's send time
    ttft_p50_before_ms: float
    ttft_p50_after_ms: float


class ImageSource:
    """Unique 1080p JPEGs, encoded before the timed path (every request's images differ, so the encoder
    cache, when on, cannot hide encoder work)."""

    def __init__(self) -> None:
        self._next = 0

    def request_images(self, count: int = IMAGES) -> list[str]:
        start, self._next = self._next, self._next + count
        return [data_url(image_bytes(WIDTH, HEIGHT, "JPEG", seed=start + i), "jpeg") for i in range(count)]


def _deploy(workdir: Path, **values: object) -> LocalDeployment:
    objects = render(values_files=[VALUES], set_values=values)
    return LocalDeployment(Topology.from_objects(objects), workdir)


async def _ask(session: aiohttp.ClientSession, url: str, images: list[str]) -> ChatResult:
    body = chat_body("Describe the images.", images, max_tokens=8, stream=True, model=MODEL)
    try:
        return await post_chat(session, url, body)
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        # ValueError: a `data:` line that is not JSON, e.g. an error event written mid-stream.
        return ChatResult(status=0, headers={"error": repr(error)})


def _ok(result: ChatResult) -> bool:
    return result.status == 200 and result.client_ttft_ms is not None


async def _sequential(url: str, source: ImageSource, requests: int) -> list[ChatResult]:
    async with aiohttp.ClientSession() as session:
        await _ask(session, url, source.request_images())  # warm-up: connections, router worker choice
        return [await _ask(session, url, source.request_images()) for _ in range(requests)]


def measure_scaling(encoder_counts: list[int], requests: int, workdir: Path) -> list[ScalingRow]:
    rows = []
    source = ImageSource()
    for encoders in encoder_counts:
        with _deploy(workdir / f"enc{encoders}", **{"encoder.replicas": encoders}) as deployment:
            results = asyncio.run(_sequential(deployment.router_url, source, requests))
        failed = [r for r in results if not _ok(r)]
        if failed:
            raise RuntimeError(f"{len(failed)} of {requests} requests failed with {encoders} encoder(s)")
        client = [r.client_ttft_ms for r in results]
        server = [r.chunks[-1]["sglang_sim"]["ttft_ms"] for r in results]
        rows.append(
            ScalingRow(
                encoders=encoders,
                requests=requests,
                ttft_p50_ms=statistics.median(client),
                ttft_p90_ms=percentile(sorted(client), 90),
                server_ttft_p50_ms=statistics.median(server),
                ideal_ttft_ms=ideal_ttft_ms([(WIDTH, HEIGHT)] * IMAGES, encoders, text_tokens=5),
            )
        )
    return rows


async def _load_with_kill(
    deployment: LocalDeployment, source: ImageSource, duration: float, rate: float, kill_after: float
) -> FailureResult:
    """Open-loop arrivals at `rate` requests/s for `duration` s (a failing server cannot slow them down);
    the last encoder is SIGKILLed `kill_after` s in."""
    url = deployment.router_url
    count = int(duration * rate)
    bodies = [source.request_images() for _ in range(count)]  # encoded before the timed path
    results: list[tuple[float, ChatResult]] = []
    in_flight = 0
    start = time.monotonic()

    async def one(session: aiohttp.ClientSession, images: list[str]) -> None:
        nonlocal in_flight
        in_flight += 1
        sent = time.monotonic() - start
        results.append((sent, await _ask(session, url, images)))
        in_flight -= 1

    async def kill() -> int:
        await asyncio.sleep(kill_after)
        caught = in_flight
        deployment.kill("vlm-encoder", len(deployment.role_pods("encoder")) - 1)
        return caught

    async with aiohttp.ClientSession() as session:
        killer = asyncio.create_task(kill())
        tasks = []
        for i, images in enumerate(bodies):
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one(session, images)))
        await asyncio.gather(*tasks)
        in_flight_at_kill = await killer

    failures = [sent for sent, r in results if not _ok(r)]
    last_failure = max(failures, default=kill_after)
    before = [r.client_ttft_ms for sent, r in results if sent < kill_after and _ok(r)]
    after = [r.client_ttft_ms for sent, r in results if sent > last_failure and _ok(r)]
    return FailureResult(
        requests=len(results),
        failed=len(failures),
        in_flight_at_kill=in_flight_at_kill,
        recovered=bool(after),
        seconds_to_recover=max(0.0, last_failure - kill_after),
        ttft_p50_before_ms=statistics.median(before) if before else float("nan"),
        ttft_p50_after_ms=statistics.median(after) if after else float("nan"),
    )


def measure_failure(workdir: Path, duration: float, rate: float, **router_values: object) -> FailureResult:
    with _deploy(workdir / "failure", **{"encoder.replicas": 2}, **router_values) as deployment:
        return asyncio.run(_load_with_kill(deployment, ImageSource(), duration, rate, kill_after=5.0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--encoders", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--requests", type=int, default=12, help="sequential 8-image requests per point")
    parser.add_argument(
        "--failure-seconds", type=float, default=30.0, help="load duration of the failure run"
    )
    parser.add_argument("--rate", type=float, default=1.0, help="requests/s of the failure run (open loop)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="sglang-epd-bench-") as tmp:
        rows = measure_scaling(args.encoders, args.requests, Path(tmp))
        print(
            f"8 x {WIDTH}x{HEIGHT} JPEG per request, {args.requests} sequential requests per point (low load)"
        )
        header = ("encoders", "TTFT p50", "TTFT p90", "server p50", "ideal", "vs ideal")
        print("{:>8} {:>10} {:>10} {:>11} {:>8} {:>9}".format(*header))
        for row in rows:
            print(
                f"{row.encoders:>8} {row.ttft_p50_ms:>8.0f}ms {row.ttft_p90_ms:>8.0f}ms "
                f"{row.server_ttft_p50_ms:>9.0f}ms {row.ideal_ttft_ms:>6.0f}ms {row.off_ideal:>+8.1%}"
            )
        failures = {}
        for label, router_values in FAILURE_SETUPS.items():
            failure = measure_failure(Path(tmp) / label, args.failure_seconds, args.rate, **router_values)
            failures[label] = asdict(failure)
            print(
                f"\nkill 1 of 2 encoders (SIGKILL) 5 s into {args.failure_seconds:.0f} s of {args.rate:g} "
                f"req/s (open loop), dynamic discovery, router {label}:"
            )
            print(
                f"  requests {failure.requests}, failed {failure.failed} "
                f"(in flight at the kill: {failure.in_flight_at_kill})"
            )
            if failure.recovered:
                print(f"  survivors carry all traffic {failure.seconds_to_recover:.1f} s after the kill")
            else:
                print("  not recovered: requests still failed when the load stopped")
            print(
                f"  TTFT p50 before {failure.ttft_p50_before_ms:.0f} ms, "
                f"after recovery {failure.ttft_p50_after_ms:.0f} ms"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        figures = {
            "scaling": [asdict(r) | {"off_ideal": r.off_ideal} for r in rows],
            "failure": asdict(failure),
        }
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
