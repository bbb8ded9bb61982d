"""SGLang's `launch_server` flags (the subset the simulator models) and the simulator's own settings.

Flags the simulator does not model are accepted and logged once, so every command the chart renders
runs unchanged. Start-up checks reject what SGLang itself rejects (facts/sglang-epd.md, "Server flags").
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from .cost import CostModel, env_number


class StartupError(Exception):
    """A flag combination SGLang refuses at start-up; the process exits non-zero with the message."""


class Role(StrEnum):
    ENCODER = "encoder"  # --encoder-only
    LANGUAGE = "language"  # --language-only, prefill and decode on one server
    LANGUAGE_PREFILL = "language-prefill"  # --language-only --disaggregation-mode prefill (EPD)
    PREFILL = "prefill"  # --disaggregation-mode prefill (PD, encodes its own images)
    DECODE = "decode"  # --disaggregation-mode decode
    SERVER = "server"  # plain collocated server

    @property
    def generates(self) -> bool:
        return self is not Role.ENCODER

    @property
    def uses_encoders(self) -> bool:
        return self in (Role.LANGUAGE, Role.LANGUAGE_PREFILL)

    @property
    def is_prefill(self) -> bool:
        return self in (Role.PREFILL, Role.LANGUAGE_PREFILL)

    @property
    def needs_bootstrap(self) -> bool:
        """PD servers only take requests from the PD router, which adds the bootstrap fields."""
        return self in (Role.PREFILL, Role.LANGUAGE_PREFILL, Role.DECODE)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sglang_epd.sim",
        description="CPU-only stand-in for `python3 -m sglang.launch_server` (a test double).",
        allow_abbrev=False,  # an unknown flag must never be taken for an abbreviation of a known one
    )
    add = parser.add_argument
    add("--model-path", "--model", dest="model_path", default="Qwen/Qwen2.5-VL-7B-Instruct")
    add("--served-model-name", default=None)
    add("--host", default="127.0.0.1")
    add("--port", type=int, default=30000)
    add("--tp-size", "--tensor-parallel-size", dest="tp_size", type=int, default=1)
    add("--dp-size", "--data-parallel-size", dest="dp_size", type=int, default=1)
    add("--context-length", type=int, default=None)
    add("--max-running-requests", type=int, default=None)
    add("--enable-metrics", action="store_true")
    add("--trust-remote-code", action="store_true")
    add("--mem-fraction-static", type=float, default=None)
    add("--chat-template", default=None)
    add("--stream-response-default-include-usage", action="store_true")
    # EPD
    add("--encoder-only", action="store_true")
    add("--language-only", action="store_true")
    add("--encoder-urls", nargs="+", default=[])
    add("--encoder-register-urls", nargs="+", default=[])
    add("--encoder-bootstrap-port", type=int, default=8997)
    add(
        "--encoder-transfer-backend",
        default="auto",
        choices=["auto", "zmq_to_scheduler", "zmq_to_tokenizer", "mooncake"],
    )
    add("--enable-prefix-mm-cache", action="store_true")
    add("--enable-adaptive-dispatch-to-encoder", action="store_true")
    add("--mm-attention-backend", default=None)
    # PD
    add("--disaggregation-mode", default="null", choices=["null", "prefill", "decode"])
    add(
        "--disaggregation-transfer-backend",
        default="mooncake",
        choices=["mooncake", "nixl", "ascend", "fake", "mori", "mooncake_tcp"],
    )
    add("--disaggregation-bootstrap-port", type=int, default=8998)
    add("--disaggregation-ib-device", default=None)
    return parser


TRUE_WORDS = ("1", "true", "yes")


def _env_float(env: Mapping[str, str], name: str, default: float) -> float:
    try:
        return env_number(env, name, default, negative_ok=True)
    except ValueError as error:
        raise StartupError(str(error)) from None


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = _env_float(env, name, float(default))
    if value != int(value):
        raise StartupError(f"{name} must be a whole number")
    return int(value)


def parse_host_map(raw: str) -> dict[str, str]:
    """`SGLANG_SIM_HOSTS="name=127.0.0.7,other=127.0.0.8"` -> {"name": "127.0.0.7", ...}."""
    mapping: dict[str, str] = {}
    for item in raw.replace(";", ",").split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, address = item.partition("=")
        if not sep or not name.strip() or not address.strip():
            raise StartupError(f"SGLANG_SIM_HOSTS entry {item!r} is not NAME=ADDRESS")
        mapping[name.strip()] = address.strip()
    return mapping


@dataclass(frozen=True)
class Settings:
    """The simulator's own knobs (not the cost model). Where SGLang has the knob, the variable and the
    default are SGLang 0.5.23's (srt/environ.py, Envs), so a rendered env means the same to both."""

    load_seconds: float = 0.3
    # srt/disaggregation/encoder/http_server.py, _register_encoder_url_with_bootstrap: 5 s between tries
    # (hard-coded there; SGLANG_SIM_REGISTER_INTERVAL only shortens the simulator's own tests).
    register_interval: float = 5.0
    # srt/environ.py: SGLANG_ENCODER_BOOTSTRAP_HEALTH_CHECK_INTERVAL / _TIMEOUT / _EVICTED_TTL.
    encoder_health_interval: float = 10.0
    encoder_health_timeout: float = 2.0
    encoder_evicted_ttl: float = 600.0
    # srt/environ.py: SGLANG_ENCODER_HTTP_TIMEOUT (the prefill's POST to an encoder) and
    # SGLANG_ENCODER_RECV_TIMEOUT (the scheduler's wait for the embeddings).
    encode_timeout: float = 1800.0
    encode_receive_timeout: float = 180.0
    # A request sent to a listed but dead encoder ends SGLang 0.5.23's language-only server (seen when the
    # real servers were run, issue 14: TypeError in output_streamer.stream_output via
    # request_receiver._apply_mm_receiver); SGLANG_SIM_DEAD_ENCODER_ENDS_SERVER=0 gives the abort that a
    # reading of the code predicts instead (502 for the request only).
    dead_encoder_ends_server: bool = True
    # srt/environ.py: SGLANG_DISAGGREGATION_WAITING_TIMEOUT (how long a decode waits for its KV).
    kv_timeout: float = 300.0
    # srt/environ.py: SGLANG_ENCODER_DISPATCH_MIN_ITEMS (with --enable-adaptive-dispatch-to-encoder, fewer
    # images than this are encoded by the language server itself).
    dispatch_min_items: int = 2
    # Between a decode's tries of an unreachable prefill bootstrap server (decode.py: 1 s, hard-coded).
    route_retry_interval: float = 1.0
    # The time between an encoder's registration and uvicorn listening (SGLang registers first).
    encoder_listen_delay: float = 0.5
    default_max_tokens: int = 128
    max_running_requests: int = 256
    context_length: int = 128000
    vlm_cache_size_mb: float = 100.0
    embed_bytes_per_token: int = 7168
    check_ib_device: bool = True
    host_ip: str | None = None
    hosts: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        d = cls()
        return cls(
            load_seconds=_env_float(env, "SGLANG_SIM_LOAD_SECONDS", d.load_seconds),
            register_interval=_env_float(env, "SGLANG_SIM_REGISTER_INTERVAL", d.register_interval),
            encoder_health_interval=_env_float(
                env, "SGLANG_ENCODER_BOOTSTRAP_HEALTH_CHECK_INTERVAL", d.encoder_health_interval
            ),
            encoder_health_timeout=_env_float(
                env, "SGLANG_ENCODER_BOOTSTRAP_HEALTH_CHECK_TIMEOUT", d.encoder_health_timeout
            ),
            encoder_evicted_ttl=_env_float(
                env, "SGLANG_ENCODER_BOOTSTRAP_EVICTED_TTL", d.encoder_evicted_ttl
            ),
            encode_timeout=_env_float(env, "SGLANG_ENCODER_HTTP_TIMEOUT", d.encode_timeout),
            encode_receive_timeout=_env_float(env, "SGLANG_ENCODER_RECV_TIMEOUT", d.encode_receive_timeout),
            dead_encoder_ends_server=env.get("SGLANG_SIM_DEAD_ENCODER_ENDS_SERVER", "1").strip().lower()
            in TRUE_WORDS,
            kv_timeout=_env_float(env, "SGLANG_DISAGGREGATION_WAITING_TIMEOUT", d.kv_timeout),
            dispatch_min_items=_env_int(env, "SGLANG_ENCODER_DISPATCH_MIN_ITEMS", d.dispatch_min_items),
            route_retry_interval=_env_float(env, "SGLANG_SIM_ROUTE_RETRY_INTERVAL", d.route_retry_interval),
            encoder_listen_delay=_env_float(env, "SGLANG_SIM_ENCODER_LISTEN_DELAY", d.encoder_listen_delay),
            default_max_tokens=_env_int(env, "SGLANG_SIM_DEFAULT_MAX_TOKENS", d.default_max_tokens),
            max_running_requests=_env_int(env, "SGLANG_SIM_MAX_RUNNING_REQS", d.max_running_requests),
            context_length=_env_int(env, "SGLANG_SIM_CONTEXT_LENGTH", d.context_length),
            vlm_cache_size_mb=_env_float(env, "SGLANG_VLM_CACHE_SIZE_MB", d.vlm_cache_size_mb),
            embed_bytes_per_token=_env_int(env, "SGLANG_SIM_EMBED_BYTES_PER_TOKEN", d.embed_bytes_per_token),
            check_ib_device=env.get("SGLANG_SIM_SKIP_IB_CHECK", "").strip().lower() not in TRUE_WORDS,
            host_ip=env.get("SGLANG_HOST_IP", "").strip() or None,
            hosts=tuple(parse_host_map(env.get("SGLANG_SIM_HOSTS", "")).items()),
        )


