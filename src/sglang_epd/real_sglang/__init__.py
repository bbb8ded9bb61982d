"""Real SGLang 0.5.23 on a CPU with no GPU: its interpreter (`make sglang`), the tiny model it serves, and
the environment and flags that make it run there. Used by the local deployment's real servers
(`deploy.servers.RealServers`) and by the fidelity tests.

Everything here stands in for hardware, not for SGLang: the servers are SGLang's own, started with the
chart's rendered arguments.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ..render import REPO_ROOT

HERE = Path(__file__).resolve().parent
# Put first on the real servers' PYTHONPATH: the CPU stand-in of sgl_kernel (its PyPI wheel holds CUDA
# builds only) and sitecustomize.py (turns off Mooncake's CUDA-only fast path).
PYTHONPATH = HERE / "pythonpath"
TINY_QWEN = HERE / "tiny_qwen.py"

# SGLang's CPU engine (srt/utils: SGLANG_USE_CPU_ENGINE), and no hub: the model is built here.
CPU_ENV = {"SGLANG_USE_CPU_ENGINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
# Torch-native attention and sampling (the defaults are CUDA kernels), no CUDA graphs.
CPU_FLAGS = (
    "--device", "cpu", "--attention-backend", "torch_native", "--sampling-backend", "pytorch",
    "--disable-cuda-graph",
)  # fmt: skip
# A KV pool the size of the tiny model's needs: the CPU engine sizes it from the machine's RAM otherwise.
MEMORY_FLAGS = ("--mem-fraction-static", "0.05", "--max-total-tokens", "4096", "--context-length", "2048")
# PD on a CPU (srt/disaggregation): the prefill's overlap scheduler and the decode's default retraction
# backup keep KV in CUDA memory.
PD_FLAGS = {
    "prefill": ("--disable-overlap-schedule",),
    "decode": ("--disaggregation-decode-retraction-backup", "cpu_tensor"),
}


def real_python() -> Path | None:
    """SGLANG_REAL_PYTHON, else .venv-sglang/bin/python; None when neither exists."""
    configured = os.environ.get("SGLANG_REAL_PYTHON")
    python = Path(configured) if configured else REPO_ROOT / ".venv-sglang" / "bin" / "python"
    return python if python.exists() else None


# What `import sglang` writes into its process's environment (sglang/srt/environ.py
# redirect_third_party_caches: setdefault of third_party_cache_defaults, from this HOME's ~/.cache/sglang).
# A test process that imported SGLang's parsers carries them; a server must derive its own from its HOME.
SGLANG_CACHE_ENV = (
    "TRITON_CACHE_DIR", "TORCHINDUCTOR_CACHE_DIR", "CUDA_CACHE_PATH", "TILELANG_CACHE_DIR",
    "FLASHINFER_WORKSPACE_BASE", "DG_JIT_CACHE_DIR",
)  # fmt: skip


def clean_env() -> dict[str, str]:
    """This process's environment without what would leak into the real interpreter (PYTHONPATH, the
    simulator's and SGLang's own settings, the cache locations an in-process `import sglang` set)."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SGLANG_") and k != "PYTHONPATH" and k not in SGLANG_CACHE_ENV
    }


def server_env() -> dict[str, str]:
    return {**CPU_ENV, "PYTHONPATH": str(PYTHONPATH)}


def server_flags(args: list[str]) -> list[str]:
    """The flags a real server on this CPU needs beside the rendered `args`."""
    mode = args[args.index("--disaggregation-mode") + 1] if "--disaggregation-mode" in args else None
    return [*CPU_FLAGS, *MEMORY_FLAGS, *PD_FLAGS.get(mode or "", ())]


MOONCAKE_LIBS = "libibverbs1 libnl-3-200 libnl-route-3-200"


def mooncake_problem(python: Path) -> str | None:
    """Why Mooncake's transfer engine (the KV cache prefill -> decode) does not load in `python`, or None."""
    run = subprocess.run(
        [str(python), "-c", "import mooncake.engine"], capture_output=True, text=True, env=clean_env()
    )
    if run.returncode == 0:
        return None
    last = (run.stderr.strip().splitlines() or ["no output"])[-1]
    return (
        f"Mooncake's transfer engine does not load in {python} ({last}): `make sglang` installs it, and it "
        f"needs Debian's {MOONCAKE_LIBS} (apt-get install)"
    )


def build_tiny_model(python: Path, out: Path, timeout: float = 300) -> Path:
    """Write the tiny random Qwen2.5-VL into `out` (~6 s) unless it is there already."""
    if (out / "config.json").exists() and (out / "model.safetensors").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    run = subprocess.run(
        [str(python), str(TINY_QWEN), str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(),
    )
    if run.returncode != 0:
        raise RuntimeError(f"building the tiny Qwen2.5-VL with {python} failed:\n{run.stderr[-3000:]}")
    return out
