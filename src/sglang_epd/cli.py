"""`sglang-epd`: command-line entry points over the rendered chart."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .render import RenderError, render
from .topology import Topology, describe
from .wiring import check_wiring


def _parse_set_json(item: str) -> tuple[str, object]:
    key, sep, raw = item.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--set-json takes key=<json>, got {item!r}")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"--set-json {key}: {raw!r} is not JSON ({error})") from error


def _topology_command(args: argparse.Namespace) -> int:
    try:
        objects = render(
            values_files=args.values,
            set_values=dict(args.set_json),
            release=args.release,
            namespace=args.namespace,
        )
    except RenderError as error:
        print(error, file=sys.stderr)
        return 2
    topology = Topology.from_objects(objects)
    print(describe(topology))
    problems = check_wiring(topology, objects)
    for problem in problems:
        print(f"WIRING: {problem}", file=sys.stderr)
    print(f"wiring: {'OK' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sglang-epd", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    # The planner parses its own options (its bad input exits 5, as scripts expect), listed here for --help.
    commands.add_parser(
        "plan", add_help=False, help="size a deployment: rank EPD, PD and collocated layouts on a GPU budget"
    )
    topology = commands.add_parser(
        "topology", help="render the chart and print its roles, pod DNS names and URLs, then check the wiring"
    )
    topology.add_argument(
        "-f", "--values", type=Path, action="append", default=[], help="values file (repeatable)"
    )
    topology.add_argument("--set-json", type=_parse_set_json, action="append", default=[], metavar="KEY=JSON")
    topology.add_argument("--release", default="sglang-epd")
    topology.add_argument("--namespace", default="default")
    topology.set_defaults(run=_topology_command)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["plan"]:
        from .planner.command import main as plan

        return plan(argv[1:])
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
