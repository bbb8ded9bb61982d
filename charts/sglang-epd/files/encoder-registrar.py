"""Keeps every language-only server's encoder list to the encoders that are up: each encoder pod is
registered once it serves, taken out before it stops, and a dead one is taken out at once.

Runs with the SGLang image's python3 and the standard library only. Three actions:

  run   the `registrar` sidecar: once the local encoder's /health passes, register this pod's URL with
        every language server's EncoderBootstrapServer, then check every --interval seconds and register
        again wherever it is missing (a restarted prefill starts with an empty list; registering is
        idempotent). Exits at once on SIGTERM, so that it never registers a pod that is stopping.
  stop  the preStop hook of the `sglang` container: unregister from every language server, keep serving
        for --drain-seconds so that work already dispatched here finishes, unregister again (in case the
        sidecar registered in the meantime), and return; only then does the kubelet send SGLang SIGTERM.
  watch the `encoder-watcher` sidecar of every language-server pod: every --interval seconds, open a TCP
        connection to each encoder the local EncoderBootstrapServer lists, and unregister the ones that do
        not accept within --connect-timeout (a crashed container, a pod or node killed without preStop).

Why the watcher: in SGLang 0.5.23 a request dispatched to an encoder that is listed but dead fails inside
the language server's scheduler (srt/managers/scheduler_components/request_receiver.py, _apply_mm_receiver
-> output_streamer.stream_output raises TypeError), which ends the whole server; the bootstrap server's own
health checks take up to 3 x (interval + timeout) to evict it (receiver.py, _health_check_loop: 36 s by
default). A TCP connect is not a health check: a busy encoder accepts connections (the kernel does) while
its /health waits for the GPU, so the watcher never takes out an encoder for being busy, and the
encoder's registrar puts back any encoder that is in fact up.

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
import urllib.parse
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


def stop_on_signals() -> threading.Event:
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    return stopping


def run(args: argparse.Namespace) -> int:
    stopping = stop_on_signals()
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


def accepts_connections(url: str, timeout: float) -> bool:
    parts = urllib.parse.urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def watch(args: argparse.Namespace) -> int:
    stopping = stop_on_signals()
    log(f"watching the encoders {args.server} lists, every {args.interval:g} s")
    while not stopping.is_set():
        try:
            urls = listed(args.server) or []
        except (OSError, ValueError):
            urls = []  # the language server is not up (yet): nothing is dispatched either
        for url in urls:
            if stopping.is_set() or accepts_connections(url, args.connect_timeout):
                continue
            try:
                status, text = http("DELETE", f"{args.server}/unregister_encoder_url", {"url": url})
                log(f"{url} does not accept connections: unregistered ({status} {text.strip()})")
            except OSError as error:
                log(f"{url} does not accept connections; unregistering failed ({error})")
        stopping.wait(args.interval)
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    actions = parser.add_subparsers(dest="action", required=True)
    encoder_side = argparse.ArgumentParser(add_help=False)
    encoder_side.add_argument("--port", type=int, required=True, help="the encoder's --port")
    targets = encoder_side.add_mutually_exclusive_group(required=True)
    targets.add_argument("--bootstrap-urls", nargs="+", help="every language server's bootstrap URL")
    targets.add_argument("--bootstrap-service", help="headless Service of the language role (autoscaled)")
    encoder_side.add_argument("--bootstrap-port", type=int, default=8997)
    encoder_side.add_argument("--interval", type=float, default=10.0, help="seconds between checks")
    encoder_side.add_argument("--health-timeout", type=float, default=30.0, help="local /health timeout")
    encoder_side.add_argument("--drain-seconds", type=float, default=15.0, help="serving after unregistering")
    actions.add_parser("run", parents=[encoder_side], help="the encoder pod's registrar sidecar")
    actions.add_parser("stop", parents=[encoder_side], help="the encoder container's preStop hook")
    watcher = actions.add_parser("watch", help="the language-server pod's encoder-watcher sidecar")
    watcher.add_argument("--bootstrap-port", type=int, default=8997, help="--encoder-bootstrap-port here")
    watcher.add_argument("--interval", type=float, default=1.0, help="seconds between checks")
    watcher.add_argument("--connect-timeout", type=float, default=1.0, help="seconds a TCP connect may take")
    args = parser.parse_args(argv)
    # The pod's address (SGLANG_HOST_IP, from status.podIP in the chart): what SGLang itself would register
    # (http_server.py), and where the language server's bootstrap server listens.
    host = os.environ.get("SGLANG_HOST_IP")
    if not host:
        parser.error("SGLANG_HOST_IP is not set: the chart sets it from status.podIP")
    if args.action == "watch":
        args.server = url_of(host, args.bootstrap_port)
    else:
        base = url_of(host, args.port)
        args.encoder_url, args.health_url = base, f"{base}/health"
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    return {"run": run, "stop": stop, "watch": watch}[args.action](args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
