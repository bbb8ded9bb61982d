"""A CPU-only simulator of SGLang's server roles for EPD / PD deployments (a test double).

`python -m sglang_epd.sim <launch_server flags>` stands in for `python3 -m sglang.launch_server`: same
flags, same HTTP protocols, time spent according to `cost.py`, no meaningful text. See docs/simulator.md.
"""

from .cost import CostModel, ideal_ttft_ms, split_counts, vision_tokens

__all__ = ["CostModel", "ideal_ttft_ms", "split_counts", "vision_tokens"]
