"""Locust load test of an SGLang vision-language deployment through its router (OpenAI chat completions
with images, streamed). Everything lives in the `sglang_epd.load` package; this file only wires it in.

    locust -f loadtests/locustfile.py --headless --host http://ROUTER:8000 --profile kep-8img \\
        -u 8 -r 8 -t 2m --slo ttft_p95_ms=3000,error_rate_max=0.01 --results-dir results/run1

Profiles (--profile NAME or a YAML path): kep-8img, mixed-1to8, text-only, cache-hot in
loadtests/profiles/. Load: closed loop with -u users (default), open loop with --rate REQ_PER_S, or a
step ramp with --ramp STEP_RATE,STEP_SECONDS[,MAX_STEPS]. Distributed: the same file with --master and
--worker. docs/loadtests.md has the details.

Exit codes (set in a `quitting` listener, so they hold headless and after the web UI):
    0  passed: every SLO met and the error rate within --slo error_rate_max (default 0)
    3  SLO missed (latency percentiles or goodput)
    4  errors above the allowed rate
    5  could not run: bad profile/SLO/options, host unreachable, no request completed
Locust's own codes can still appear when Locust itself fails before our listeners run: 1 (locustfile
error, unhandled exception) and 2 (bad command-line syntax).
"""

from pathlib import Path

from sglang_epd.load import locust_plugin
from sglang_epd.load.locust_plugin import SloRampShape, VisionChatUser

locust_plugin.configure(profiles_dir=Path(__file__).resolve().parent / "profiles")

__all__ = ["SloRampShape", "VisionChatUser"]
