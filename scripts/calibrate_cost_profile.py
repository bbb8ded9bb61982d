"""Measure a cost profile on one GPU: Qwen2.5-VL's real architecture (transformers), random weights built
from the model's published config in cost-profiles/models/ (nothing is downloaded).

    python scripts/calibrate_cost_profile.py          # 7B shapes on this GPU: a few minutes on an H200
    python scripts/calibrate_cost_profile.py --device cpu --config tiny.json ...   # the logic, on a CPU

    python scripts/calibrate_cost_profile.py --preprocess-only   # only the CPU's image work, no model

It times the vision tower per forward for each resolution at batch 1..8 images, the language prefill at
several prompt lengths, and decode steps at several batch sizes over a long context; on the CPU, the image
work an encoder does before its forward (a JPEG decoded with Pillow, then transformers' Qwen2-VL image
processor over 1..8 images, as SGLang's encoder calls it). It fits the cost model's coefficients by least
squares (sglang_epd/sim/cost.py) and writes a profile with the hardware, the software, every measurement
and each fit's worst error in it. What one GPU cannot show (embedding and KV transfers, TP speed-ups) is
taken from --base, saying so. Needs only torch and transformers (and PyYAML, which transformers requires;
the image work also Pillow, or it comes from --base); the timings are transformers' kernels (SDPA
attention), an upper bound for SGLang's.
"""

from __future__ import annotations

import argparse
import io
import json
import os
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
from sglang_epd.sim.cost import (  # noqa: E402
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    FACTOR,
    PATCH_SIZE,
    smart_resize,
)
from sglang_epd.sim.cost_profiles import (  # noqa: E402
    COST_PROFILES_DIR,
    CostProfile,
    load_cost_profile,
    parse_cost_profile,
)

DEFAULT_CONFIG = COST_PROFILES_DIR / "models" / "qwen2.5-vl-7b-instruct.json"
# Each measurable coefficient -> the stage that measures it.
STAGE_OF = {
    "encode_batch_fixed_ms": "vit", "encode_fixed_ms": "vit", "encode_ms_per_token": "vit",
    "prefill_fixed_ms": "prefill", "prefill_ms_per_token": "prefill", "prefill_ms_per_token_sq": "prefill",
    "decode_step_fixed_ms": "decode", "decode_ms_per_seq": "decode",
    "image_load_ms_per_token": "load", "encoder_preprocess_ms_per_token": "preprocess",
}  # fmt: skip
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