@dataclass(frozen=True)
class SimConfig:
    args: argparse.Namespace
    ignored_flags: tuple[str, ...]
    role: Role
    settings: Settings
    cost: CostModel

    @property
    def model_name(self) -> str:
        return self.args.served_model_name or self.args.model_path

    @property
    def advertised_host(self) -> str:
        """The address other pods reach this one at: SGLANG_HOST_IP, else --host (0.0.0.0 -> loopback)."""
        if self.settings.host_ip:
            return self.settings.host_ip
        return "127.0.0.1" if self.args.host in ("0.0.0.0", "::", "") else self.args.host

    @property
    def encoder_transfer_backend(self) -> str:
        """--encoder-transfer-backend with `auto` resolved: zmq_to_scheduler for Qwen2.5-VL (SGLang's
        server_args resolution; the only model the simulator stands in for)."""
        backend = self.args.encoder_transfer_backend
        return "zmq_to_scheduler" if backend == "auto" else backend

    @property
    def url(self) -> str:
        return f"http://{self.advertised_host}:{self.args.port}"

    @property
    def max_running_requests(self) -> int:
        return self.args.max_running_requests or self.settings.max_running_requests

    @property
    def context_length(self) -> int:
        return self.args.context_length or self.settings.context_length


def role_of(args: argparse.Namespace) -> Role:
    if args.encoder_only:
        return Role.ENCODER
    if args.disaggregation_mode == "prefill":
        return Role.LANGUAGE_PREFILL if args.language_only else Role.PREFILL
    if args.disaggregation_mode == "decode":
        return Role.DECODE
    return Role.LANGUAGE if args.language_only else Role.SERVER


