"""Processes of real SGLang 0.5.23 (the interpreter of .venv-sglang, `make sglang`)."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from sglang_epd.waiting import http_status, wait_for

REPO = Path(__file__).resolve().parents[2]
DRIVERS = Path(__file__).resolve().parent / "real"
STARTUP_TIMEOUT_S = 120.0  # importing SGLang's server modules takes 5-20 s on a loaded 2-core machine


def run_driver(
    python: Path, driver: str, *args: str, stdin: str | None = None, timeout: float = 300
) -> object:
    """Run a one-shot driver of tests/fidelity/real/ with the real interpreter; its stdout is JSON."""
    run = subprocess.run(
        [str(python), str(DRIVERS / driver), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert run.returncode == 0, f"{driver} failed:\n{run.stderr[-3000:]}"
    return json.loads(run.stdout)


def real_python() -> Path | None:
    """SGLANG_REAL_PYTHON, else .venv-sglang/bin/python; None when neither exists."""
    configured = os.environ.get("SGLANG_REAL_PYTHON")
    python = Path(configured) if configured else REPO / ".venv-sglang" / "bin" / "python"
    return python if python.exists() else None


@dataclass
class RealProcess:
    url: str
    log_path: Path
    process: subprocess.Popen = field(repr=False)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            if self.process.stdin is not None:
                self.process.stdin.close()  # the drivers stop when stdin closes
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class RealSglang:
    """Starts drivers from tests/fidelity/real/ with the real interpreter; all are stopped at teardown."""

    def __init__(self, python: Path, log_dir: Path) -> None:
        self.python = python
        self.log_dir = log_dir
        self.processes: list[RealProcess] = []

    def bootstrap_server(self, host: str, port: int, env: dict[str, str], static: list[str]) -> RealProcess:
        """SGLang's EncoderBootstrapServer on host:port, answering once /health does."""
        return self._start("bootstrap_server.py", [host, str(port), *static], env, f"http://{host}:{port}")

    def _start(self, driver: str, args: list[str], env: dict[str, str], url: str) -> RealProcess:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("SGLANG_") and k != "PYTHONPATH"}
        full_env.update(env)
        log_path = self.log_dir / f"sglang-{driver}-{len(self.processes)}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(self.python), str(DRIVERS / driver), *args],
                env=full_env,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        started = RealProcess(url, log_path, process)
        self.processes.append(started)

        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"{driver} exited with {process.returncode}:\n{started.log()[-3000:]}")
            return http_status(f"{url}/health") == 200

        wait_for(up, STARTUP_TIMEOUT_S, f"real SGLang's {driver} at {url}", interval=0.2)
        return started

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()
