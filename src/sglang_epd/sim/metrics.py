"""Prometheus metrics under SGLang's names (facts/sglang-epd.md, "Prometheus names").

Metrics that SGLang does not have are prefixed `sglang_sim:` so nobody mistakes them for real ones.
Each server owns its registry; /metrics serves it only with --enable-metrics.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75,
    1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
ITL_BUCKETS = (0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
MS_BUCKETS = (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class _Base:
    def __init__(self, model_name: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.model_name = model_name

    def _histogram(self, name: str, doc: str, buckets: tuple) -> Histogram:
        return Histogram(name, doc, ["model_name"], buckets=buckets, registry=self.registry).labels(
            self.model_name
        )

    def _counter(self, name: str, doc: str) -> Counter:
        return Counter(name, doc, ["model_name"], registry=self.registry).labels(self.model_name)

    def _gauge_fn(self, name: str, doc: str, fn: Callable[[], float]) -> None:
        Gauge(name, doc, ["model_name"], registry=self.registry).labels(self.model_name).set_function(fn)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class GenerationMetrics(_Base):
    """Plain, language-only, prefill and decode servers."""

    def __init__(self, model_name: str, running: Callable[[], float], queued: Callable[[], float]) -> None:
        super().__init__(model_name)
        self.ttft = self._histogram(
            "sglang:time_to_first_token_seconds", "Time to first token.", LATENCY_BUCKETS
        )
        self.itl = self._histogram("sglang:inter_token_latency_seconds", "Inter-token latency.", ITL_BUCKETS)
        self.e2e = self._histogram(
            "sglang:e2e_request_latency_seconds", "End-to-end request latency.", LATENCY_BUCKETS
        )
        self.kv_transfer_ms = self._histogram(
            "sglang:kv_transfer_latency_ms", "KV cache transfer latency (decode side).", MS_BUCKETS
        )
        self.prompt_tokens = self._counter("sglang:prompt_tokens", "Prefilled prompt tokens.")
        self.generation_tokens = self._counter("sglang:generation_tokens", "Generated tokens.")
        self.requests = self._counter("sglang:num_requests", "Finished requests.")
        self._gauge_fn("sglang:num_running_reqs", "Requests running on the GPU.", running)
        self._gauge_fn("sglang:num_queue_reqs", "Requests waiting for the GPU.", queued)
        self.failed = self._counter("sglang_sim:failed_requests", "Requests that ended with an error.")
        self.dispatched_images = Counter(
            "sglang_sim:encoder_dispatched_images",
            "Images sent to each encoder (language-only servers).",
            ["model_name", "encoder"],
            registry=self.registry,
        )


class EncoderMetrics(_Base):
    def __init__(self, model_name: str, running: Callable[[], float], queued: Callable[[], float]) -> None:
        super().__init__(model_name)
        self.e2e = self._histogram(
            "sglang:encoder_request_e2e_latency_seconds", "Encode request latency.", LATENCY_BUCKETS
        )
        self.forward = self._histogram(
            "sglang:encoder_model_forward_seconds", "Vision encoder forward time.", LATENCY_BUCKETS
        )
        self.queue_wait = self._histogram(
            "sglang:encoder_queue_wait_seconds", "Time waiting for the encoder GPU.", LATENCY_BUCKETS
        )
        self.transfer = self._histogram(
            "sglang:encoder_transfer_seconds", "Embedding transfer to the language server.", LATENCY_BUCKETS
        )
        self._gauge_fn("sglang:num_running_reqs", "Encode batches running on the GPU.", running)
        self._gauge_fn("sglang:num_queue_reqs", "Encode batches waiting for the GPU.", queued)
        self.images = self._counter("sglang_sim:encoder_images", "Images received by /encode.")
        self.cache_hits = self._counter("sglang_sim:encoder_cache_hits", "Prefix mm cache hits.")
        self.cache_misses = self._counter("sglang_sim:encoder_cache_misses", "Prefix mm cache misses.")
        self.vision_tokens = self._counter("sglang_sim:encoder_vision_tokens", "Vision tokens encoded.")
