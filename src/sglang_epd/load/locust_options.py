"""The load test's command-line options, added to Locust's own (they show in its web UI too)."""

from __future__ import annotations

from typing import Any

from .arrivals import ARRIVAL_KINDS
from .payload import MAX_SALT


def add_options(parser: Any, default_profile: str) -> None:
    """Register the load test's options on Locust's parser (each with a LOCUST_* variable)."""
    # Locust already has --profile (a label that groups runs in its reports): it names our workload
    # profile too, so the label and the workload agree. Locust gives it no environment variable.
    for action in parser._actions:
        if "--profile" in action.option_strings:
            action.env_var = "LOCUST_PROFILE"
            action.help = (
                f"workload profile: a name in the profiles directory or a YAML file ({default_profile})"
            )
    parser.add_argument(
        "--profiles-dir",
        env_var="LOCUST_PROFILES_DIR",
        default="",
        help="where --profile names are looked up (default: loadtests/profiles)",
    )
    parser.add_argument(
        "--slo",
        env_var="LOCUST_SLO",
        action="append",
        default=[],
        help="KEY=VALUE[,...], repeatable: ttft_p95_ms=2000, tpot_p99_ms=50, ttft_ms=3000 (per request), "
        "goodput_min=0.9, error_rate_max=0.01",
    )
    parser.add_argument(
        "--results-dir",
        env_var="LOCUST_RESULTS_DIR",
        default="",
        help="raw samples, summary.json and plots (default: results/loadtest-PROFILE-TIME)",
    )
    parser.add_argument(
        "--model",
        env_var="LOCUST_MODEL",
        default="",
        help="model name in the requests (default: the first of the host's GET /v1/models)",
    )
    parser.add_argument(
        "--rate",
        env_var="LOCUST_RATE",
        type=float,
        default=0.0,
        help="open loop: total arrivals per second over the -u users (0: closed loop)",
    )
    parser.add_argument(
        "--arrivals",
        env_var="LOCUST_ARRIVALS",
        choices=ARRIVAL_KINDS,
        default="poisson",
        help="open-loop gaps: poisson (exponential) or uniform",
    )
    parser.add_argument(
        "--ramp",
        env_var="LOCUST_RAMP",
        default="",
        help="STEP_RATE,STEP_SECONDS[,MAX_STEPS]: open-loop step ramp to the highest rate meeting the SLO",
    )
    parser.add_argument(
        "--max-in-flight",
        env_var="LOCUST_MAX_IN_FLIGHT",
        type=int,
        default=1000,
        help="open loop: requests in flight per process before arrivals are dropped (client_overload errors)",
    )
    parser.add_argument(
        "--request-timeout",
        env_var="LOCUST_REQUEST_TIMEOUT",
        type=float,
        default=600.0,
        help="seconds for a whole request",
    )
    parser.add_argument(
        "--drain-timeout",
        env_var="LOCUST_DRAIN_TIMEOUT",
        type=float,
        default=60.0,
        help="at the end, seconds to wait for requests in flight (the rest are cancelled, not errors)",
    )
    parser.add_argument(
        "--image-salt",
        env_var="LOCUST_IMAGE_SALT",
        type=int,
        default=-1,
        help=f"0..{MAX_SALT}: this run's images differ from other runs' (default: random, in the summary)",
    )
    parser.add_argument(
        "--no-plots",
        env_var="LOCUST_NO_PLOTS",
        action="store_true",
        default=False,
        help="do not draw PNGs at the end",
    )
