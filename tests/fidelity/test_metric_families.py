"""An encoder's Prometheus families: the simulator's against SGLang's own EncoderMetricsCollector
(tests/fidelity/real/metric_families.py): the same names, types, labels and buckets, nothing more."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.sim.simproc import Http, SimLauncher

from .real_sglang import run_driver

MODEL = "qwen2.5-vl-7b"


def families(text: str) -> dict[str, dict]:
    found = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("sglang:") or family.name.endswith("_created"):
            continue
        labels = sorted({k for s in family.samples for k in s.labels if k != "le"})
        buckets = sorted({float(s.labels["le"]) for s in family.samples if "le" in s.labels})
        found[family.name] = {"type": family.type, "labels": labels, "buckets": buckets}
    return found


def sglang_families(python: Path) -> dict[str, dict]:
    return run_driver(python, "metric_families.py", MODEL)  # type: ignore[return-value]


def test_encoder_families_are_sglangs(sglang_python: Path, sims: SimLauncher) -> None:
    encoder = sims.start(
        "--encoder-only", "--enable-metrics", "--enable-prefix-mm-cache", "--served-model-name", MODEL
    )
    image = {"width": 1920, "height": 1080, "hash": "h"}
    body = {"rid": "r", "part_index": 0, "images": [{"index": 0, **image}, {"index": 1, **image}]}
    status, _ = Http().post_json(f"{encoder.url}/encode", body)
    assert status == 200
    simulated = families(Http._metrics_text(encoder.url))
    real = sglang_families(sglang_python)
    never_observed = {"sglang:encoder_preprocess_seconds"}  # the simulator decodes no image bytes
    for name in never_observed:  # declared with no child: only the type shows
        real[name] = {**real[name], "labels": [], "buckets": []}
    assert simulated == real
    assert "sglang:num_running_reqs" not in real
