"""Measure a cost profile on one GPU: Qwen2.5-VL's real architecture (transformers), random weights built
from the model's published config in cost-profiles/models/ (nothing is downloaded).

    python scripts/calibrate_cost_profile.py          # 7B shapes on this GPU: a few minutes on an H200
    python scripts/calibrate_cost_profile.py --device cpu --config tiny.json ...   # the logic, on a CPU

It times the vision tower per forward for each resolution at batch 1..8 images, the language prefill at
several prompt lengths, and decode steps at several batch sizes over a long context, fits the cost model's
coefficients by least squares (sglang_epd/sim/cost.py), and writes a profile with the hardware, the software,
every measurement and each fit's worst error in it. What one GPU cannot show (embedding and KV transfers,
TP speed-ups) is taken from --base, saying so. Needs only torch and transformers (and PyYAML, which
transformers requires); the timings are transformers' kernels (SDPA attention), an upper bound for SGLang's.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import torch
import transformers
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

# The image token arithmetic and the profile format are the simulator's; neither needs more than PyYAML.
from sglang_epd.sim.cost import FACTOR, PATCH_SIZE, smart_resize  # noqa: E402
from sglang_epd.sim.cost_profiles import (  # noqa: E402
    COST_PROFILES_DIR,
    CostProfile,
    load_cost_profile,
    parse_cost_profile,
)

DEFAULT_CONFIG = COST_PROFILES_DIR / "models" / "qwen2.5-vl-7b-instruct.json"
MEASURED = (
    "encode_batch_fixed_ms", "encode_fixed_ms", "encode_ms_per_token",
    "prefill_fixed_ms", "prefill_ms_per_token", "prefill_ms_per_token_sq",
    "decode_step_fixed_ms", "decode_ms_per_seq",
)  # fmt: skip
TEMPORAL_PATCH = 2  # Qwen2.5-VL repeats a still image over 2 frames


def resolution(text: str) -> tuple[int, int]:
    names = {"720p": (1280, 720), "1080p": (1920, 1080), "1440p": (2560, 1440), "4k": (3840, 2160)}
    if text in names:
        return names[text]
    width, _, height = text.partition("x")
    return int(width), int(height)


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


class Timer:
    """Median wall time of a call, synchronised with the device."""

    def __init__(self, device: torch.device, repeats: int) -> None:
        self.device = device
        self.repeats = repeats

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def ms(self, call: Callable[[], object], warmup: int = 1) -> float:
        for _ in range(warmup):
            call()
        times = []
        for _ in range(self.repeats):
            self.sync()
            start = time.perf_counter()
            call()
            self.sync()
            times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times)


def least_squares(rows: Sequence[Sequence[float]], targets: Sequence[float]) -> tuple[list[float], float]:
    """Coefficients >= 0 of targets ~ rows @ x (a negative one is dropped and the rest refitted: costs do
    not go negative), and the worst relative error of the fit."""
    active = list(range(len(rows[0])))
    while True:
        a = torch.tensor([[row[i] for i in active] for row in rows], dtype=torch.float64)
        b = torch.tensor(targets, dtype=torch.float64).unsqueeze(1)
        solution = torch.linalg.lstsq(a, b).solution.squeeze(1).tolist()
        negative = [i for i, value in zip(active, solution, strict=True) if value < 0]
        if not negative or len(active) == 1:
            break
        active.remove(negative[0])
    coefficients = [0.0] * len(rows[0])
    for i, value in zip(active, solution, strict=True):
        coefficients[i] = max(0.0, value)
    worst = max(
        abs(sum(c * x for c, x in zip(coefficients, row, strict=True)) - t) / t
        for row, t in zip(rows, targets, strict=True)
    )
    return coefficients, worst


def build_model(config_path: Path, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    config = transformers.Qwen2_5_VLConfig(**json.loads(config_path.read_text()))
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = transformers.Qwen2_5_VLForConditionalGeneration._from_config(config)
    finally:
        torch.set_default_dtype(previous)
    return model.eval()


def parts(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(vision tower, language model) across transformers' layouts (4.5x: model.model.visual, ...)."""
    inner = model.model
    vision = getattr(inner, "visual", None) or model.visual
    language = getattr(inner, "language_model", None) or inner
    return vision, language


