"""summary.json, the console table, the run's pictures and the side-by-side comparison."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sglang_epd.load.samples import SAMPLES_FILE, SampleLog
from sglang_epd.load.slo import SLOSpec, decide, evaluate
from sglang_epd.reports import compare
from sglang_epd.reports.plots import write_run_plots
from sglang_epd.reports.report import SUMMARY_FILE, build_summary, format_table, write_json

PNG_MAGIC = b"\x89PNG"


def records(ttft_scale: float, count: int = 40) -> list[dict]:
    return [
        {
            "ok": True,
            "start": 1000.0 + i * 0.1,
            "images": 1 + i % 8,
            "ttft_ms": ttft_scale * (1 + i % 8),
            "tpot_ms": 10.0,
            "e2e_ms": ttft_scale * (1 + i % 8) + 500,
            "itl_ms": [10.0],
            "output_tokens": 50,
            "error": None,
            "server_ttft_ms": ttft_scale * (1 + i % 8) - 1,
        }
        for i in range(count)
    ] + [
        {
            "ok": False,
            "start": 1003.0,
            "images": 8,
            "error": "timeout",
            "error_detail": "too slow",
            "e2e_ms": 1.0,
        }
    ]


def write_run(path: Path, ttft_scale: float, slo: list[str]) -> Path:
    samples = records(ttft_scale)
    log = SampleLog(path / SAMPLES_FILE)
    log.add(samples)
    log.close()
    spec = SLOSpec.parse(slo)
    evaluation = evaluate(samples, spec)
    summary = build_summary(
        samples, spec, evaluation, decide(evaluation), {"profile": {"name": "p"}, "host": "h", "mode": "m"}
    )
    write_json(path / SUMMARY_FILE, summary)
    return path


def test_summary_and_table(tmp_path: Path) -> None:
    run = write_run(tmp_path / "a", 100.0, ["ttft_p95_ms=500", "ttft_ms=700", "error_rate_max=0.05"])
    summary = json.loads((run / SUMMARY_FILE).read_text())
    assert summary["verdict"] == {
        "status": "slo_missed",
        "exit_code": 3,
        "reasons": ["ttft_p95_ms: 800.0 ms > 500 ms"],
    }
    assert summary["requests"]["errors_by_kind"] == {"timeout": 1}
    assert [c["key"] for c in summary["slo"]["checks"]] == ["ttft_p95_ms", "error_rate_max"]
    table = format_table(summary)
    for expected in (
        "profile p",
        "TTFT",
        "TPOT",
        "E2E",
        "8 images",
        "client TTFT - server TTFT",
        "errors timeout: 1",
        "goodput",
        "ttft_p95_ms",
        "MISSED",
        "verdict: SLO MISSED (exit code 3)",
    ):
        assert expected in table


def test_run_pictures(tmp_path: Path) -> None:
    written = write_run_plots(records(100.0), tmp_path, "test run")
    assert sorted(p.name for p in written) == ["ttft_by_images.png", "ttft_cdf.png", "ttft_over_time.png"]
    assert all(p.read_bytes().startswith(PNG_MAGIC) for p in written)
    assert write_run_plots([records(1.0)[-1]], tmp_path / "none", "only failures") == []


def test_compare_runs_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = write_run(tmp_path / "epd-1enc", 200.0, [])
    faster = write_run(tmp_path / "epd-4enc", 100.0, [])
    out = tmp_path / "cmp"
    assert compare.main([str(base), str(faster), "--labels", "1 encoder,4 encoders", "--out", str(out)]) == 0
    table = (out / "compare.md").read_text()
    assert "| 4 encoders |" in table and "(0.50x)" in table
    result = json.loads((out / "compare.json").read_text())
    assert result["rows"][1]["TTFT p50 ratio"] == pytest.approx(0.5)
    assert (out / "compare.png").read_bytes().startswith(PNG_MAGIC)
    assert "1 encoder" in capsys.readouterr().out


def test_compare_refuses_what_is_not_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path / "a", 1.0, [])
    assert compare.main([str(run), str(tmp_path)]) == 2
    assert f"{tmp_path} is not a load test result: summary.json is missing" in capsys.readouterr().err
    assert compare.main([str(run), str(run), "--labels", "one"]) == 2
    assert "--labels has 1 names for 2 runs" in capsys.readouterr().err
