"""Cost profiles: the shipped files load, say how every value was derived, and reach the simulator."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from sglang_epd.sim.config import StartupError, load_config
from sglang_epd.sim.cost import CostModel
from sglang_epd.sim.cost_profiles import (
    COST_PROFILES_DIR,
    CostProfileError,
    cost_profile_names,
    load_cost_profile,
)

SHIPPED = cost_profile_names()


def test_profiles_are_shipped() -> None:
    assert {"sim-default", "qwen2.5-vl-7b-h20-published", "qwen2.5-vl-7b-h100-derived"} <= set(SHIPPED)


def test_sim_default_is_the_simulators_built_in_model() -> None:
    assert load_cost_profile("sim-default").cost == CostModel()


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_profile_derives_every_value(name: str) -> None:
    profile = load_cost_profile(name)
    assert profile.version >= 1 and profile.hardware and profile.model
    assert set(profile.derivations) == {f for f in CostModel.__dataclass_fields__}
    assert all(len(text) >= 10 for text in profile.derivations.values())


def test_published_profile_reproduces_its_source_figures() -> None:
    """The H20 ViT figure it was derived from: 4 x 1080p at TP2 in 492 ms, TP4 466 ms, TP8 524 ms (LMSYS)."""
    cost = load_cost_profile("qwen2.5-vl-7b-h20-published").cost
    four = [cost.vision_tokens(1920, 1080)] * 4
    for tp, published in ((2, 492.13), (4, 465.80), (8, 523.80)):
        assert cost.encode_batch_ms(four, tp) == pytest.approx(published, rel=0.01)


def _write(tmp_path: Path, change: dict | None = None, drop: str | None = None) -> Path:
    document = yaml.safe_load((COST_PROFILES_DIR / "sim-default.yaml").read_text())
    for key, value in (change or {}).items():
        target = document
        *parents, last = key.split(".")
        for parent in parents:
            target = target[parent]
        target[last] = value
    if drop:
        *parents, last = drop.split(".")
        target = document
        for parent in parents:
            target = target[parent]
        del target[last]
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.mark.parametrize(
    ("change", "drop", "message"),
    [
        (None, "parameters.decode_ms_per_seq", "missing decode_ms_per_seq"),
        ({"parameters.turbo": {"value": 1, "derivation": "[sim] fast"}}, None, "unknown turbo"),
        ({"parameters.prefill_fixed_ms.value": -1}, None, "prefill_fixed_ms.value must be a non-negative"),
        (
            {"parameters.prefill_fixed_ms": 2.0},
            None,
            "prefill_fixed_ms must be {value: ..., derivation: ...}",
        ),
        ({"parameters.prefill_fixed_ms.derivation": " "}, None, "must say how the value was derived"),
        ({"parameters.prefill_fixed_ms.derivation": "[blog] said so"}, None, "cites blog, which `sources`"),
        ({"parameters.vit_tp_speedup.value": {2: 0}}, None, "speed-ups > 0"),
        ({"parameters.vit_tp_speedup.value": [2, 1.5]}, None, "maps TP sizes to speed-ups"),
        ({"version": 0}, None, "version must be a positive integer"),
        ({"colour": "red"}, None, "unknown key(s) colour"),
        (None, "hardware", "missing key(s) hardware"),
    ],
)
def test_bad_profiles_name_what_is_wrong(
    tmp_path: Path, change: dict | None, drop: str | None, message: str
) -> None:
    with pytest.raises(CostProfileError, match=re.escape(message)):
        load_cost_profile(str(_write(tmp_path, change, drop)))


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(CostProfileError, match=r"known cost profiles: .*sim-default"):
        load_cost_profile("h900")


def test_the_simulator_reads_the_named_profile_and_its_overrides() -> None:
    env = {"SGLANG_SIM_COST_PROFILE": "qwen2.5-vl-7b-h20-published", "SGLANG_SIM_PREFILL_FIXED_MS": "9"}
    config = load_config(["--model-path", "m"], env=env)
    published = load_cost_profile("qwen2.5-vl-7b-h20-published").cost
    assert config.cost.encode_ms_per_token == published.encode_ms_per_token
    assert config.cost.vit_tp_speedup == published.vit_tp_speedup
    assert config.cost.prefill_fixed_ms == 9


def test_the_simulator_refuses_an_unknown_profile_at_start_up() -> None:
    with pytest.raises(StartupError, match="no cost profile named 'h900'"):
        load_config(["--model-path", "m"], env={"SGLANG_SIM_COST_PROFILE": "h900"})
