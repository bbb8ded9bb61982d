"""The calibration script's logic on a CPU, with a tiny Qwen2.5-VL config: it builds the real architecture
(transformers, random weights), times it, fits and writes a profile the simulator and the planner read.
The GPU run (7B shapes) is the same code with the defaults."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from sglang_epd.planner.command import EXIT_BAD_INPUT
from sglang_epd.planner.command import main as plan
from sglang_epd.real_sglang import clean_env
from sglang_epd.render import REPO_ROOT
from sglang_epd.sim.cost import CostModel
from sglang_epd.sim.cost_profiles import load_cost_profile

SCRIPT = REPO_ROOT / "scripts" / "calibrate_cost_profile.py"
TINY = {
    "model_type": "qwen2_5_vl", "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
    "num_hidden_layers": 2, "num_key_value_heads": 2, "vocab_size": 1024, "max_position_embeddings": 4096,
    "bos_token_id": 1, "eos_token_id": 2, "rope_theta": 10000.0,
    "rope_scaling": {"mrope_section": [2, 3, 3], "rope_type": "default", "type": "default"},
    "vision_config": {
        "depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64,
        "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
        "fullatt_block_indexes": [1], "in_chans": 3, "in_channels": 3,
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def calibrated(sglang_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The script run on the CPU with .venv-sglang's torch and transformers (what the GPU machine has)."""
    work = tmp_path_factory.mktemp("calibration")
    config = work / "tiny-qwen.json"
    config.write_text(json.dumps(TINY))
    out = work / "tiny-cpu-measured.yaml"
    run = subprocess.run(
        [str(sglang_python), str(SCRIPT), "--device", "cpu", "--dtype", "float32", "--config", str(config),
         "--resolutions", "112x112,448x448", "--batches", "1,2,3", "--prefill-lengths", "32,128,256,512",
         "--decode-context", "128", "--decode-batches", "1,4,8", "--repeats", "2", "--out", str(out)],
        capture_output=True, text=True, timeout=600, env=clean_env(),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert f"wrote {out}" in run.stdout
    return out


def test_the_measured_profile_is_valid_and_says_what_was_measured(calibrated: Path) -> None:
    profile = load_cost_profile(str(calibrated))
    assert profile.hardware.startswith("CPU")
    assert profile.measured["dtype"] == "float32" and profile.measured["torch"]
    assert len(profile.measured["vit"]) == 6 and len(profile.measured["prefill"]) == 4
    assert len(profile.measured["decode"]) == 3
    for name in ("encode_ms_per_token", "prefill_ms_per_token", "decode_step_fixed_ms"):
        assert profile.derivations[name].startswith("[calibration]")
    for name in ("vit_tp_speedup", "kv_transfer_ms_per_token", "embed_transfer_ms_per_token"):
        assert profile.derivations[name].startswith("[base] not measurable on one GPU")
    # The encoder's CPU work: each resolution decoded, then the image processor over 1..3 images of it.
    assert len(profile.measured["preprocess"]) == 6
    for name in ("image_load_ms_per_token", "encoder_preprocess_ms_per_token"):
        assert profile.derivations[name].startswith("[calibration]")
        assert getattr(profile.cost, name) > 0
    # A 448x448 image is 16x the tokens of a 112x112 one: the fit charges it more.
    cost = profile.cost
    assert cost.encode_batch_ms([cost.vision_tokens(448, 448)]) > cost.encode_batch_ms(
        [cost.vision_tokens(112, 112)]
    )


def test_the_planner_and_the_simulator_read_the_measured_profile(calibrated: Path) -> None:
    code = plan(["--profile", "kep-8img", "--rate", "0.2", "--slo", "ttft_p95_ms=100000", "--gpus", "2",
                 "--requests", "60", "--cost-profile", str(calibrated)])  # fmt: skip
    assert code != EXIT_BAD_INPUT
    assert (
        CostModel.from_env({"SGLANG_SIM_COST_PROFILE": str(calibrated)})
        == load_cost_profile(str(calibrated)).cost
    )


def test_preprocess_only_measures_the_cpu_image_work_and_keeps_the_rest(
    sglang_python: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cpu-preprocess.yaml"
    run = subprocess.run(
        [str(sglang_python), str(SCRIPT), "--preprocess-only", "--resolutions", "112x112,224x224",
         "--batches", "1,2", "--repeats", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=300, env=clean_env(),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    profile = load_cost_profile(str(out))
    assert profile.derivations["encoder_preprocess_ms_per_token"].startswith("[calibration]")
    assert profile.derivations["encode_ms_per_token"].startswith("[base] not measured in this run")
    base = load_cost_profile("qwen2.5-vl-7b-h20-published").cost
    assert profile.cost.encode_ms_per_token == base.encode_ms_per_token
    assert not profile.measured["vit"] and len(profile.measured["preprocess"]) == 4
