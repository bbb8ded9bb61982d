"""The requests the planner sends through a layout: a load profile's mix at an open-loop rate.

The same profile YAML the load tests read (loadtests/profiles), the same Poisson or uniform gaps
(load/arrivals.py). Only what costs time is kept: each image's vision tokens, the text tokens, the output
length. Every image counts as new (a profile's `cache_hit_ratio` would need the encoders' prefix cache,
which the planner does not model, so it is pessimistic there).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ..load.arrivals import ArrivalSchedule
from ..load.payload import CHARS_PER_TOKEN
from ..load.profiles import Profile
from ..sim.cost import CostModel


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    index: int
    arrival_ms: float
    image_tokens: tuple[int, ...]
    text_tokens: int
    max_tokens: int

    @property
    def prompt_tokens(self) -> int:
        return self.text_tokens + sum(self.image_tokens)


def planned_requests(
    profile: Profile, rate: float, count: int, cost: CostModel, *, arrivals: str = "poisson", seed: int = 0
) -> list[PlannedRequest]:
    """`count` requests of `profile` arriving at `rate` per second from time 0."""
    rng = random.Random(f"plan/{profile.seed}/{seed}")
    schedule = ArrivalSchedule(rate, arrivals, rng, 0.0)
    # The load client sends prompt_tokens x 4 characters of text; the simulator counts its tokens.
    text_tokens = math.ceil(profile.prompt_tokens * CHARS_PER_TOKEN / cost.chars_per_token)
    tokens_of = {r: cost.vision_tokens(r.width, r.height) for r in profile.resolution.values}
    requests = []
    for index in range(count):
        images = 0 if rng.random() < profile.text_only_share else profile.images_per_request.pick(rng)
        image_tokens = tuple(tokens_of[profile.resolution.pick(rng)] for _ in range(images))
        requests.append(
            PlannedRequest(index, schedule.next() * 1000, image_tokens, text_tokens, profile.max_tokens)
        )
    return requests
