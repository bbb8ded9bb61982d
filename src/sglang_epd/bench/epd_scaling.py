"""Benchmark on the local simulated deployment: 8-image TTFT with 1, 2, 4 and 8 encoders against the cost
model's ideal, what killing an encoder under load costs, and scaling encoders 2 -> 4 -> 1 under load.

    python -m sglang_epd.bench.epd_scaling [--encoders 1 2 4 8] [--requests 12] [--json results/bench.json]

Figures, not assertions: the tests assert behaviour; this prints how close the deployment comes to the
cost model (goal: within 15 % of the ideal at low load) and the failure figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from ..deploy.local import LocalDeployment
from ..load.stats import percentile
from ..render import EXAMPLES_DIR, render
from ..scenarios import (
    HEIGHT,
    IMAGES,
    WIDTH,
    ImageSource,
    LoadUnderAction,
    ScaleStep,
    encoders_scaled_under_load,
    load_under_action,
    median_ttft_ms,
    sequential_requests,
)
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


def _deploy(workdir: Path, **values: object) -> LocalDeployment:
    objects = render(values_files=[VALUES], set_values=values)
    return LocalDeployment(Topology.from_objects(objects), workdir)


def measure_scaling(encoder_counts: list[int], requests: int, workdir: Path) -> list[ScalingRow]:
    rows = []
    source = ImageSource()
    for encoders in encoder_counts:
        with _deploy(workdir / f"enc{encoders}", **{"encoder.replicas": encoders}) as deployment:
            results = sequential_requests(deployment.router_url, MODEL, source, requests)
        client = sorted(r.client_ttft_ms for r in results if r.client_ttft_ms is not None)
        server = [r.sim["ttft_ms"] for r in results if r.sim]
        rows.append(
            ScalingRow(
                encoders=encoders,
                requests=requests,
                ttft_p50_ms=median_ttft_ms(results),
                ttft_p90_ms=percentile(client, 90),
                server_ttft_p50_ms=statistics.median(server),
                ideal_ttft_ms=ideal_ttft_ms([(WIDTH, HEIGHT)] * IMAGES, encoders, text_tokens=5),
            )
        )
    return rows


def measure_failure(workdir: Path, duration: float, rate: float, **router_values: object) -> LoadUnderAction:
    """Kill (SIGKILL) the second of two encoders 5 s into open-loop load."""
    with _deploy(workdir / "failure", **{"encoder.replicas": 2}, **router_values) as deployment:
        return load_under_action(
            deployment.router_url,
            MODEL,
            ImageSource(),
            duration=duration,
            rate=rate,
            action_at=5.0,
            action=lambda: deployment.kill("vlm-encoder", 1),
        )


def measure_scaling_under_load(workdir: Path, rate: float) -> list[ScaleStep]:
    """Encoders 2 -> 4, then 4 -> 1, each 4 s into 12 s of open-loop load: what an autoscaler does."""
    with _deploy(workdir / "autoscale", **{"encoder.replicas": 2}) as deployment:
        return encoders_scaled_under_load(
            deployment,
            deployment.topology,
            [2, 4, 1],
            source=ImageSource(seed=50_000),
            duration=12.0,
            rate=rate,
            action_at=4.3,  # between arrivals: requests are in flight when pods go
            registration_timeout=30,
        )


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
            failures[label] = failure.figures()
            print(
                f"\nkill 1 of 2 encoders (SIGKILL) 5 s into {args.failure_seconds:.0f} s of {args.rate:g} "
                f"req/s (open loop), dynamic discovery, router {label}:"
            )
            print(f"  {failure.summary()}")
        under_load = measure_scaling_under_load(Path(tmp), 2 * args.rate)
        print(f"\nencoders scaled under {2 * args.rate:g} req/s of 8-image requests (open loop):")
        for step in under_load:
            print(f"  {step.before} -> {step.after}: {step.run.summary()}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        figures = {
            "scaling": [asdict(r) | {"off_ideal": r.off_ideal} for r in rows],
            "failure": failures,
            "scaling_under_load": {f"{s.before} -> {s.after}": s.run.figures() for s in under_load},
        }
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
