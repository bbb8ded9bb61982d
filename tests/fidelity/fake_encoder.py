"""Encoders whose /health the test controls, counting the probes they get (what a bootstrap server saw)."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_addresses = (f"127.0.9.{c}" for c in itertools.cycle(range(20, 250)))


@dataclass
class FakeEncoder:
    """mode: "ok" (200), "fail" (503) or "slow" (200 after `slow_seconds`)."""

    server: ThreadingHTTPServer = field(repr=False)
    mode: str = "ok"
    slow_seconds: float = 1.0
    probes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def probed(self) -> str:
        with self.lock:
            self.probes += 1
            return self.mode

    def set(self, mode: str) -> int:
        """Switch the answer; returns the probe count so far."""
        with self.lock:
            self.mode = mode
            return self.probes


class FakeEncoders:
    def __init__(self) -> None:
        self.encoders: list[FakeEncoder] = []

    def start(self) -> FakeEncoder:
        holder: list[FakeEncoder] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/health":
                    self.send_error(404)
                    return
                mode = holder[0].probed()
                if mode == "slow":
                    time.sleep(holder[0].slow_seconds)
                self.send_response(503 if mode == "fail" else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        server = ThreadingHTTPServer((next(_addresses), 0), Handler)
        server.daemon_threads = True
        encoder = FakeEncoder(server)
        holder.append(encoder)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.encoders.append(encoder)
        return encoder

    def stop_all(self) -> None:
        for encoder in self.encoders:
            encoder.server.shutdown()
            encoder.server.server_close()