def measure_preprocess(resolutions: list[tuple[int, int]], batches: list[int], timer: Timer) -> list[dict]:
    """An encoder's CPU work on its share, as SGLang 0.5.23 does it for Qwen2.5-VL: the images decoded
    (disaggregation/encoder/preprocessor.py _flatten_and_load_images, Pillow), then one image-processor call
    over the share (_process_image_items, on the CPU unless SGLANG_ENCODER_IMAGE_PROCESSOR_USE_GPU).
    Empty when Pillow or the processor is missing. Threads: torch's default, which SGLang's encoder keeps."""
    try:
        from PIL import Image
        from transformers import Qwen2VLImageProcessor
    except ImportError as error:
        print(f"  image preprocessing not measured ({error}); taken from --base", flush=True)
        return []
    processor = Qwen2VLImageProcessor(
        size={"shortest_edge": DEFAULT_MIN_PIXELS, "longest_edge": DEFAULT_MAX_PIXELS}
    )
    rows = []
    for width, height in resolutions:
        jpeg = photo_jpeg(width, height)
        load_ms = timer.ms(lambda jpeg=jpeg: Image.open(io.BytesIO(jpeg)).convert("RGB"))
        image = Image.open(io.BytesIO(jpeg)).convert("RGB")
        grid = processor(images=[image], return_tensors="pt")["image_grid_thw"][0].tolist()
        tokens = grid[1] * grid[2] // 4  # 2x2 patches merge into one token
        new_h, new_w = smart_resize(height, width)
        if tokens != (new_h // FACTOR) * (new_w // FACTOR):
            raise SystemExit(f"the processor makes {tokens} tokens of {width}x{height}; sim/cost.py does not")
        for batch in batches:
            ms = timer.ms(lambda n=batch, image=image: processor(images=[image] * n, return_tensors="pt"))
            rows.append(
                {"resolution": f"{width}x{height}", "images": batch, "tokens_per_image": tokens,
                 "load_ms": load_ms, "ms": ms, "jpeg_bytes": len(jpeg)}
            )  # fmt: skip
            print(f"  preprocess {width}x{height} x{batch}: load {load_ms:.1f} ms, processor {ms:.1f} ms")
    return rows


def photo_jpeg(width: int, height: int) -> bytes:
    """A photo-like JPEG (gradients plus noise, quality 90): noise keeps the decoder from a shortcut."""
    from PIL import Image

    generator = torch.Generator().manual_seed(0)
    y = torch.linspace(0, 255, height).view(-1, 1, 1).expand(height, width, 1)
    x = torch.linspace(0, 255, width).view(1, -1, 1).expand(height, width, 1)
    pixels = torch.cat([x, y, (x + y) / 2], dim=2) + torch.randn(height, width, 3, generator=generator) * 20
    out = io.BytesIO()
    Image.fromarray(pixels.clamp(0, 255).to(torch.uint8).numpy()).save(out, "JPEG", quality=90)
    return out.getvalue()


def fit(
    vit: list[dict], prefill: list[dict], decode: list[dict], preprocess: list[dict]
) -> tuple[dict[str, float], dict[str, float]]:
    """The coefficients of each stage that was measured, and each stage's worst fit error."""
    values: dict[str, float] = {}
    errors: dict[str, float] = {}
    if vit:
        (batch_fixed, image_fixed, per_token), errors["vit"] = least_squares(
            [[1, r["images"], r["images"] * r["tokens_per_image"]] for r in vit], [r["ms"] for r in vit]
        )
        values.update(
            encode_batch_fixed_ms=batch_fixed, encode_fixed_ms=image_fixed, encode_ms_per_token=per_token
        )
    if prefill:
        (fixed, linear, square), errors["prefill"] = least_squares(
            [[1, r["tokens"], r["tokens"] ** 2] for r in prefill], [r["ms"] for r in prefill]
        )
        values.update(prefill_fixed_ms=fixed, prefill_ms_per_token=linear, prefill_ms_per_token_sq=square)
    if decode:
        (step, per_seq), errors["decode"] = least_squares(
            [[1, r["running"]] for r in decode], [r["ms"] for r in decode]
        )
        values.update(decode_step_fixed_ms=step, decode_ms_per_seq=per_seq)
    if preprocess:
        loads = {r["resolution"]: r for r in preprocess}.values()
        (values["image_load_ms_per_token"],), errors["load"] = least_squares(
            [[r["tokens_per_image"]] for r in loads], [r["load_ms"] for r in loads]
        )
        (values["encoder_preprocess_ms_per_token"],), errors["preprocess"] = least_squares(
            [[r["images"] * r["tokens_per_image"]] for r in preprocess], [r["ms"] for r in preprocess]
        )
    return values, errors


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({cpu_name()})"


def cpu_name() -> str:
    """The CPU's model and the threads torch uses on it (the image work runs there even on a GPU node)."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} CPUs, torch {torch.get_num_threads()} threads"


def profile_document(
    args: argparse.Namespace,
    base: CostProfile,
    values: dict[str, float],
    errors: dict[str, float],
    measurements: dict[str, list[dict]],
    hardware: str,
    seconds: float,
) -> dict:
    cpu = cpu_name()
    what = {
        "vit": "the vision tower's forward over images x resolutions, least squares: per forward + per image "
        "+ per token",
        "prefill": "the language model's forward over one prompt, least squares: fixed + per token + token^2",
        "decode": f"one decode step of N sequences at {args.decode_context} tokens of context, least "
        "squares: fixed + per sequence",
        "load": f"a photo-like JPEG decoded by Pillow on the CPU ({cpu}), least squares: per token",
        "preprocess": f"transformers' Qwen2VLImageProcessor over 1..N images on the CPU ({cpu}), least "
        "squares: per token",
    }
    parameters = {}
    for name, derived in base.derivations.items():
        stage = STAGE_OF.get(name)
        if stage in errors:
            parameters[name] = {
                "value": round(values[name], 9),
                "derivation": f"[calibration] {what[stage]}; worst fit error {errors[stage]:.1%}",
            }
        else:
            value = getattr(base.cost, name)
            why = "not measured in this run" if stage else "not measurable on one GPU"
            parameters[name] = {
                "value": dict(value) if isinstance(value, tuple) else value,
                "derivation": f"[base] {why}; {base.label}: {derived}",
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
    parser.add_argument(
        "--preprocess-only", action="store_true", help="only the CPU's image work: no model, no GPU"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    device = torch.device("cpu" if args.preprocess_only else args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device here; --device cpu runs the logic with a small --config")
    dtype = getattr(torch, args.dtype)
    base = load_cost_profile(args.base)
    hardware = device_name(device)
    print(f"calibrating {args.config.name} on {hardware} ({args.dtype})", flush=True)
    resolutions = [resolution(r) for r in args.resolutions.split(",")]
    vit: list[dict] = []
    prefill: list[dict] = []
    decode: list[dict] = []
    with torch.inference_mode():
        if not args.preprocess_only:
            model = build_model(args.config, device, dtype)
            vision, language = parts(model)
            timer = Timer(device, args.repeats)
            vit = measure_vit(vision, resolutions, args.batches, timer, device, dtype)
            prefill = measure_prefill(language, args.prefill_lengths, timer, device)
            decode = measure_decode(language, args.decode_context, args.decode_batches, timer, device)
        preprocess = measure_preprocess(resolutions, args.batches, Timer(torch.device("cpu"), args.repeats))
    values, errors = fit(vit, prefill, decode, preprocess)
    seconds = time.perf_counter() - started
    measurements = {"vit": vit, "prefill": prefill, "decode": decode, "preprocess": preprocess}
    document = profile_document(args, base, values, errors, measurements, hardware, seconds)
    slug = "cpu" if device.type == "cpu" else "-".join(hardware.lower().replace("nvidia", "").split()[:2])
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
