"""`sglang-epd plan`: how many encoders, prefills and decodes for a workload, an objective and a GPU budget.

    sglang-epd plan --profile kep-8img --rate 2 --slo ttft_p95_ms=1000 --gpus 8 --values-out plan.yaml

Exit codes: 0 some layout meets the objective (the best is written to --values-out), 3 none does (the table
is still printed, nothing is written), 5 bad input (the message names it).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import yaml

from ..load.profiles import Profile, ProfileError, load_profile
from ..load.ramp import RampError, RampPlan
from ..load.slo import SLOError, SLOSpec
from ..render import REPO_ROOT
from ..sim.cost_profiles import CostProfileError, load_cost_profile
from .agreement import agreement_line
from .layouts import DEFAULT_TP_SIZES, MODES, layouts_within
from .plan import Planner, Prediction, ranked

EXIT_MET, EXIT_NOT_MET, EXIT_BAD_INPUT = 0, 3, 5
PROFILES_DIR = REPO_ROOT / "loadtests" / "profiles"
DEFAULT_COST_PROFILE = "qwen2.5-vl-7b-h100-derived"
MAX_GPUS = 64


class BadInput(ValueError):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"sglang-epd plan: error: {message}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _modes(text: str) -> tuple[str, ...]:
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in modes if m not in MODES]
    if not modes or unknown:
        raise argparse.ArgumentTypeError(f"modes are {', '.join(MODES)}; got {text!r}")
    return modes


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="sglang-epd plan", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--profile", required=True, help="workload: a load-test profile name or YAML file")
    p.add_argument(
        "--profiles-dir", type=Path, default=PROFILES_DIR, help="where --profile names are looked up"
    )
    load = p.add_mutually_exclusive_group(required=True)
    load.add_argument("--rate", type=float, help="open-loop requests per second")
    load.add_argument(
        "--ramp",
        help="STEP_RATE,STEP_SECONDS[,MAX_STEPS] as the load test takes it: the highest step rate met",
    )
    p.add_argument("--arrivals", choices=("poisson", "uniform"), default="poisson", help="open-loop gaps")
    p.add_argument(
        "--slo",
        action="append",
        required=True,
        help="objective, as the load test takes it: ttft_p95_ms=1000,...",
    )
    p.add_argument("--gpus", type=int, required=True, help="GPU budget: layouts on at most this many GPUs")
    p.add_argument("--cost-profile", default=DEFAULT_COST_PROFILE, help="cost-profiles/ name or a YAML file")
    p.add_argument("--values-out", type=Path, help="write the best layout's chart values here")
    p.add_argument("--json", type=Path, help="write every prediction here")
    p.add_argument(
        "--tp", type=_int_list, default=DEFAULT_TP_SIZES, help="TP sizes of prefill/decode/servers"
    )
    p.add_argument("--modes", type=_modes, default=MODES, help=f"chart modes to compare ({','.join(MODES)})")
    p.add_argument("--requests", type=int, default=1000, help="requests simulated per layout and rate")
    p.add_argument("--max-running", type=int, default=256, help="decode batch size (--max-running-requests)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--top", type=int, default=12, help="table rows (the best of each mode is always shown)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    started = time.perf_counter()
    try:
        profile = load_profile(args.profile, [args.profiles_dir])
        cost_profile = load_cost_profile(args.cost_profile)
        spec = SLOSpec.parse(args.slo)
        ramp = RampPlan.parse(args.ramp) if args.ramp else None
        if args.rate is not None and not args.rate > 0:
            raise BadInput(f"--rate {args.rate:g}: the rate must be positive (requests per second)")
        if not 1 <= args.gpus <= MAX_GPUS:
            raise BadInput(f"--gpus {args.gpus}: the budget must be 1 to {MAX_GPUS} GPUs")
        if args.requests < 50:
            raise BadInput(f"--requests {args.requests}: at least 50 requests per layout make a percentile")
        planner = Planner(
            profile, spec, cost_profile.cost, requests=args.requests, arrivals=args.arrivals, seed=args.seed,
            max_running=args.max_running,
        )  # fmt: skip
    except (ProfileError, CostProfileError, SLOError, RampError, BadInput) as error:
        print(f"sglang-epd plan: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    layouts = list(layouts_within(args.gpus, args.tp, args.modes))
    if not layouts:
        print(
            f"sglang-epd plan: no layout of {','.join(args.modes)} fits {args.gpus} GPU(s)", file=sys.stderr
        )
        return EXIT_BAD_INPUT
    if ramp:
        predictions = [planner.ramp(layout, ramp) for layout in layouts]
    else:
        predictions = [planner.predict(layout, args.rate) for layout in layouts]
    order = ranked(predictions, by_rate=ramp is not None)
    elapsed = time.perf_counter() - started

    load_text = (
        f"{args.rate:g} req/s ({args.arrivals})"
        if ramp is None
        else f"ramp +{ramp.step_rate:g} req/s a step up to {ramp.rate(ramp.max_steps):g} ({args.arrivals})"
    )
    print(
        f"workload {profile.name}: {describe_profile(profile)}; {load_text}\n"
        f"objective {', '.join(spec.describe())}; budget {args.gpus} GPUs\n"
        f"cost profile {cost_profile.label}: {cost_profile.model} on {cost_profile.hardware}\n"
        f"{textwrap.fill(cost_profile.description, 108, initial_indent='  ', subsequent_indent='  ')}\n"
        f"{len(layouts)} layouts, {args.requests} requests each (the first {int(args.requests * 0.1)} not "
        f"counted), in {elapsed:.1f} s\n{agreement_line()}\n"
    )
    print(table(order, args.top, ramp is not None))
    best = order[0]
    print()
    for line in mode_summary(order):
        print(line)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([as_json(p) for p in order], indent=1))
    if not best.meets:
        print(
            f"\nno layout within {args.gpus} GPUs meets the objective; the closest is {best.layout.mode} "
            f"{best.layout.label}. Nothing written."
        )
        return EXIT_NOT_MET
    fastest = min((p for p in order if p.meets), key=lambda p: (p.objective_ms, p.layout.gpus))
    print(f"\nbest (the fewest GPUs that meet the objective): {best.layout.mode} {best.layout.label}")
    if fastest is not best:
        print(
            f"lowest {objective_name(spec)} within the budget: {fastest.layout.mode} {fastest.layout.label} "
            f"on {fastest.layout.gpus} GPUs ({fastest.objective_ms:.0f} ms)"
        )
    if args.values_out:
        write_values(args.values_out, best, argv_text(argv), cost_profile.label)
        print(f"values written to {args.values_out} (helm install ... -f {args.values_out})")
    return EXIT_MET


def objective_name(spec: SLOSpec) -> str:
    return spec.aggregates[0].key if spec.aggregates else "TTFT p95"


def describe_profile(profile: Profile) -> str:
    images = "/".join(str(v) for v in profile.images_per_request.values)
    resolutions = "/".join(r.label for r in profile.resolution.values)
    return (
        f"{images} image(s) of {resolutions}, {profile.prompt_tokens} text tokens, {profile.max_tokens} out"
    )


def table(order: Sequence[Prediction], top: int, with_rate: bool) -> str:
    shown = list(order[:top])
    for prediction in best_of_each_mode(order):
        if prediction not in shown:
            shown.append(prediction)
    header = ["rank", "mode", "layout", "GPUs", "TTFT p50", "p95", "p99", "goodput", "busiest", "objective"]
    if with_rate:
        header.insert(4, "max rate")
    rows = [header]
    for prediction in shown:
        rank = order.index(prediction) + 1
        if prediction.evaluation is None:
            latency = ["overloaded", "", ""]
            goodput = "0"
        else:
            latency = [f"{prediction.ttft[k]:.0f} ms" for k in ("p50", "p95", "p99")]
            goodput = f"{prediction.goodput:.0%} ({prediction.goodput * prediction.rate:.2f}/s)"
        row = [str(rank), prediction.layout.mode, prediction.layout.label, str(prediction.layout.gpus)]
        if with_rate:
            row.append(f"{prediction.max_rate:g}/s" if prediction.max_rate else "-")
        row += [*latency, goodput, prediction.busiest, "met" if prediction.meets else "missed"]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    right = {0, 3}  # rank and GPUs

    def line(row: list[str]) -> str:
        cells = (
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        return "  ".join(cells).rstrip()

    return "\n".join(line(row) for row in rows)


def best_of_each_mode(order: Sequence[Prediction]) -> list[Prediction]:
    seen: dict[str, Prediction] = {}
    for prediction in order:
        seen.setdefault(prediction.layout.mode, prediction)
    return list(seen.values())


def mode_summary(order: Sequence[Prediction]) -> list[str]:
    lines = []
    for prediction in best_of_each_mode(order):
        if prediction.evaluation is None:
            outcome = f"overloaded ({prediction.busiest} busy)"
        else:
            outcome = f"TTFT p95 {prediction.ttft['p95']:.0f} ms, {'meets' if prediction.meets else 'misses'}"
        layout = prediction.layout
        lines.append(f"best {layout.mode}: {layout.label} ({layout.gpus} GPUs), {outcome}")
    return lines


def as_json(prediction: Prediction) -> dict[str, object]:
    return {
        "mode": prediction.layout.mode,
        "layout": prediction.layout.label,
        "gpus": prediction.layout.gpus,
        "rate": prediction.rate,
        "max_rate": prediction.max_rate,
        "meets": prediction.meets,
        "overloaded": prediction.evaluation is None,
        "ttft_ms": prediction.ttft,
        "goodput": prediction.goodput,
        "load": prediction.load,
        "values": prediction.layout.values(),
    }


def argv_text(argv: Sequence[str] | None) -> str:
    return " ".join(["sglang-epd", "plan", *(sys.argv[2:] if argv is None else argv)])


def write_values(path: Path, best: Prediction, command: str, cost_label: str) -> None:
    ttft = best.ttft
    header = (
        f"# Written by `{command}`\n"
        f"# on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with cost profile {cost_label}: {best.layout.mode} "
        f"{best.layout.label}, {best.layout.gpus} GPUs,\n"
        f"# predicted TTFT p50 {ttft['p50']:.0f} ms, p95 {ttft['p95']:.0f} ms, p99 {ttft['p99']:.0f} ms at "
        f"{best.rate:g} req/s. Merge it over your values: helm install ... -f yours.yaml -f {path.name}\n"
        "# The prediction assumes round-robin routing, which is what router.policy sets here.\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(best.layout.values(), sort_keys=False))
