"""Fixtures that run simulator processes and stop them at teardown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .simproc import Http, SimLauncher


@pytest.fixture
def sims(tmp_path: Path) -> Iterator[SimLauncher]:
    launcher = SimLauncher(tmp_path)
    yield launcher
    launcher.stop_all()


@pytest.fixture
def http() -> Http:
    return Http()
