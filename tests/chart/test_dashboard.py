"""The chart's Grafana dashboard is well formed, scoped to one RoleBasedGroup, and reads only metrics that the
pods really export: the simulated SGLang roles and the real router, run locally from the rendered chart."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from sglang_epd.dashboard import (
    iter_panels,
    load_dashboard,
    metric_names,
    panel_queries,
    scrape_metric_names,
)
from sglang_epd.deploy.local import LocalDeployment, LocalPod
from sglang_epd.render import EXAMPLES_DIR
from sglang_epd.scenarios import ImageSource, ask, served_model, succeeded
from sglang_epd.topology import Topology

DASHBOARD = load_dashboard()
PANELS = [p for p in iter_panels(DASHBOARD["panels"]) if p["type"] != "row"]
ALL_QUERIES = panel_queries(DASHBOARD)
PANEL_QUERIES = [(title, expr) for title, expr in ALL_QUERIES if not title.startswith("$")]
DATASOURCE = "${datasource}"
SCOPE = ('namespace="$namespace"', 'rbg_group="$rbg_group"')


def selectors(expr: str, name: str) -> list[str]:
    """The `{...}` matchers after each occurrence of metric `name` in `expr` ("" where it has none)."""
    pattern = re.compile(rf"(?<![\w:]){re.escape(name)}(?![\w:])\s*(\{{[^}}]*\}})?")
    return [match.group(1) or "" for match in pattern.finditer(expr)]


# The dashboard JSON ---------------------------------------------------------------------------------------


def test_dashboard_identity_and_variables() -> None:
    assert (DASHBOARD["uid"], DASHBOARD["title"], DASHBOARD["schemaVersion"]) == (
        "sglang-epd",
        "SGLang EPD",
        39,
    )
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    queries = dict(ALL_QUERIES)
    assert queries["$namespace"] == "label_values(sglang:num_running_reqs, namespace)"
    assert queries["$rbg_group"] == 'label_values(sglang:num_running_reqs{namespace="$namespace"}, rbg_group)'
    for name in ("namespace", "rbg_group"):
        assert variables[name]["datasource"]["uid"] == DATASOURCE


def test_rows() -> None:
    rows = [p["title"] for p in iter_panels(DASHBOARD["panels"]) if p["type"] == "row"]
    assert rows == ["Router", "Encoders", "Prefill / decode"]


def test_panel_ids_are_unique() -> None:
    ids = [p["id"] for p in iter_panels(DASHBOARD["panels"])]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("panel", PANELS, ids=[p["title"] for p in PANELS])
def test_panel_queries_prometheus_through_the_datasource_variable(panel: dict) -> None:
    assert panel["datasource"]["uid"] == DATASOURCE
    assert panel["targets"], "a panel without a query shows nothing"
    for target in panel["targets"]:
        assert target["expr"].strip()
        assert target.get("datasource", {"uid": DATASOURCE})["uid"] == DATASOURCE
    assert panel["fieldConfig"]["defaults"]["unit"] in {"s", "ms", "reqps", "short"}


@pytest.mark.parametrize(("title", "expr"), PANEL_QUERIES, ids=[t for t, _ in PANEL_QUERIES])
def test_every_selector_is_scoped_to_the_group(title: str, expr: str) -> None:
    """Every selector of every panel filters on the namespace and RoleBasedGroup chosen above the panels,
    or the panel mixes in other groups' series."""
    names = metric_names(expr)
    assert names
    for name in names:
        for matchers in selectors(expr, name):
            assert all(scope in matchers for scope in SCOPE), f"{title}: {name}{matchers}"


def sglang_exported_names() -> set[str]:
    """Every sample name SGLang 0.5.23 can export: the `name="sglang:..."` its source declares, with the
    suffixes prometheus_client adds (_bucket/_sum/_count of histograms, _total of counters)."""
    spec = importlib.util.find_spec("sglang")
    if spec is None or spec.origin is None:
        pytest.skip("the sglang wheel is not installed (make parsers)")
    declared = {
        name
        for path in Path(spec.origin).parent.rglob("*.py")
        for name in re.findall(r'name="(sglang:[a-z0-9_:]+)"', path.read_text(errors="replace"))
    }
    suffixes = ("", "_bucket", "_sum", "_count", "_total")
    return {name + suffix for name in declared for suffix in suffixes}


def test_the_dashboard_reads_only_metrics_real_sglang_exports() -> None:
    """The simulator's own metrics (sglang_sim:*) exist in no cluster: a panel on one stays empty there."""
    real = sglang_exported_names()
    for title, expr in ALL_QUERIES:
        for name in metric_names(expr):
            assert not name.startswith("sglang_sim:"), f"{title}: {name} is the simulator's own"
            if name.startswith("sglang:"):
                assert name in real, f"{title}: SGLang 0.5.23 declares no {name}"


