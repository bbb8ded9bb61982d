"""The simulator's cost model: how long each GPU step of a request takes (docs/simulator.md).

Every number is a small polynomial whose coefficients come from a cost profile (`cost-profiles/*.yaml`,
named by `SGLANG_SIM_COST_PROFILE`) and then from `SGLANG_SIM_*` environment variables, so a benchmark can
state exactly what it simulated. The capacity planner (`sglang_epd.planner`) spends time by the same
functions. Nothing here sleeps: the servers call these functions and sleep for what they return.

Vision tokens follow Qwen2.5-VL's image processor: each side is rounded to a multiple of 28 (14-pixel
patches merged 2x2), the pixel count is kept within [min_pixels, max_pixels] by scaling both sides,
and every 28x28 block becomes one token that the language model prefills.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import TypeVar

PATCH_SIZE = 14
MERGE_SIZE = 2
FACTOR = PATCH_SIZE * MERGE_SIZE  # 28: one vision token per 28x28 pixels after resizing
DEFAULT_MIN_PIXELS = 4 * FACTOR * FACTOR  # 3136
DEFAULT_MAX_PIXELS = 16384 * FACTOR * FACTOR  # 12845056, SGLang's SGLANG_IMAGE_MAX_PIXELS default
MAX_ASPECT_RATIO = 200

T = TypeVar("T")


def smart_resize(
    height: int,
    width: int,
    *,
    factor: int = FACTOR,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[int, int]:
    """(height, width) after Qwen2-VL/2.5-VL resizing: multiples of `factor`, pixels within bounds."""
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(f"image aspect ratio must be at most {MAX_ASPECT_RATIO}, got {width}x{height}")
    new_h = max(factor, round(height / factor) * factor)
    new_w = max(factor, round(width / factor) * factor)
    if new_h * new_w > max_pixels:
        scale = math.sqrt(height * width / max_pixels)
        new_h = max(factor, math.floor(height / scale / factor) * factor)
        new_w = max(factor, math.floor(width / scale / factor) * factor)
    elif new_h * new_w < min_pixels:
        scale = math.sqrt(min_pixels / (height * width))
        new_h = math.ceil(height * scale / factor) * factor
        new_w = math.ceil(width * scale / factor) * factor
    return new_h, new_w


def vision_tokens(
    width: int, height: int, *, min_pixels: int = DEFAULT_MIN_PIXELS, max_pixels: int = DEFAULT_MAX_PIXELS
) -> int:
    """Vision tokens of one image: (H'/28) * (W'/28) after smart_resize. 1920x1080 -> 39*69 = 2691."""
    new_h, new_w = smart_resize(height, width, min_pixels=min_pixels, max_pixels=max_pixels)
    return (new_h // FACTOR) * (new_w // FACTOR)


def split_counts(items: int, workers: int) -> list[int]:
    """How many of `items` each worker gets when they are split evenly and in order.

    8 over 2 -> [4, 4]; 8 over 3 -> [3, 3, 2]; 2 over 3 -> [1, 1] (only as many workers as items).
    """
    if workers <= 0:
        raise ValueError("need at least one worker")
    used = min(items, workers)
    if used == 0:
        return []
    base, extra = divmod(items, used)
    return [base + 1 if i < extra else base for i in range(used)]


def split_in_order(items: Sequence[T], workers: int) -> list[list[T]]:
    """`items` cut into contiguous shares of split_counts(len(items), workers), order kept."""
    shares: list[list[T]] = []
    start = 0
    for count in split_counts(len(items), workers):
        shares.append(list(items[start : start + count]))
        start += count
    return shares


def env_number(env: Mapping[str, str], name: str, default: float, *, negative_ok: bool = False) -> float:
    """A number from the environment; `default` when unset or blank, ValueError naming the variable when not
    a number (or negative, unless `negative_ok`)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if value < 0 and not negative_ok:
        raise ValueError(f"{name}={raw!r} must not be negative")
    return value


def parse_speedups(text: str, name: str) -> tuple[tuple[int, float], ...]:
    """`2:1.0,4:1.06,8:0.94` -> ((2, 1.0), (4, 1.06), (8, 0.94)): speed-up over TP 1 by TP size."""
    speedups = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        tp, sep, factor = item.partition(":")
        try:
            if not sep:
                raise ValueError
            speedups[int(tp)] = float(factor)
        except ValueError:
            raise ValueError(f"{name}={text!r}: expected TP:SPEEDUP,... e.g. 2:1.8,4:3.2") from None
    return checked_speedups(speedups, name)


def checked_speedups(speedups: Mapping[int, float], name: str) -> tuple[tuple[int, float], ...]:
    for tp, factor in speedups.items():
        if tp < 1 or not factor > 0:
            raise ValueError(f"{name}: TP {tp} -> {factor}: TP sizes are >= 1 and speed-ups > 0")
    return tuple(sorted(speedups.items()))


