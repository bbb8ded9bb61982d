"""What a rendered SGLang container (`python3 -m sglang.launch_server ARGS`) runs in the local deployment:
the simulator (default: fast, scales to many pods, models the GPU's timing) or real SGLang 0.5.23 on the
CPU (`make sglang`: SGLang's own lifecycle, wire and failures, on a tiny random Qwen2.5-VL). Both get the
rendered arguments unchanged; the real servers get the tiny model in place of the pod's weights and the
flags a CPU needs (`real_sglang.server_flags`) after them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

from .. import real_sglang

LAUNCH_SERVER = ("python3", "-m", "sglang.launch_server")


def launches_sglang(argv: list[str]) -> bool:
    return tuple(argv[: len(LAUNCH_SERVER)]) == LAUNCH_SERVER


class SglangServers(Protocol):
    name: ClassVar[str]
    ready_timeout: ClassVar[float]  # seconds from start to Ready, with a whole group starting at once

    def command(self, args: list[str]) -> list[str]: ...

    def env(self) -> dict[str, str]:
        """Environment of the SGLang container on top of the pod's (not of its sidecars)."""
        ...


@dataclass(frozen=True)
class SimulatedServers:
    name: ClassVar[str] = "simulated"
    ready_timeout: ClassVar[float] = 120.0

    def command(self, args: list[str]) -> list[str]:
        return [sys.executable, "-m", "sglang_epd.sim", *args]

    def env(self) -> dict[str, str]:
        return {}


@dataclass(frozen=True)
class RealServers:
    python: Path  # an interpreter with SGLang 0.5.23 (`real_sglang.real_python()`)
    model: Path  # the tiny model (`real_sglang.build_tiny_model`), served in place of --model-path
    name: ClassVar[str] = "real"
    # Measured: 25-50 s per server alone, up to ~100 s with four servers starting on 2 cores.
    ready_timeout: ClassVar[float] = 300.0

    def command(self, args: list[str]) -> list[str]:
        args = list(args)
        if "--model-path" in args:
            args[args.index("--model-path") + 1] = str(self.model)
        return [str(self.python), *LAUNCH_SERVER[1:], *args, *real_sglang.server_flags(args)]

    def env(self) -> dict[str, str]:
        return real_sglang.server_env()