def measure_vit(
    vision: torch.nn.Module,
    resolutions: list[tuple[int, int]],
    batches: list[int],
    timer: Timer,
    device: torch.device,
    dtype: torch.dtype,
) -> list[dict]:
    rows = []
    channels = 3 * TEMPORAL_PATCH * PATCH_SIZE * PATCH_SIZE
    for width, height in resolutions:
        new_h, new_w = smart_resize(height, width)
        grid_h, grid_w = new_h // PATCH_SIZE, new_w // PATCH_SIZE
        tokens = (new_h // FACTOR) * (new_w // FACTOR)
        for batch in batches:
            pixels = torch.randn(batch * grid_h * grid_w, channels, device=device, dtype=dtype)
            grid = torch.tensor([[1, grid_h, grid_w]] * batch, device=device)
            ms = timer.ms(lambda pixels=pixels, grid=grid: vision(pixels, grid_thw=grid))
            rows.append(
                {"resolution": f"{width}x{height}", "images": batch, "tokens_per_image": tokens, "ms": ms}
            )
            print(f"  ViT {width}x{height} x{batch}: {ms:.1f} ms", flush=True)
    return rows


def measure_prefill(
    language: torch.nn.Module, lengths: list[int], timer: Timer, device: torch.device
) -> list[dict]:
    rows = []
    for length in lengths:
        ids = torch.randint(0, 1000, (1, length), device=device)
        ms = timer.ms(lambda ids=ids: language(input_ids=ids, use_cache=False))
        rows.append({"tokens": length, "ms": ms})
        print(f"  prefill {length} tokens: {ms:.1f} ms", flush=True)
    return rows


def measure_decode(
    language: torch.nn.Module, context: int, batches: list[int], timer: Timer, device: torch.device
) -> list[dict]:
    rows = []
    for batch in batches:
        ids = torch.randint(0, 1000, (batch, context), device=device)
        cache = language(input_ids=ids, use_cache=True).past_key_values
        token = torch.randint(0, 1000, (batch, 1), device=device)

        def step(cache=cache, token=token) -> None:
            language(input_ids=token, past_key_values=cache, use_cache=True)

        ms = timer.ms(step)  # each step adds a token to the context: negligible against it
        rows.append({"running": batch, "context_tokens": context, "ms": ms})
        print(f"  decode step, {batch} running at {context} tokens: {ms:.2f} ms", flush=True)
        del cache
    return rows


def fit(
    vit: list[dict], prefill: list[dict], decode: list[dict]
) -> tuple[dict[str, float], dict[str, float]]:
    values: dict[str, float] = {}
    errors: dict[str, float] = {}
    (batch_fixed, image_fixed, per_token), errors["vit"] = least_squares(
        [[1, r["images"], r["images"] * r["tokens_per_image"]] for r in vit], [r["ms"] for r in vit]
    )
    values.update(
        encode_batch_fixed_ms=batch_fixed, encode_fixed_ms=image_fixed, encode_ms_per_token=per_token
    )
    (fixed, linear, square), errors["prefill"] = least_squares(
        [[1, r["tokens"], r["tokens"] ** 2] for r in prefill], [r["ms"] for r in prefill]
    )
    values.update(prefill_fixed_ms=fixed, prefill_ms_per_token=linear, prefill_ms_per_token_sq=square)
    (step, per_seq), errors["decode"] = least_squares(
        [[1, r["running"]] for r in decode], [r["ms"] for r in decode]
    )
    values.update(decode_step_fixed_ms=step, decode_ms_per_seq=per_seq)
    return values, errors


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()})"


