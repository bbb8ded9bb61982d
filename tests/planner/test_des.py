"""The planner's discrete-event model against exact answers: an idle request is the cost model's ideal,
a single queue is M/D/1, continuous batching and the shared GPU follow the simulator's rules by hand."""

from __future__ import annotations

import random

import pytest

from sglang_epd.planner.des import GpuServer, StagedModel, encode_ready_ms, simulate
from sglang_epd.planner.layouts import Layout, layouts_within
from sglang_epd.planner.workload import PlannedRequest
from sglang_epd.sim.cost import CostModel, ideal_ttft_ms, vision_tokens

TEN_80P = vision_tokens(1920, 1080)
COST = CostModel(
    vit_tp_speedup=((2, 1.6),), language_tp_speedup=((2, 1.8),), prefill_ms_per_token_sq=1e-7,
    image_load_ms_per_token=0.004, encoder_preprocess_ms_per_token=0.015,
)  # fmt: skip


@pytest.mark.parametrize(
    ("layout", "encoders", "disaggregated"),
    [
        (Layout("epd", 4, 1, 1, 1, 1), 4, True),
        (Layout("epd", 3, 1, 2, 1, 2), 3, True),
        (Layout("pd", 0, 1, 2, 1, 1), 0, True),
        (Layout("collocated", 0, 1, 2), 0, False),
        (Layout("encoder+collocated", 2, 1, 1), 2, False),
    ],
    ids=lambda v: v.label if isinstance(v, Layout) else None,
)
def test_an_idle_request_takes_the_ideal_ttft(layout: Layout, encoders: int, disaggregated: bool) -> None:
    request = PlannedRequest(0, 0.0, (TEN_80P,) * 8, 5, 16)
    timing = simulate(layout, [request], COST)[0]
    ideal = ideal_ttft_ms(
        [(1920, 1080)] * 8, encoders, 5, disaggregated=disaggregated, tp_size=layout.server_tp, cost=COST
    )
    if layout.disaggregated and layout.decode_tp != layout.server_tp:  # ideal_ttft_ms has one TP
        ideal += COST.decode_step_ms(1, layout.decode_tp) - COST.decode_step_ms(1, layout.server_tp)
    assert timing.ttft_ms == pytest.approx(ideal)
    decode_tp = layout.decode_tp if layout.disaggregated else layout.server_tp
    assert timing.e2e_ms == pytest.approx(timing.ttft_ms + 15 * COST.decode_step_ms(1, decode_tp))


def test_a_single_prefill_queue_waits_as_md1() -> None:
    """Poisson arrivals, a fixed service time: mean wait rho * D / (2 (1 - rho)) (Pollaczek-Khinchine)."""
    cost = CostModel(prefill_fixed_ms=100.0, prefill_ms_per_token=0.0)
    rng, t, requests = random.Random(3), 0.0, []
    for index in range(40_000):
        t += rng.expovariate(7 / 1000)  # 7 req/s: rho = 0.7
        requests.append(PlannedRequest(index, t, (), 1, 1))
    timings = simulate(Layout("collocated", 0, 1, 1), requests, cost)
    mean_wait = sum(x.ttft_ms for x in timings) / len(timings) - 100.0
    assert mean_wait == pytest.approx(0.7 * 100 / (2 * 0.3), rel=0.05)


def test_decode_batch_joins_at_the_next_step_and_steps_by_batch_size() -> None:
    """DecodeBatch (sim/gpu.py): a sequence added mid-step waits for that step, then every step gives each
    running sequence a token at decode_step_ms(running)."""
    cost = CostModel(decode_step_fixed_ms=10.0, decode_ms_per_seq=1.0)
    server = GpuServer(cost, 1, max_running=8)
    server.run(joins=[(0.0, 0, 3), (5.0, 1, 2)])
    # step 1: [0] 0-11; steps 2, 3: [0, 1] 11-23, 23-35; request 1 done after 2 steps, request 0 after 3.
    assert server.first_ms == {0: 11.0, 1: 23.0}
    assert server.finish_ms == {0: 35.0, 1: 35.0}


