"""Prints, as JSON, every metric family SGLang's own EncoderMetricsCollector exports
(srt/observability/metrics_collector.py), with the labels an encoder server gives it
(srt/disaggregation/encoder/runtime.py: model_name and dp_rank), after one call of each recording method:
{name: {"type", "labels": [...], "buckets": [...]}}.

    python metric_families.py MODEL_NAME
"""

import json
import sys

from prometheus_client import REGISTRY
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sglang.srt.observability.metrics_collector import EncoderMetricsCollector

collector = EncoderMetricsCollector({"model_name": sys.argv[1], "dp_rank": "0"})
collector.observe_queue_wait(0.1)
collector.observe_preprocess(0.1)
collector.observe_model_forward(0.1)
collector.observe_transfer(0.01)
collector.observe_mm_items_per_request(4)
collector.observe_mm_items_per_batch(8)
collector.observe_request_e2e_latency(0.2)
collector.inc_requests_received()
collector.inc_requests_total("image", "success")
collector.record_cache_tokens(50, 100)
collector.record_cache_files(1, 2)
collector.inc_cache_evictions()
collector.set_cache_state(1024 * 1024, 1)

families = {}
for family in text_string_to_metric_families(generate_latest(REGISTRY).decode()):
    if not family.name.startswith("sglang:") or family.name.endswith("_created"):
        continue
    labels = sorted({k for s in family.samples for k in s.labels if k != "le"})
    buckets = sorted({float(s.labels["le"]) for s in family.samples if "le" in s.labels})
    families[family.name] = {"type": family.type, "labels": labels, "buckets": buckets}
json.dump(families, sys.stdout, indent=1)