def profile_document(
    args: argparse.Namespace,
    base: CostProfile,
    values: dict[str, float],
    errors: dict[str, float],
    measurements: dict[str, list[dict]],
    hardware: str,
    seconds: float,
) -> dict:
    stage_of = {name: name.split("_")[0].replace("encode", "vit") for name in MEASURED}
    what = {
        "vit": "the vision tower's forward over images x resolutions, least squares: per forward + per image "
        "+ per token",
        "prefill": "the language model's forward over one prompt, least squares: fixed + per token + token^2",
        "decode": f"one decode step of N sequences at {args.decode_context} tokens of context, least "
        "squares: fixed + per sequence",
    }
    parameters = {}
    for name, derived in base.derivations.items():
        if name in MEASURED:
            stage = stage_of[name]
            parameters[name] = {
                "value": round(values[name], 9),
                "derivation": f"[calibration] {what[stage]}; worst fit error {errors[stage]:.1%}",
            }
        else:
            value = getattr(base.cost, name)
            parameters[name] = {
                "value": dict(value) if isinstance(value, tuple) else value,
                "derivation": f"[base] not measurable on one GPU; {base.label}: {derived}",
            }
    return {
        "description": f"{args.config.stem} measured on {hardware} by scripts/calibrate_cost_profile.py "
        f"(transformers {transformers.__version__}, random weights)",
        "version": 1,
        "model": base.model if args.config == DEFAULT_CONFIG else args.config.stem,
        "hardware": hardware,
        "sources": {
            **base.sources,
            "calibration": f"scripts/calibrate_cost_profile.py, {datetime.now(UTC):%Y-%m-%d}, on {hardware}",
            "base": f"cost-profiles/{base.name}.yaml ({base.label})",
        },
        "parameters": parameters,
        "measured": {
            "command": " ".join(sys.argv),
            "device": hardware,
            "torch": str(torch.__version__),
            "transformers": transformers.__version__,
            "cuda": str(torch.version.cuda),
            "dtype": args.dtype,
            "seconds": round(seconds, 1),
            "fit_worst_error": {k: round(v, 4) for k, v in errors.items()},
            **measurements,
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="the model's config.json")
    parser.add_argument(
        "--base", default="qwen2.5-vl-7b-h20-published", help="profile for what is not measured"
    )
    parser.add_argument(
        "--out", type=Path, help="profile to write (default: cost-profiles/<model>-<gpu>-measured.yaml)"
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default="bfloat16")
    parser.add_argument(
        "--resolutions", default="1280x720,1920x1080", help="WIDTHxHEIGHT or 720p/1080p, comma-separated"
    )
    parser.add_argument("--batches", type=ints, default=list(range(1, 9)), help="images per ViT forward")
    parser.add_argument("--prefill-lengths", type=ints, default=[1024, 2048, 4096, 8192, 16384, 24576])
    parser.add_argument(
        "--decode-context", type=int, default=21600, help="tokens of context per sequence (8 x 1080p)"
    )
    parser.add_argument("--decode-batches", type=ints, default=[1, 2, 4, 8])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device here; --device cpu runs the logic with a small --config")
    dtype = getattr(torch, args.dtype)
    base = load_cost_profile(args.base)
    hardware = device_name(device)
    print(f"calibrating {args.config.name} on {hardware} ({args.dtype})", flush=True)
    model = build_model(args.config, device, dtype)
    vision, language = parts(model)
    timer = Timer(device, args.repeats)
    with torch.inference_mode():
        vit = measure_vit(
            vision, [resolution(r) for r in args.resolutions.split(",")], args.batches, timer, device, dtype
        )
        prefill = measure_prefill(language, args.prefill_lengths, timer, device)
        decode = measure_decode(language, args.decode_context, args.decode_batches, timer, device)
    values, errors = fit(vit, prefill, decode)
    seconds = time.perf_counter() - started
    measurements = {"vit": vit, "prefill": prefill, "decode": decode}
    document = profile_document(args, base, values, errors, measurements, hardware, seconds)
    slug = "-".join(hardware.lower().replace("nvidia", "").split()[:2]) or "device"
    out = args.out or COST_PROFILES_DIR / f"{args.config.stem.removesuffix('-instruct')}-{slug}-measured.yaml"
    parse_cost_profile(out.stem, document, out)  # what the simulator and the planner will read
    out.write_text(
        f"# Measured by scripts/calibrate_cost_profile.py in {seconds:.0f} s. Values marked [base] come from "
        f"{base.label}.\n" + yaml.safe_dump(document, sort_keys=False, width=110)
    )
    print(f"fit worst errors: {', '.join(f'{k} {v:.1%}' for k, v in errors.items())}")
    print(f"wrote {out} in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
