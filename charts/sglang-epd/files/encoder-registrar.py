"""Keeps one encoder pod registered with every language-only server, and takes it out before it stops.

Runs in the encoder pod with the SGLang image's python3 and the standard library only. Two actions:

  run   the `registrar` sidecar: once the local encoder's /health passes, register this pod's URL with
        every language server's EncoderBootstrapServer, then check every --interval seconds and register
        again wherever it is missing (a restarted prefill starts with an empty list; registering is
        idempotent). Exits at once on SIGTERM, so that it never registers a pod that is stopping.
  stop  the preStop hook of the `sglang` container: unregister from every language server, keep serving
        for --drain-seconds so that work already dispatched here finishes, unregister again (in case the
        sidecar registered in the meantime), and return; only then does the kubelet send SGLang SIGTERM.

Why not SGLang's own --encoder-register-urls (sglang 0.5.23, srt/disaggregation/encoder/http_server.py,
_register_encoder_url_with_bootstrap and launch_server): it registers before uvicorn listens, gives up
after 30 tries 5 s apart, never registers again (a restarted prefill stays without encoders), and
unregisters only in an atexit hook, which SIGTERM never reaches. The bootstrap server's endpoints are in
srt/disaggregation/encoder/receiver.py (EncoderBootstrapServer): POST /register_encoder_url and DELETE
/unregister_encoder_url with {"url": ...} answer "OK"; GET /list_encoder_urls answers
{"encoder_urls": [...]}.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request

REQUEST_TIMEOUT_S = 5.0


def log(message: str) -> None:
    print(f"encoder-registrar: {message}", file=sys.stderr, flush=True)


def http(
    method: str, url: str, body: dict | None = None, timeout: float = REQUEST_TIMEOUT_S
) -> tuple[int, str]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def url_of(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def bootstrap_servers(args: argparse.Namespace) -> list[str]:
    """Every language server's bootstrap URL: the rendered list, or every address of the language role's
    headless Service (RBG publishes not-ready addresses, so a prefill is found while it starts)."""
    if args.bootstrap_urls:
        return [url.rstrip("/") for url in args.bootstrap_urls]
    try:
        infos = socket.getaddrinfo(args.bootstrap_service, args.bootstrap_port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as error:
        log(f"cannot resolve {args.bootstrap_service}: {error}")
        return []
    return [url_of(host, args.bootstrap_port) for host in sorted({info[4][0] for info in infos})]


def listed(server: str) -> list[str] | None:
    status, text = http("GET", f"{server}/list_encoder_urls")
    if status != 200:
        return None
    return list(json.loads(text).get("encoder_urls", []))


def encoder_healthy(args: argparse.Namespace) -> bool:
    try:
        return http("GET", args.health_url, timeout=args.health_timeout)[0] == 200
    except OSError:
        return False


def register_where_missing(args: argparse.Namespace, stopping: threading.Event) -> None:
    for server in bootstrap_servers(args):
        if stopping.is_set():
            return
        try:
            urls = listed(server)
            if urls is not None and args.encoder_url in urls:
                continue
            status, text = http("POST", f"{server}/register_encoder_url", {"url": args.encoder_url})
            if status == 200:
                log(f"registered {args.encoder_url} with {server}")
            else:
                log(f"{server}/register_encoder_url answered {status}: {text.strip()}")
        except (OSError, ValueError) as error:
            log(f"{server} not reachable ({error}); retrying in {args.interval:g} s")


def unregister_everywhere(args: argparse.Namespace) -> None:
    for server in bootstrap_servers(args):
        try:
            status, text = http("DELETE", f"{server}/unregister_encoder_url", {"url": args.encoder_url})
            log(f"unregistered {args.encoder_url} from {server}: {status} {text.strip()}")
        except OSError as error:
            log(f"could not unregister from {server} ({error})")


def run(args: argparse.Namespace) -> int:
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    log(f"waiting for {args.health_url} before registering {args.encoder_url}")
    while not stopping.is_set():
        # Registered only while the local encoder answers: re-registering an encoder that the bootstrap
        # server evicted for failing its health checks would undo that eviction.
        if encoder_healthy(args):
            register_where_missing(args, stopping)
        stopping.wait(args.interval)
    log("stopping: no more registrations (the sglang container's preStop hook unregisters)")
    return 0


def stop(args: argparse.Namespace) -> int:
    unregister_everywhere(args)
    log(f"draining for {args.drain_seconds:g} s")
    time.sleep(args.drain_seconds)
    unregister_everywhere(args)
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["run", "stop"])
    parser.add_argument("--port", type=int, required=True, help="the encoder's --port")
    targets = parser.add_mutually_exclusive_group(required=True)
    targets.add_argument("--bootstrap-urls", nargs="+", help="every language server's bootstrap URL")
    targets.add_argument("--bootstrap-service", help="headless Service of the language role (autoscaled)")
    parser.add_argument("--bootstrap-port", type=int, default=8997)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between checks")
    parser.add_argument("--health-timeout", type=float, default=30.0, help="timeout of the local /health")
    parser.add_argument("--drain-seconds", type=float, default=15.0, help="serving time after unregistering")
    args = parser.parse_args(argv)
    # The address SGLang itself would register (http_server.py: SGLANG_HOST_IP, the pod IP in the chart).
    host = os.environ.get("SGLANG_HOST_IP")
    if not host:
        parser.error("SGLANG_HOST_IP is not set: the chart sets it from status.podIP in the encoder pod")
    base = url_of(host, args.port)
    args.encoder_url, args.health_url = base, f"{base}/health"
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    return run(args) if args.action == "run" else stop(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
