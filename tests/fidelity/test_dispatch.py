"""How a request's images are spread over encoders, and what `--encoder-transfer-backend auto` means:
the simulator's answers against SGLang's own functions (tests/fidelity/real/dispatch.py)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from sglang_epd.sim.config import load_config
from sglang_epd.sim.encoder_registry import assign_counts

from .real_sglang import run_driver


@pytest.fixture(scope="module")
def sglang_dispatch(sglang_python: Path) -> dict:
    return run_driver(sglang_python, "dispatch.py")  # type: ignore[return-value]


def test_image_counts_per_encoder_are_sglangs(sglang_dispatch: dict) -> None:
    """Same random state, same counts: the same encoder gets the larger share."""
    ours = []
    for items, encoders, seed, _ in sglang_dispatch["counts"]:
        random.seed(seed)
        ours.append([items, encoders, seed, assign_counts(items, encoders)])
    assert ours == sglang_dispatch["counts"]


def test_auto_transfer_backend_resolves_like_sglang(sglang_dispatch: dict) -> None:
    for backend, _arch, tp, resolved in sglang_dispatch["backends"]:
        config = load_config(
            ["--encoder-only", "--encoder-transfer-backend", backend, "--tp-size", str(tp)], env={}
        )
        assert config.encoder_transfer_backend == resolved, (backend, tp)