# metric_names and scrape_metric_names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            "histogram_quantile(0.95, sum by (le, component) (rate(sglang:time_to_first_token_seconds_bucket"
            '{namespace="$namespace", rbg_group="$rbg_group"}[$__rate_interval])))',
            {"sglang:time_to_first_token_seconds_bucket"},
        ),
        ("label_values(sglang:num_running_reqs, namespace)", {"sglang:num_running_reqs"}),
        ('label_values(up{job="x"}, instance)', {"up"}),
        ("label_values(namespace)", set()),
        (
            "sum without (pod) (rate(a_total[5m] offset 1h)) / on (le) group_left (x) b > bool 1e3",
            {"a_total", "b"},
        ),
        ('SUM BY (le) (c) AND ignoring(x) d OR count(e{f="}g", h=~"by|sum"}) unless Inf', {"c", "d", "e"}),
        ('{__name__="via_name", job="rate"} * topk(5, max_over_time(k[1h:5m]))', {"via_name", "k"}),
        ("rate(m_count[${interval}]) / rate(m_sum[$__interval]) # the mean of m", {"m_count", "m_sum"}),
        ("label_replace(up, \"dst\", '$1', 'src', `(.*)`) - 0x1F + .5", {"up"}),
        ("max by (pod) (gauge) - min(other) @ 1609746000", {"gauge", "other"}),
    ],
    ids=[
        "histogram_quantile",
        "label_values",
        "label_values-matchers",
        "label_values-label-only",
        "offset-and-vector-matching",
        "keywords-any-case-and-strings",
        "__name__-and-subquery",
        "grafana-variables-and-comment",
        "strings-and-numbers",
        "at-modifier",
    ],
)
def test_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_scrape_metric_names() -> None:
    text = """\
# HELP sglang:ttft Time to first token.
# TYPE sglang:ttft histogram
sglang:ttft_bucket{le="0.1",model_name="m"} 1.0
sglang:ttft_count{model_name="m"} 1.0
# TYPE smg_router_request_duration_seconds histogram
# TYPE sglang:num_requests_total counter
sglang:num_requests_total{model_name="m"} 2.0
sglang:num_requests_created{model_name="m"} 1.7e9
smg_http_connections_active 0
# EOF
"""
    assert scrape_metric_names(text) == {
        "sglang:ttft",
        "sglang:ttft_bucket",
        "sglang:ttft_sum",
        "sglang:ttft_count",
        "smg_router_request_duration_seconds",
        "smg_router_request_duration_seconds_bucket",
        "smg_router_request_duration_seconds_sum",
        "smg_router_request_duration_seconds_count",
        "sglang:num_requests_total",
        "sglang:num_requests_created",
        "smg_http_connections_active",
    }


# What the running pods export ------------------------------------------------------------------------------


def metrics_port(pod: LocalPod) -> int:
    """The router serves Prometheus on --prometheus-port; an SGLang server on its --port (with
    --enable-metrics, which every SGLang role must have or the dashboard is empty for it)."""
    role = pod.role
    if role.component == "router":
        (port,) = role.flag("--prometheus-port") or pytest.fail("the router has no --prometheus-port")
        return int(port)
    assert "--enable-metrics" in role.flags, f"{role.name} does not serve /metrics"
    return role.port


@pytest.fixture(scope="module")
def exported(render_chart, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, set[str]]]:
    """component -> metric names its pods export, after two image requests through the router (the router
    exports a histogram only once it has an observation)."""
    objects = render_chart(values_files=[EXAMPLES_DIR / "sim-epd.yaml"])
    topology = Topology.from_objects(objects)
    with LocalDeployment(topology, Path(tmp_path_factory.mktemp("dashboard"))) as deployment:

        async def send() -> list:
            source, model = ImageSource(), served_model(topology)
            async with aiohttp.ClientSession() as session:
                return [
                    await ask(session, deployment.router_url, model, source.request_images(2), max_tokens=4)
                    for _ in range(2)
                ]

        results = asyncio.run(send())
        assert all(succeeded(r) for r in results), [(r.status, r.error) for r in results]
        names: dict[str, set[str]] = {}
        for pods in deployment.pods.values():
            for pod in pods:
                url = f"http://{pod.ip}:{metrics_port(pod)}/metrics"
                with urllib.request.urlopen(url, timeout=10) as response:
                    text = response.read().decode()
                names.setdefault(pod.role.component, set()).update(scrape_metric_names(text))
        yield names


def test_every_component_is_scraped(exported: dict[str, set[str]]) -> None:
    assert set(exported) == {"encoder", "prefill", "decode", "router"}


@pytest.mark.parametrize(("title", "expr"), ALL_QUERIES, ids=[t for t, _ in ALL_QUERIES])
def test_every_queried_metric_is_exported(exported: dict[str, set[str]], title: str, expr: str) -> None:
    """Each metric a query reads is exported by some pod, and by a pod of a component the query's
    `component` matcher admits (`=` or `=~`), so the panel cannot stay empty for a misspelt name or a
    metric that lives on another role."""
    everything = set().union(*exported.values())
    for name in sorted(metric_names(expr)):
        assert name in everything, f"{title}: nobody exports {name}"
        exporters = {component for component, names in exported.items() if name in names}
        for matchers in selectors(expr, name):
            wanted = re.search(r'component\s*(=~?)\s*"([^"]*)"', matchers)
            if wanted:
                pattern = wanted.group(2) if wanted.group(1) == "=~" else re.escape(wanted.group(2))
                assert any(re.fullmatch(pattern, c) for c in exporters), (
                    f"{title}: {name} is exported by {sorted(exporters)}, the query wants {pattern}"
                )
