"""Real SGLang (the oracle) beside the simulator: both are started by fixtures and stopped at teardown."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sim.conftest import sims  # noqa: F401  (the simulator's processes, stopped at teardown)

from .fake_encoder import FakeEncoders
from .real_sglang import RealSglang, real_python, run_driver


@pytest.fixture(scope="session")
def sglang_python() -> Path:
    python = real_python()
    if python is None:
        pytest.skip(
            "real SGLang is not installed: `make sglang` puts SGLang 0.5.23 with its dependencies into "
            ".venv-sglang (or set SGLANG_REAL_PYTHON to an interpreter that has it)"
        )
    version = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('sglang'))"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    if version.returncode != 0:
        pytest.fail(f"{python} cannot import sglang: {version.stderr.strip()[-500:]}")
    return python


@pytest.fixture(scope="session")
def tiny_model(sglang_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2.5-VL that real SGLang serves on the CPU (real/tiny_qwen.py, ~6 s)."""
    out = tmp_path_factory.mktemp("tiny-qwen2.5-vl")
    run_driver(sglang_python, "tiny_qwen.py", str(out))
    return out


@pytest.fixture
def sglang(sglang_python: Path, tmp_path: Path) -> Iterator[RealSglang]:
    launcher = RealSglang(sglang_python, tmp_path)
    yield launcher
    launcher.stop_all()


@pytest.fixture
def fake_encoders() -> Iterator[FakeEncoders]:
    encoders = FakeEncoders()
    yield encoders
    encoders.stop_all()