def test_decode_batch_is_capped_at_max_running() -> None:
    cost = CostModel(decode_step_fixed_ms=10.0, decode_ms_per_seq=0.0)
    server = GpuServer(cost, 1, max_running=1)
    server.run(joins=[(0.0, 0, 2), (0.0, 1, 2)])
    assert server.first_ms == {0: 10.0, 1: 30.0}
    assert server.finish_ms == {0: 20.0, 1: 40.0}


def test_unsplit_server_queues_prefills_and_decode_steps_first_come_first_served() -> None:
    """A prefill that asked during a decode step goes before the next step (asyncio.Lock is FIFO)."""
    cost = CostModel(decode_step_fixed_ms=10.0, decode_ms_per_seq=0.0)
    server = GpuServer(cost, 1, max_running=8)
    # request 0: prefill 0-50, first token at 50, then 3 decode steps; request 1 ready at 55: after step 1.
    server.run(prefills=[(0.0, 50.0, 0, 3), (55.0, 40.0, 1, 1)])
    assert server.first_ms[0] == 50.0
    assert server.first_ms[1] == 60.0 + 40.0  # step 50-60, then its prefill 60-100
    # The decode loop asked at 60 with request 0 alone, so it steps alone at 100-110 (request 1 joined at
    # 100, after that ask); both step at 110-120, the last token of each.
    assert server.finish_ms == {0: 120.0, 1: 120.0}


def test_encoders_split_a_request_and_queue_first_come_first_served() -> None:
    cost = CostModel(encode_fixed_ms=0.0, encode_ms_per_token=1.0, embed_transfer_fixed_ms=0.0,
                     embed_transfer_ms_per_token=0.0)  # fmt: skip
    requests = [PlannedRequest(0, 0.0, (10, 10), 1, 1), PlannedRequest(1, 1.0, (10, 10), 1, 1)]
    assert encode_ready_ms(requests, 2, 1, cost) == [10.0, 20.0]  # one image each, the second queues
    assert encode_ready_ms(requests, 1, 1, cost) == [20.0, 40.0]


def test_encoders_preprocess_off_the_gpu_so_a_smaller_share_can_go_first() -> None:
    """A share asks for the encoder's GPU once loaded and preprocessed (sim/encoder.py handle_encode)."""
    cost = CostModel(encode_fixed_ms=0.0, encode_ms_per_token=1.0, embed_transfer_fixed_ms=0.0,
                     embed_transfer_ms_per_token=0.0, image_load_ms_per_token=0.5,
                     encoder_preprocess_ms_per_token=1.0)  # fmt: skip
    requests = [PlannedRequest(0, 0.0, (10, 10), 1, 1), PlannedRequest(1, 1.0, (4,), 1, 1)]
    # request 0: load 5 + preprocess 20, forward 25-45; request 1: load 2 + preprocess 4, forward 7-11.
    assert encode_ready_ms(requests, 1, 1, cost) == [45.0, 11.0]


def test_shared_stages_give_what_each_layout_gives_alone() -> None:
    rng = random.Random(1)
    requests = [
        PlannedRequest(i, i * 300.0 + rng.random() * 100, (TEN_80P,) * rng.randint(0, 8), 64, 32)
        for i in range(60)
    ]
    model = StagedModel(requests, COST)
    for layout in layouts_within(4):
        assert model.timings(layout) == simulate(layout, requests, COST), layout.label


def test_layouts_stay_within_the_budget_and_cover_every_mode() -> None:
    layouts = list(layouts_within(6, tp_sizes=(1, 2)))
    assert all(1 <= layout.gpus <= 6 for layout in layouts)
    assert {layout.mode for layout in layouts} == {"epd", "pd", "collocated", "encoder+collocated"}
    assert Layout("epd", 2, 1, 2, 1, 1) in layouts and Layout("epd", 2, 2, 2, 1, 1) not in layouts
