"""`sglang-epd plan` as users script it: exit codes, the table, and a values file the chart installs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sglang_epd.cli import main as cli
from sglang_epd.planner.command import EXIT_BAD_INPUT, EXIT_MET, EXIT_NOT_MET
from sglang_epd.render import render
from sglang_epd.topology import Topology

FAST = ["--requests", "200", "--tp", "1,2"]


def plan(*args: str) -> int:
    return cli(["plan", *args, *FAST])


def test_a_met_objective_writes_values_the_chart_renders(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "plan.yaml"
    code = plan("--profile", "kep-8img", "--rate", "1", "--slo", "ttft_p95_ms=1500", "--gpus", "4",
                "--cost-profile", "sim-default", "--values-out", str(out))  # fmt: skip
    printed = capsys.readouterr().out
    assert code == EXIT_MET, printed
    assert "rank  mode" in printed and "best (the fewest GPUs that meet the objective)" in printed
    for mode in ("epd", "pd", "collocated", "encoder+collocated"):
        assert f"best {mode}:" in printed
    values = yaml.safe_load(out.read_text())
    assert values["router"] == {"policy": "round_robin"}
    assert out.read_text().startswith("# Written by `sglang-epd plan --profile kep-8img")
    topology = Topology.from_objects(render(values_files=[out]))
    rendered = {role.component: (role.replicas, role.gpus()) for role in topology.roles.values()}
    planned = {k: (v["replicas"], v["tpSize"]) for k, v in values.items() if "tpSize" in (v or {})}
    assert {k: rendered[k] for k in planned} == planned


def test_no_layout_meeting_the_objective_exits_3_and_writes_nothing(tmp_path: Path, capsys) -> None:
    out = tmp_path / "plan.yaml"
    code = plan("--profile", "kep-8img", "--rate", "20", "--slo", "ttft_p95_ms=200", "--gpus", "2",
                "--values-out", str(out))  # fmt: skip
    printed = capsys.readouterr().out
    assert code == EXIT_NOT_MET
    assert "overloaded" in printed and "Nothing written" in printed
    assert not out.exists()


def test_a_ramp_finds_each_layouts_highest_rate(capsys: pytest.CaptureFixture) -> None:
    code = plan("--profile", "kep-8img", "--ramp", "0.5,30,8", "--slo", "ttft_p95_ms=1000", "--gpus", "3",
                "--cost-profile", "sim-default", "--modes", "epd,collocated")  # fmt: skip
    printed = capsys.readouterr().out
    assert code == EXIT_MET
    assert "max rate" in printed and "/s" in printed


GOOD = {"--profile": "kep-8img", "--rate": "1", "--slo": "ttft_p95_ms=1", "--gpus": "2"}


def args_with(**changes: str | None) -> list[str]:
    """GOOD with options changed (`rate="0"`), added (`modes=...`) or left out (`rate=None`)."""
    options = dict(GOOD)
    for name, value in changes.items():
        options[f"--{name.replace('_', '-')}"] = value  # type: ignore[assignment]
    return [item for option, value in options.items() if value is not None for item in (option, value)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (args_with(profile="kep-9img"), "no profile named"),
        (args_with(slo="ttft_p42_ms=1"), "unknown percentile"),
        (args_with(slo="itl_p99_ms=1"), "does not predict itl"),
        (args_with(slo="error_rate_max=0"), "no latency objective"),
        (args_with(rate="0"), "--rate 0"),
        (args_with(gpus="0"), "--gpus 0"),
        (args_with(rate=None, ramp="1"), "--ramp '1'"),
        (args_with(cost_profile="h9"), "no cost profile named 'h9'"),
        (args_with(rate=None), "one of the arguments --rate --ramp"),
        (args_with(modes="epd,pdd"), "modes are epd"),
    ],
)
def test_bad_input_exits_5_naming_it(args: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    try:
        code = plan(*args)
    except SystemExit as exit:  # argparse's own errors
        code = exit.code
    assert code == EXIT_BAD_INPUT
    assert message in capsys.readouterr().err
