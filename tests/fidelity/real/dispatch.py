"""Prints, as JSON, SGLang's own dispatch decisions for a grid of cases:
{"counts": [[items, encoders, seed, [count per encoder]], ...],
 "backends": [[backend, arch, tp, resolved], ...]}

- counts: MMReceiverBase._assign_items_by_modality (srt/disaggregation/encoder/receiver.py) for `items`
  images on `encoders` encoders after random.seed(seed); its body uses nothing of `self`.
- backends: resolve_encoder_transfer_backend (srt/server_args.py), what `auto` becomes.

    python dispatch.py
"""

import json
import random

from sglang.srt.disaggregation.encoder.receiver import MMReceiverBase
from sglang.srt.server_args import resolve_encoder_transfer_backend

counts = []
for items in range(1, 10):
    for encoders in range(1, 5):
        for seed in range(4):
            random.seed(seed)
            assigned = MMReceiverBase._assign_items_by_modality(
                None, [{"modality": "image"}] * items, encoders
            )
            counts.append([items, encoders, seed, list(next(iter(assigned.values())))])
backends = [
    [backend, arch, tp, resolve_encoder_transfer_backend(backend, arch, tp)]
    for backend in ("auto", "zmq_to_scheduler", "zmq_to_tokenizer", "mooncake")
    for arch in ("Qwen2_5_VLForConditionalGeneration",)
    for tp in (1, 2, 4)
]
print(json.dumps({"counts": counts, "backends": backends}))
