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
            "sglang:kv_transfer_latency_ms", "KV cache transfer latency (prefill side).", MS_BUCKETS
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


class EncoderMetrics:
    """An encoder's families exactly as SGLang 0.5.23's EncoderMetricsCollector declares them
    (srt/observability/metrics_collector.py; labels from srt/disaggregation/encoder/runtime.py: model_name
    and dp_rank), held equal by tests/fidelity/test_metric_families.py. An encoder has no
    num_running_reqs / num_queue_reqs: those are the scheduler's."""

    MODALITY = "image"

    def __init__(self, model_name: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.labels = {"model_name": model_name, "dp_rank": "0"}
        names = list(self.labels)

        def histogram(name: str, doc: str, buckets: list[float], extra: str = "modality") -> Histogram:
            return Histogram(name, doc, [*names, extra], buckets=buckets, registry=self.registry)

        def counter(name: str, doc: str, extra: tuple[str, ...] = ("modality",)) -> Counter:
            return Counter(name, doc, [*names, *extra], registry=self.registry)

        self.cache_evictions = counter("sglang:encoder_cache_evictions_total", "Total cache evictions.")
        self.cache_size_mb = Gauge(
            "sglang:encoder_cache_size_mb", "Current cache size in MB.", names, registry=self.registry
        )
        self.cache_entries = Gauge(
            "sglang:encoder_cache_entries", "Current number of cache entries.", names, registry=self.registry
        )
        self.cache_hit_tokens = counter(
            "sglang:encoder_cache_hit_tokens_total", "Total tokens served from cache (cache hits)."
        )
        self.cache_total_tokens = counter(
            "sglang:encoder_cache_total_tokens_total", "Total tokens processed (hit + miss)."
        )
        self.cache_hit_files = counter(
            "sglang:encoder_cache_hit_files_total", "Total files served from cache."
        )
        self.cache_total_files = counter(
            "sglang:encoder_cache_total_files_total", "Total files processed (hit + miss)."
        )
        self.requests = counter(
            "sglang:encoder_requests_total",
            "Total encoder requests by modality and status.",
            ("modality", "status"),
        )
        self.requests_received = counter(
            "sglang:encoder_requests_received_total", "Total encoder requests received."
        )
        self.items_per_batch = histogram(
            "sglang:encoder_mm_items_per_batch",
            "Histogram of multimodal items processed per encoder batch.",
            [*range(1, 17), 32, 64, 128],
        )
        self.items_per_request = histogram(
            "sglang:encoder_mm_items_per_request",
            "Histogram of multimodal items per individual encoder request.",
            [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 24, 32, 64],
        )
        self.e2e = histogram(
            "sglang:encoder_request_e2e_latency_seconds",
            "Histogram of per-request end-to-end encoder latency in seconds (queue wait + encode).",
            [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60],
        )
        self.queue_wait = histogram(
            "sglang:encoder_queue_wait_seconds",
            "Time request spent waiting in scheduler queue.",
            [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10],
        )
        # Declared, never observed: the simulator's /encode carries no image bytes to decode.
        self.preprocess = histogram(
            "sglang:encoder_preprocess_seconds",
            "Data loading and preprocessing latency.",
            [0.01, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30],
        )
        self.forward = histogram(
            "sglang:encoder_model_forward_seconds",
            "GPU model forward pass latency.",
            [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
        )
        self.transfer = histogram(
            "sglang:encoder_transfer_seconds",
            "Embedding transfer latency to prefill node.",
            [0.001, 0.005, 0.01, 0.05, 0.1, 0.2, 0.5, 1, 2],
            extra="backend",
        )

    def of(self, family: Counter | Histogram, **extra: str) -> Counter | Histogram:
        """The child of `family` for this encoder (and the image modality unless told otherwise)."""
        if "backend" not in extra and "modality" not in extra:
            extra["modality"] = self.MODALITY
        return family.labels(**self.labels, **extra)

    def render(self) -> bytes:
        return generate_latest(self.registry)