# Field name -> environment variable; the defaults live on the dataclass.
ENV_NAMES: dict[str, str] = {
    "image_load_ms_per_token": "SGLANG_SIM_IMAGE_LOAD_MS_PER_TOKEN",
    "encoder_preprocess_ms_per_token": "SGLANG_SIM_ENCODER_PREPROCESS_MS_PER_TOKEN",
    "encode_batch_fixed_ms": "SGLANG_SIM_ENCODE_BATCH_FIXED_MS",
    "encode_fixed_ms": "SGLANG_SIM_ENCODE_FIXED_MS",
    "encode_ms_per_token": "SGLANG_SIM_ENCODE_MS_PER_TOKEN",
    "vit_tp_speedup": "SGLANG_SIM_VIT_TP_SPEEDUP",
    "embed_transfer_fixed_ms": "SGLANG_SIM_EMBED_TRANSFER_FIXED_MS",
    "embed_transfer_ms_per_token": "SGLANG_SIM_EMBED_TRANSFER_MS_PER_TOKEN",
    "prefill_fixed_ms": "SGLANG_SIM_PREFILL_FIXED_MS",
    "prefill_ms_per_token": "SGLANG_SIM_PREFILL_MS_PER_TOKEN",
    "prefill_ms_per_token_sq": "SGLANG_SIM_PREFILL_MS_PER_TOKEN_SQ",
    "kv_transfer_fixed_ms": "SGLANG_SIM_KV_TRANSFER_FIXED_MS",
    "kv_transfer_ms_per_token": "SGLANG_SIM_KV_TRANSFER_MS_PER_TOKEN",
    "decode_step_fixed_ms": "SGLANG_SIM_DECODE_STEP_MS",
    "decode_ms_per_seq": "SGLANG_SIM_DECODE_MS_PER_SEQ",
    "language_tp_speedup": "SGLANG_SIM_LANGUAGE_TP_SPEEDUP",
    "chars_per_token": "SGLANG_SIM_CHARS_PER_TOKEN",
    "min_pixels": "SGLANG_SIM_IMAGE_MIN_PIXELS",
    "max_pixels": "SGLANG_IMAGE_MAX_PIXELS",  # SGLang's own variable
}
COST_PROFILE_ENV = "SGLANG_SIM_COST_PROFILE"
SPEEDUP_FIELDS = ("vit_tp_speedup", "language_tp_speedup")


