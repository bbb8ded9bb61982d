"""The cost model: Qwen2.5-VL vision tokens, the image split over encoders, the ideal TTFT."""

from __future__ import annotations

import pytest

from sglang_epd.sim.cost import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    CostModel,
    ideal_ttft_ms,
    smart_resize,
    split_counts,
    split_in_order,
    vision_tokens,
)


@pytest.mark.parametrize(
    ("width", "height", "tokens"),
    [
        (1920, 1080, 39 * 69),  # 1080p -> 1092 x 1932 -> 2691
        (1280, 720, 26 * 46),
        (28, 28, 4),  # below min_pixels (3136 = 4 tokens): scaled up
        (448, 448, 256),
    ],
)
def test_vision_tokens(width: int, height: int, tokens: int) -> None:
    assert vision_tokens(width, height) == tokens


def test_1080p_is_2691_tokens() -> None:
    assert vision_tokens(1920, 1080) == 2691


def test_smart_resize_keeps_pixels_within_bounds() -> None:
    height, width = smart_resize(8000, 8000)
    assert height % 28 == 0 and width % 28 == 0
    assert DEFAULT_MIN_PIXELS <= height * width <= DEFAULT_MAX_PIXELS
    height, width = smart_resize(10, 10)
    assert height * width >= DEFAULT_MIN_PIXELS


def test_smart_resize_rejects_extreme_aspect_ratio() -> None:
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(10, 3000)


@pytest.mark.parametrize(
    ("images", "encoders", "counts"),
    [(8, 2, [4, 4]), (8, 3, [3, 3, 2]), (2, 3, [1, 1]), (1, 4, [1]), (0, 2, []), (9, 4, [3, 2, 2, 2])],
)
def test_split_counts(images: int, encoders: int, counts: list[int]) -> None:
    assert split_counts(images, encoders) == counts


def test_split_keeps_image_order() -> None:
    assert split_in_order(list(range(8)), 3) == [[0, 1, 2], [3, 4, 5], [6, 7]]


def test_from_env_reads_every_coefficient() -> None:
    cost = CostModel.from_env({"SGLANG_SIM_ENCODE_MS_PER_TOKEN": "0.5", "SGLANG_SIM_DECODE_STEP_MS": "20"})
    assert cost.encode_ms_per_token == 0.5
    assert cost.decode_step_ms(running=0) == 20
    assert CostModel.from_env({}) == CostModel()


def test_from_env_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="SGLANG_SIM_PREFILL_MS_PER_TOKEN"):
        CostModel.from_env({"SGLANG_SIM_PREFILL_MS_PER_TOKEN": "fast"})


def test_encode_time_of_1080p_image() -> None:
    assert CostModel().encode_ms(2691) == pytest.approx(5 + 0.03 * 2691)  # ~85.7 ms


def test_tp_divides_prefill_and_decode_but_not_encode() -> None:
    cost = CostModel()
    assert cost.prefill_ms(10_000, tp_size=2) == pytest.approx(cost.prefill_ms(10_000) / 2)
    assert cost.decode_step_ms(8, tp_size=4) == pytest.approx(cost.decode_step_ms(8) / 4)


def test_ideal_ttft_epd_takes_the_largest_share() -> None:
    cost = CostModel()
    images = [(1920, 1080)] * 8
    share = 3 * 2691  # 8 images over 3 encoders: 3 + 3 + 2
    prompt = 8 * 2691 + 100
    expected = (
        3 * cost.encode_ms(2691)
        + cost.embed_transfer_ms(share)
        + cost.prefill_ms(prompt)
        + cost.kv_transfer_ms(prompt)
        + cost.decode_step_ms(1)
    )
    assert ideal_ttft_ms(images, 3, text_tokens=100, cost=cost) == pytest.approx(expected)


def test_ideal_ttft_collocated_encodes_serially() -> None:
    cost = CostModel()
    images = [(1920, 1080)] * 4
    expected = 4 * cost.encode_ms(2691) + cost.prefill_ms(4 * 2691)
    assert ideal_ttft_ms(images, 0, disaggregated=False, cost=cost) == pytest.approx(expected)


def test_more_encoders_lower_the_ideal_ttft() -> None:
    images = [(1920, 1080)] * 8
    ttfts = [ideal_ttft_ms(images, n, cost=CostModel()) for n in (1, 2, 4, 8)]
    assert ttfts == sorted(ttfts, reverse=True)


def test_the_cpu_image_work_comes_before_the_vit_on_either_side() -> None:
    """An encoder loads (in parallel) and preprocesses its share before the forward; a server encoding
    itself only loads them, its image processor runs on its GPU (base_processor.py)."""
    cost = CostModel.from_env(
        {"SGLANG_SIM_IMAGE_LOAD_MS_PER_TOKEN": "0.005", "SGLANG_SIM_ENCODER_PREPROCESS_MS_PER_TOKEN": "0.02"}
    )
    bare = CostModel()
    images = [(1920, 1080)] * 4
    assert cost.encoder_preprocess_ms([2691, 2691]) == pytest.approx(0.005 * 2691 + 0.02 * 2 * 2691)
    # 4 images on 2 encoders: each share is 2 images.
    assert ideal_ttft_ms(images, 2, cost=cost) - ideal_ttft_ms(images, 2, cost=bare) == pytest.approx(
        cost.encoder_preprocess_ms([2691, 2691])
    )
    assert ideal_ttft_ms(images, 0, disaggregated=False, cost=cost) - ideal_ttft_ms(
        images, 0, disaggregated=False, cost=bare
    ) == pytest.approx(0.005 * 2691)
