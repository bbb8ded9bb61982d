"""Run the Locust load test against the rendered chart running locally on the SGLang simulator.

    python -m sglang_epd.load.simrun --set encoder.replicas=4 -- --profile kep-8img -u 8 -r 8 -t 60s \\
        --results-dir results/epd-4enc

Everything after `--` goes to `locust -f loadtests/locustfile.py --headless --host ROUTER`. The exit
code is Locust's (the load test's verdict). Simulator cost settings (`SGLANG_SIM_*`, docs/simulator.md)
are passed with --sim-env KEY=VALUE.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from ..deploy.local import LocalDeployment
from ..render import EXAMPLES_DIR, REPO_ROOT, render
from ..topology import Topology

LOCUSTFILE = REPO_ROOT / "loadtests" / "locustfile.py"
SIM_VALUES = EXAMPLES_DIR / "sim-epd.yaml"


def locust_command(host: str, args: Sequence[str], locustfile: Path = LOCUSTFILE) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--host", host, *args]


@contextlib.contextmanager
def sim_deployment(
    values_files: Sequence[Path | str] = (SIM_VALUES,),
    set_values: Mapping[str, object] | None = None,
    sim_env: Mapping[str, str] | None = None,
    workdir: Path | None = None,
) -> Iterator[LocalDeployment]:
    """The rendered group running locally (simulator pods, the real router); stopped on exit."""
    objects = render(values_files=list(values_files), set_values=dict(set_values or {}))
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sglang-epd-sim-")))
        deployment = LocalDeployment(Topology.from_objects(objects), workdir, extra_env=dict(sim_env or {}))
        yield stack.enter_context(deployment)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    locust_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    own_args = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(
        prog="python -m sglang_epd.load.simrun", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "-f", "--values", action="append", type=Path, help="values file(s) (default: sim-epd.yaml)"
    )
    parser.add_argument(
        "--set", action="append", type=_key_value, default=[], help="KEY=JSON, e.g. encoder.replicas=4"
    )
    parser.add_argument(
        "--sim-env", action="append", type=_key_value, default=[], help="SGLANG_SIM_*=VALUE for the simulator"
    )
    args = parser.parse_args(own_args)
    set_values = {key: json.loads(value) for key, value in args.set}
    with sim_deployment(args.values or [SIM_VALUES], set_values, dict(args.sim_env)) as deployment:
        print(f"simulated deployment up, router {deployment.router_url}", flush=True)
        return subprocess.run(locust_command(deployment.router_url, locust_args), check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
