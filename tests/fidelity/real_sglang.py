"""Processes of real SGLang 0.5.23 (the interpreter of .venv-sglang, `make sglang`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from sglang_epd.real_sglang import CPU_FLAGS, clean_env, server_env
from sglang_epd.waiting import http_status, wait_for

DRIVERS = Path(__file__).resolve().parent / "real"
STARTUP_TIMEOUT_S = 180.0  # a real server takes 20-50 s to start on a loaded 2-core machine, a driver 5-20 s


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
        env=clean_env(),
    )
    assert run.returncode == 0, f"{driver} failed:\n{run.stderr[-3000:]}"
    return json.loads(run.stdout)


@dataclass
class RealProcess:
    url: str
    log_path: Path
    process: subprocess.Popen = field(repr=False)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """A driver stops when its stdin closes, a server on `sig`; killed when it does not. The exit code."""
        if self.process.poll() is None:
            if self.process.stdin is not None:
                self.process.stdin.close()
            else:
                self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


class RealSglang:
    """Starts drivers from tests/fidelity/real/ and real SGLang servers with the real interpreter; all are
    stopped at teardown."""

    def __init__(self, python: Path, log_dir: Path) -> None:
        self.python = python
        self.log_dir = log_dir
        self.processes: list[RealProcess] = []

    def bootstrap_server(self, host: str, port: int, env: dict[str, str], static: list[str]) -> RealProcess:
        """SGLang's EncoderBootstrapServer on host:port, answering once /health does."""
        argv = [str(DRIVERS / "bootstrap_server.py"), host, str(port), *static]
        return self._start("bootstrap_server", argv, env, f"http://{host}:{port}", stdin=True)

    def server(
        self,
        model: Path,
        host: str,
        port: int,
        *args: str,
        env: dict[str, str] | None = None,
        user: tuple[int, int] | None = None,
    ) -> RealProcess:
        """`python -m sglang.launch_server` on the CPU, answering once its /health does (20-50 s); as the
        given (uid, gid) with no supplementary groups when `user` is set (needs root and setpriv). That user
        keeps CAP_DAC_READ_SEARCH, which lets it read and traverse anything and write nothing more: the
        interpreter may live under a root-only home (pyenv), where an image's Python is world-readable."""
        argv = ["-m", "sglang.launch_server", "--model-path", str(model), "--host", host, "--port", str(port)]
        full_env = {**server_env(), "SGLANG_HOST_IP": host, **(env or {})}
        prefix = []
        if user is not None:
            prefix = ["setpriv", f"--reuid={user[0]}", f"--regid={user[1]}", "--clear-groups",
                      "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", "--"]
        return self._start(
            "launch_server", [*argv, *CPU_FLAGS, *args], full_env, f"http://{host}:{port}", prefix=prefix
        )

    def _start(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        url: str,
        stdin: bool = False,
        prefix: list[str] | None = None,
    ) -> RealProcess:
        full_env = {**clean_env(), **env}
        log_path = self.log_dir / f"sglang-{name}-{len(self.processes)}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [*(prefix or []), str(self.python), *argv],
                env=full_env,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the teardown kills whatever SGLang started with it
            )
        started = RealProcess(url, log_path, process)
        self.processes.append(started)

        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{started.log()[-3000:]}")
            return http_status(f"{url}/health") == 200

        wait_for(up, STARTUP_TIMEOUT_S, f"real SGLang's {name} at {url}", interval=0.2)
        return started

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()
