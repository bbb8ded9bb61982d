"""Simulator processes on their own loopback addresses (like pods), and blocking HTTP helpers."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

import sglang_epd
from sglang_epd.sim.client import ChatResult, post_chat, wait_until_healthy

SRC_DIR = Path(sglang_epd.__file__).resolve().parents[1]
# 127.0.0.1 stays free for other suites; each simulated pod gets the next address (Linux routes 127/8).
_addresses = (f"127.0.{b}.{c}" for b, c in itertools.cycle(itertools.product(range(0, 4), range(20, 250))))
FAST_ENV = {
    "SGLANG_SIM_LOAD_SECONDS": "0.05",
    "SGLANG_SIM_REGISTER_INTERVAL": "0.1",
    "SGLANG_SIM_ENCODER_LISTEN_DELAY": "0.05",
    "SGLANG_SIM_LOG_LEVEL": "INFO",
}


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class SimServer:
    host: str
    port: int
    args: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def flag(self, name: str) -> str:
        """The value given to a flag (the last occurrence)."""
        return self.args[len(self.args) - 1 - self.args[::-1].index(name) + 1]

    def port_url(self, flag: str) -> str:
        """http://host:PORT for a port flag such as --encoder-bootstrap-port."""
        return f"http://{self.host}:{self.flag(flag)}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        """Stop the process (SIGTERM: a clean shutdown) and return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


class SimLauncher:
    """Starts `python -m sglang_epd.sim ARGS` processes; every one is stopped at teardown."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.servers: list[SimServer] = []

    @staticmethod
    def address() -> str:
        return next(_addresses)

    def start(
        self,
        *args: str,
        host: str | None = None,
        port: int | None = None,
        env: dict[str, str] | None = None,
        wait: bool = True,
        free_port_flags: tuple[str, ...] = (),
    ) -> SimServer:
        """Start a server; each flag in `free_port_flags` (e.g. --disaggregation-bootstrap-port) gets a
        free port instead of SGLang's fixed default, which another program here may hold."""
        host = host or self.address()
        port = port or free_port(host)
        for flag in free_port_flags:
            args = (*args, flag, str(free_port(host)))
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("SGLANG_")}
        full_env.update(FAST_ENV, SGLANG_HOST_IP=host, **(env or {}))
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC_DIR), full_env.get("PYTHONPATH")]))
        argv = ["--model-path", "Qwen/Qwen2.5-VL-7B-Instruct", "--host", host, "--port", str(port), *args]
        log_path = self.log_dir / f"sim-{host}-{port}-{len(self.servers)}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "sglang_epd.sim", *argv],
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        server = SimServer(host, port, list(args), env or {}, log_path, process)
        self.servers.append(server)
        if wait:
            self.wait_healthy(server)
        return server

    @staticmethod
    def wait_healthy(server: SimServer) -> SimServer:
        try:
            wait_until_healthy(server.url, timeout=30, process=server.process)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}\n--- log ---\n{server.log()}") from None
        return server

    def restart(self, server: SimServer) -> SimServer:
        """The same server again (same address, port, flags and environment)."""
        server.stop()
        return self.start(*server.args, host=server.host, port=server.port, env=server.env)

    def stop_all(self) -> None:
        for server in reversed(self.servers):
            server.stop()


class Http:
    """Blocking calls for test bodies: each runs its own event loop and client session."""

    @staticmethod
    async def _get_json(url: str) -> tuple[int, object]:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return response.status, await response.json(content_type=None)

    def get_json(self, url: str) -> tuple[int, object]:
        return asyncio.run(self._get_json(url))

    def post_json(self, url: str, body: object) -> tuple[int, object]:
        return self.post_json_all([(url, body)])[0]

    def post_json_all(self, requests: list[tuple[str, object]]) -> list[tuple[int, object]]:
        """POST every (URL, JSON body) at once; (status, answer) in the same order."""

        async def post(session: aiohttp.ClientSession, url: str, body: object) -> tuple[int, object]:
            async with session.post(url, json=body) as response:
                return response.status, await response.json(content_type=None)

        async def run() -> list[tuple[int, object]]:
            async with aiohttp.ClientSession() as session:
                return list(await asyncio.gather(*(post(session, u, b) for u, b in requests)))

        return asyncio.run(run())

    def chat(self, url: str, body: dict, timeout: float = 60) -> ChatResult:
        return self.chat_all([(url, body)], timeout)[0]

    def chat_all(self, requests: list[tuple[str, dict]], timeout: float = 60) -> list[ChatResult]:
        """Send every (server URL, body) at once; answers in the same order."""

        async def run() -> list[ChatResult]:
            async with aiohttp.ClientSession() as session:
                return list(await asyncio.gather(*(post_chat(session, u, b, timeout) for u, b in requests)))

        return asyncio.run(run())

    @staticmethod
    def _metrics_text(url: str) -> str:
        async def text() -> str:
            async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as response:
                response.raise_for_status()
                return await response.text()

        return asyncio.run(text())

    def metric_names(self, url: str) -> set[str]:
        """The metric families url/metrics exports."""
        return {family.name for family in text_string_to_metric_families(self._metrics_text(url))}

    def metric(self, url: str, name: str, **labels: str) -> float:
        """Sum of the samples called `name` (with these labels) on url/metrics."""
        return sum(
            sample.value
            for family in text_string_to_metric_families(self._metrics_text(url))
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )
