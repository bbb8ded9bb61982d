"""Fixtures of the load-test suite: a fast stand-in server, the simulated deployment, Locust runs.

Nothing here imports Locust: it monkey patches the process with gevent, so Locust only ever runs in
subprocesses, exactly as users run it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from sglang_epd.load.samples import read_samples
from sglang_epd.load.simrun import LOCUSTFILE, locust_command, sim_deployment
from sglang_epd.standin import StandInServer

LOCUST_TIMEOUT_S = 90


@pytest.fixture(scope="module")
def standin() -> Iterator[str]:
    """Base URL of a fast stand-in server (behaviour chosen per request by a path prefix)."""
    with StandInServer() as url:
        yield url


@pytest.fixture(scope="module")
def sim_router() -> Iterator[str]:
    """The router URL of sim-epd.yaml (2 encoders, prefill, decode, real router) running locally."""
    with sim_deployment() as deployment:
        yield deployment.router_url


def write_profile(path: Path, **settings: object) -> Path:
    path.write_text(yaml.safe_dump({"description": "a small workload for tests", **settings}))
    return path


@pytest.fixture
def tiny_profile(tmp_path: Path) -> Path:
    """Two small JPEGs per request and a few tokens: quick to generate, encode and stream."""
    return write_profile(
        tmp_path / "tiny.yaml", images_per_request=2, resolution="112x112", image_pool=2, max_tokens=8
    )


@dataclass
class LocustRun:
    returncode: int
    output: str
    results: Path

    def summary(self) -> dict:
        return json.loads((self.results / "summary.json").read_text())

    def samples(self) -> list[dict]:
        return read_samples(self.results / "samples.jsonl")


@pytest.fixture
def run_locust(tmp_path: Path):
    """run_locust(host, *args) -> LocustRun: `locust -f loadtests/locustfile.py --headless` to the end."""
    counter = iter(range(1, 1000))

    def run(host: str, *args: str, seconds: int = 3) -> LocustRun:
        results = tmp_path / f"run-{next(counter)}"
        command = locust_command(
            host, ["-t", f"{seconds}s", "--only-summary", "--results-dir", str(results), *args]
        )
        done = subprocess.run(command, capture_output=True, text=True, timeout=LOCUST_TIMEOUT_S, check=False)
        return LocustRun(done.returncode, done.stdout + done.stderr, results)

    return run


@pytest.fixture
def locust_worker(tmp_path: Path) -> Iterator:
    """start(port) -> a Locust worker process connected to a master on `port`; stopped at teardown."""
    workers: list[subprocess.Popen] = []

    def start(port: int) -> subprocess.Popen:
        with (tmp_path / f"worker-{len(workers)}.log").open("wb") as log:
            command = [
                sys.executable,
                "-m",
                "locust",
                "-f",
                str(LOCUSTFILE),
                "--worker",
                "--master-port",
                str(port),
            ]
            workers.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
        return workers[-1]

    yield start
    for worker in workers:
        if worker.poll() is None:
            worker.terminate()
        worker.wait(timeout=30)