def validate(args: argparse.Namespace, settings: Settings) -> None:
    """The start-up refusals SGLang has for these flags (facts/sglang-epd.md)."""
    if args.encoder_only and args.language_only:
        raise StartupError("--encoder-only and --language-only cannot be set at the same time")
    if args.encoder_only and args.disaggregation_mode != "null":
        raise StartupError(
            "--encoder-only cannot be combined with --disaggregation-mode "
            f"{args.disaggregation_mode}: an encoder server only runs the vision encoder"
        )
    if args.enable_prefix_mm_cache and not args.encoder_only:
        raise StartupError("--enable-prefix-mm-cache is only supported with --encoder-only")
    if args.disaggregation_mode == "prefill" and args.disaggregation_transfer_backend == "fake":
        raise StartupError(
            "--disaggregation-transfer-backend fake moves no KV cache and is refused by a prefill server"
        )
    no_rdma = not os.path.isdir("/sys/class/infiniband")
    if args.disaggregation_ib_device and settings.check_ib_device and no_rdma:
        raise StartupError(
            f"--disaggregation-ib-device {args.disaggregation_ib_device} is set but /sys/class/infiniband "
            "does not exist (no RDMA device on this node); set SGLANG_SIM_SKIP_IB_CHECK=1 to skip the check"
        )
    for flag, urls in (
        ("--encoder-urls", args.encoder_urls),
        ("--encoder-register-urls", args.encoder_register_urls),
    ):
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise StartupError(f"{flag}: {url!r} is not an http(s)://host:port URL")
    for name in ("tp_size", "dp_size"):
        if getattr(args, name) < 1:
            raise StartupError(f"--{name.replace('_', '-')} must be at least 1")


def load_config(argv: Sequence[str], env: Mapping[str, str] | None = None) -> SimConfig:
    """Parse flags (argparse errors exit 2 like SGLang's) and run the start-up checks."""
    args, unknown = build_parser().parse_known_args(list(argv))
    settings = Settings.from_env(env)
    try:
        cost = CostModel.from_env(env)
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    validate(args, settings)
    return SimConfig(args, tuple(unknown), role_of(args), settings, cost)
