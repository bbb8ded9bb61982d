"""The planner's model against the process-level simulator on the very same requests: the chart runs on
this machine (simulated SGLang pods with the same cost profile, the real router) under the load test, and
the model replays what the load test sent. `make bench-plan` does this for more layouts and rates."""

from __future__ import annotations

from pathlib import Path

import pytest

from sglang_epd.bench.plan_agreement import Case, compare, load_test
from sglang_epd.planner.layouts import Layout
from sglang_epd.sim.cost_profiles import load_cost_profile

# Four 720p images split 2 + 2 over the two encoders every time (no chance in the split), on the slow
# H20 profile: ~0.95 s of TTFT alone, prefill busy ~60% at 0.8 req/s, so requests queue.
WORKLOAD = """\
description: four 720p images, a short answer
seed: 3
images_per_request: 4
resolution: 720p
prompt_tokens: 64
max_tokens: 16
"""


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("agreement") / "four-720p.yaml"
    path.write_text(WORKLOAD)
    return path


def test_the_model_predicts_the_simulated_deployment_on_the_same_requests(
    workload: Path, tmp_path: Path
) -> None:
    profile = load_cost_profile("qwen2.5-vl-7b-h20-published")
    case = Case(Layout("epd", 2, 1, 1, 1, 1), 0.8, str(workload))
    samples = load_test(case, profile.path, seconds=25, workdir=tmp_path)  # type: ignore[arg-type]
    agreement = compare(case, profile.cost, samples)
    print(agreement)
    assert agreement.requests >= 12
    for stat in ("p50", "p95"):
        assert abs(agreement.replay_error[stat]) <= 0.15, (stat, agreement)
