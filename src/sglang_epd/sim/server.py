"""The process: parse SGLang's flags, pretend to load the model for SGLANG_SIM_LOAD_SECONDS, serve the
role's HTTP API (plus its bootstrap servers), and stop on SIGTERM/SIGINT in SGLang's order.

Start-up and shutdown follow SGLang 0.5.23. A generating server listens while it loads (/health 503).
An encoder (srt/disaggregation/encoder/http_server.py, launch_server) loads, starts its
--encoder-register-urls registration, and only then listens (uvicorn.run); on SIGTERM or SIGINT uvicorn
stops accepting and finishes the requests it has; after SIGINT the atexit hook unregisters, after SIGTERM
uvicorn re-raises the signal and the process dies without unregistering.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence

from aiohttp import web

from .config import Role, SimConfig, StartupError, load_config
from .encoder import EncoderServer
from .generation import GenerationServer
from .metrics import CONTENT_TYPE
from .net import client_session

log = logging.getLogger("sglang_epd.sim")

VERSION = "0.5.23"  # the SGLang release the simulated protocols were read from
MAX_BODY_BYTES = 1 << 30  # SGLang takes large multimodal bodies (eight 1080p images are ~10 MB)
ARCHITECTURE = "Qwen2_5_VLForConditionalGeneration"
ENCODER_HEALTH_TIMEOUT_S = 30.0  # srt/disaggregation/encoder/http_server.py, HEALTH_CHECK_TIMEOUT
SHUTDOWN_TIMEOUT_S = 30.0  # requests in progress may finish after SIGTERM (uvicorn's graceful shutdown)


class Process:
    """What every role serves: health while loading, model and server info, metrics."""

    def __init__(self, config: SimConfig, role_server: EncoderServer | GenerationServer) -> None:
        self.config = config
        self.role_server = role_server
        self.ready = False
        self.started = time.time()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        routes = app.router
        routes.add_get("/health", self.health)
        routes.add_get("/health_generate", self.health)
        routes.add_get("/metrics", self.metrics)
        routes.add_get("/sglang_sim/info", self.server_info)
        if self.config.role.generates:  # an SGLang encoder server has no server or model info routes
            routes.add_get("/server_info", self.server_info)
            routes.add_get("/get_server_info", self.server_info)
            routes.add_get("/v1/models", self.models)
            routes.add_get("/model_info", self.model_info)
            routes.add_get("/get_model_info", self.model_info)
            routes.add_route("*", "/generate", self.not_simulated)
        self.role_server.add_routes(app)
        return app

    async def health(self, _: web.Request) -> web.Response:
        if not self.ready:
            return web.Response(status=503, text="loading")
        if isinstance(self.role_server, EncoderServer):
            try:
                async with asyncio.timeout(ENCODER_HEALTH_TIMEOUT_S):
                    await self.role_server.health()
            except TimeoutError:
                return web.Response(status=503)
        return web.Response(text="")

    async def not_simulated(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"error": f"{request.path} is not simulated; use /v1/chat/completions"}, status=404
        )

    async def models(self, _: web.Request) -> web.Response:
        model = {
            "id": self.config.model_name,
            "object": "model",
            "created": int(self.started),
            "owned_by": "sglang",
            "root": self.config.args.model_path,
            "max_model_len": self.config.context_length,
        }
        return web.json_response({"object": "list", "data": [model]})

    async def model_info(self, _: web.Request) -> web.Response:
        args = self.config.args
        return web.json_response(
            {
                "model_path": args.model_path,
                "tokenizer_path": args.model_path,
                "is_generation": True,
                "preferred_sampling_params": None,
                "weight_version": "default",
                "has_image_understanding": True,
                "has_audio_understanding": False,
                "model_type": "qwen2_5_vl",
                "architectures": [ARCHITECTURE],
            }
        )

    async def server_info(self, _: web.Request) -> web.Response:
        args = self.config.args
        info = {
            # A few of SGLang's own server_args keys, then what only the simulator knows.
            "model_path": args.model_path,
            "served_model_name": self.config.model_name,
            "host": args.host,
            "port": args.port,
            "tp_size": args.tp_size,
            "dp_size": args.dp_size,
            "encoder_only": args.encoder_only,
            "language_only": args.language_only,
            "encoder_urls": list(args.encoder_urls),
            "encoder_register_urls": list(args.encoder_register_urls),
            "encoder_bootstrap_port": args.encoder_bootstrap_port,
            "encoder_transfer_backend": args.encoder_transfer_backend,
            "enable_prefix_mm_cache": args.enable_prefix_mm_cache,
            "disaggregation_mode": args.disaggregation_mode,
            "disaggregation_bootstrap_port": args.disaggregation_bootstrap_port,
            "disaggregation_transfer_backend": args.disaggregation_transfer_backend,
            "enable_metrics": args.enable_metrics,
            "context_length": self.config.context_length,
            "max_running_requests": self.config.max_running_requests,
            "version": VERSION,
            "status": "ready" if self.ready else "loading",
            "sglang_sim": {
                "role": self.config.role.value,
                "url": self.config.url,
                "pid": os.getpid(),
                "ignored_flags": list(self.config.ignored_flags),
                **self.role_server.info(),
            },
        }
        return web.json_response(info)

    async def metrics(self, _: web.Request) -> web.Response:
        if not self.config.args.enable_metrics:
            raise web.HTTPNotFound(text="metrics are served with --enable-metrics")
        return web.Response(body=self.role_server.metrics.render(), headers={"Content-Type": CONTENT_TYPE})


async def serve(config: SimConfig) -> int | None:
    """Run until SIGTERM or SIGINT; return the signal that stopped the process."""
    received: list[int] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda signum=signum: (received.append(signum), stop.set()))

    session = client_session(dict(config.settings.hosts))
    role_server: EncoderServer | GenerationServer = (
        EncoderServer(config, session) if config.role is Role.ENCODER else GenerationServer(config, session)
    )
    process = Process(config, role_server)
    runners: list[web.AppRunner] = []

    async def listen() -> None:
        sites = [("HTTP", process.app(), config.args.port), *role_server.extra_sites()]
        for name, app, port in sites:
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, config.args.host, port).start()
            log.info(
                "%s server of the %s role listening on %s:%d", name, config.role.value, config.args.host, port
            )

    async def unless_stopped(seconds: float) -> bool:
        """Sleep; False when a signal came first."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await stop.wait()
        return not stop.is_set()

    try:
        if isinstance(role_server, EncoderServer):
            if await unless_stopped(config.settings.load_seconds):
                process.ready = True
                role_server.start_registration()
                if await unless_stopped(config.settings.encoder_listen_delay):
                    await listen()
        else:
            await listen()
            if await unless_stopped(config.settings.load_seconds):
                process.ready = True
                await role_server.on_ready()
        if not stop.is_set():
            log.info("the simulated model is loaded: %s is ready", config.url)
        await stop.wait()
        log.info("shutting down")
        for runner in reversed(runners):
            await runner.cleanup()
        runners.clear()
        await role_server.shutdown()
        if isinstance(role_server, EncoderServer) and received[0] == signal.SIGINT:
            await role_server.unregister_everywhere()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
        await session.close()
    return received[0] if received else None


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("SGLANG_SIM_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s sglang-sim %(message)s",
        stream=sys.stderr,
    )
    try:
        config = load_config(sys.argv[1:] if argv is None else argv)
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if config.ignored_flags:
        log.info("flags the simulator does not model, ignored: %s", " ".join(config.ignored_flags))
    if config.role is Role.DECODE and (config.args.language_only or config.args.encoder_urls):
        log.warning("a decode server takes no EPD flags; --language-only and --encoder-urls are ignored")
    try:
        stopped_by = asyncio.run(serve(config))
    except OSError as exc:
        print(f"error: cannot serve on {config.args.host}: {exc}", file=sys.stderr)
        return 1
    if config.role is Role.ENCODER and stopped_by == signal.SIGTERM:
        # uvicorn re-raises SIGTERM after its graceful shutdown: the process dies of it, atexit never runs.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
    return 0
