"""Real SGLang (the oracle) beside the simulator: both are started by fixtures and stopped at teardown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sim.conftest import sims  # noqa: F401  (the simulator's processes, stopped at teardown)

from .fake_encoder import FakeEncoders
from .real_sglang import RealSglang


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