@dataclass(frozen=True)
class CostModel:
    """Coefficients of the cost model (the simulator's defaults: cost-profiles/sim-default.yaml);
    `CostModel.from_env()` reads a profile and the overrides."""

    # CPU work before the ViT, off the GPU. Loading (decoding) an image's bytes: a request's images load in
    # parallel (SGLang's io thread pools: multimodal/processors/base_processor.py `io_executor` on a language
    # server, disaggregation/encoder/preprocessor.py `EncoderPreprocessor.io_executor` on an encoder).
    image_load_ms_per_token: float = 0.0
    # An encoder's image processor over its share, one call, on the CPU (EncoderPreprocessor.
    # _process_image_items in its preproc_executor; SGLANG_ENCODER_IMAGE_PROCESSOR_USE_GPU defaults off).
    # A language server encoding itself runs the processor on its GPU (base_processor.py
    # _fast_image_processor_device): a few ms, taken as none.
    encoder_preprocess_ms_per_token: float = 0.0
    encode_batch_fixed_ms: float = 0.0
    encode_fixed_ms: float = 5.0
    encode_ms_per_token: float = 0.03
    # Speed-up of the ViT over TP 1, by TP size; an unlisted size gets none (the ViT does not scale with TP).
    vit_tp_speedup: tuple[tuple[int, float], ...] = ()
    embed_transfer_fixed_ms: float = 0.5
    embed_transfer_ms_per_token: float = 0.0005
    prefill_fixed_ms: float = 2.0
    prefill_ms_per_token: float = 0.005
    prefill_ms_per_token_sq: float = 0.0
    kv_transfer_fixed_ms: float = 1.0
    kv_transfer_ms_per_token: float = 0.0002
    decode_step_fixed_ms: float = 10.0
    decode_ms_per_seq: float = 0.05
    # Speed-up of prefill and decode over TP 1, by TP size; an unlisted size gets the ideal (TP times).
    language_tp_speedup: tuple[tuple[int, float], ...] = ()
    chars_per_token: float = 4.0
    min_pixels: int = DEFAULT_MIN_PIXELS
    max_pixels: int = DEFAULT_MAX_PIXELS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CostModel:
        """The profile `SGLANG_SIM_COST_PROFILE` names (a name in cost-profiles/ or a file; none: these
        defaults), with each coefficient's `SGLANG_SIM_*` variable overriding it."""
        env = os.environ if env is None else env
        base = cls()
        if env.get(COST_PROFILE_ENV, "").strip():
            from .cost_profiles import load_cost_profile  # YAML is only read when a profile is named

            base = load_cost_profile(env[COST_PROFILE_ENV].strip()).cost
        return base.overridden(env)

    def overridden(self, env: Mapping[str, str]) -> CostModel:
        values: dict[str, object] = {}
        for f in fields(self):
            name, current = ENV_NAMES[f.name], getattr(self, f.name)
            if f.name in SPEEDUP_FIELDS:
                raw = env.get(name, "").strip()
                values[f.name] = parse_speedups(raw, name) if raw else current
                continue
            value = env_number(env, name, current)
            values[f.name] = int(value) if f.name.endswith("_pixels") else value
        if values["chars_per_token"] <= 0:  # type: ignore[operator]
            raise ValueError("SGLANG_SIM_CHARS_PER_TOKEN must be positive")
        return replace(self, **values)  # type: ignore[arg-type]

    def vit_speedup(self, tp_size: int) -> float:
        return next((factor for tp, factor in self.vit_tp_speedup if tp == tp_size), 1.0)

    def language_speedup(self, tp_size: int) -> float:
        tp_size = max(1, tp_size)
        return next((factor for tp, factor in self.language_tp_speedup if tp == tp_size), float(tp_size))

    def vision_tokens(self, width: int, height: int) -> int:
        return vision_tokens(width, height, min_pixels=self.min_pixels, max_pixels=self.max_pixels)

    def text_tokens(self, chars: int) -> int:
        """A tokenizer stand-in: ceil(chars / chars_per_token)."""
        return math.ceil(chars / self.chars_per_token) if chars > 0 else 0

    def image_load_ms(self, tokens_per_image: Sequence[int]) -> float:
        """Loading a request's (or a share's) images, in parallel: the largest one's."""
        return self.image_load_ms_per_token * max(tokens_per_image, default=0)

    def encoder_preprocess_ms(self, tokens_per_image: Sequence[int]) -> float:
        """An encoder's CPU work on its share before the forward: load, then the image processor."""
        return self.image_load_ms(tokens_per_image) + self.encoder_preprocess_ms_per_token * sum(
            tokens_per_image
        )

    def encode_ms(self, tokens: int) -> float:
        """ViT time of one image within a forward (at TP 1)."""
        return self.encode_fixed_ms + self.encode_ms_per_token * tokens

    def encode_batch_ms(self, tokens_per_image: Sequence[int], tp_size: int = 1) -> float:
        """One ViT forward over a batch of images: a fixed cost per forward plus each image's."""
        if not tokens_per_image:
            return 0.0
        total = self.encode_batch_fixed_ms + sum(self.encode_ms(t) for t in tokens_per_image)
        return total / self.vit_speedup(tp_size)

    def embed_transfer_ms(self, tokens: int) -> float:
        """Sending one batch's embeddings from an encoder to the language server."""
        return self.embed_transfer_fixed_ms + self.embed_transfer_ms_per_token * tokens

    def prefill_ms(self, prompt_tokens: int, tp_size: int = 1) -> float:
        """Prefill forward of one request (text + vision tokens); the square term is attention's."""
        ms = (
            self.prefill_fixed_ms
            + self.prefill_ms_per_token * prompt_tokens
            + self.prefill_ms_per_token_sq * prompt_tokens * prompt_tokens
        )
        return ms / self.language_speedup(tp_size)

    def kv_transfer_ms(self, prompt_tokens: int) -> float:
        """Moving one request's KV cache from prefill to decode."""
        return self.kv_transfer_fixed_ms + self.kv_transfer_ms_per_token * prompt_tokens

    def decode_step_ms(self, running: int, tp_size: int = 1) -> float:
        """One continuous-batching step: one token for each of `running` sequences."""
        return (self.decode_step_fixed_ms + self.decode_ms_per_seq * running) / self.language_speedup(tp_size)


def ideal_ttft_ms(
    images: Sequence[tuple[int, int]],
    encoders: int,
    text_tokens: int = 0,
    *,
    disaggregated: bool = True,
    tp_size: int = 1,
    cost: CostModel | None = None,
) -> float:
    """TTFT of one request on an idle deployment, by the cost model.

    `images` are (width, height) pairs. With `encoders` > 0 (EPD) the images are split over that many
    encoders and the slowest share counts (its preprocessing, forward and embedding transfer); with 0 the
    language server loads them and encodes all of them itself, in one forward at its TP. Then the prefill
    of text + vision tokens; and with `disaggregated` (PD) the KV transfer plus one decode step, after
    which the decode server writes the first token.
    """
    cost = cost or CostModel.from_env()
    tokens = [cost.vision_tokens(w, h) for w, h in images]
    if not tokens:
        encode = 0.0
    elif encoders > 0:
        encode = max(
            cost.encoder_preprocess_ms(share)
            + cost.encode_batch_ms(share)
            + cost.embed_transfer_ms(sum(share))
            for share in split_in_order(tokens, encoders)
        )
    else:
        encode = cost.image_load_ms(tokens) + cost.encode_batch_ms(tokens, tp_size)
    prompt_tokens = text_tokens + sum(tokens)
    ttft = encode + cost.prefill_ms(prompt_tokens, tp_size)
    if disaggregated:
        ttft += cost.kv_transfer_ms(prompt_tokens) + cost.decode_step_ms(1, tp_size)
    return ttft
