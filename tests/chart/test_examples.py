"""Every values example renders, under Helm 3 and 4, into a correctly wired EPD group."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sglang_epd.render import EXAMPLES_DIR, HelmRunner, render, render_text
from sglang_epd.topology import Topology
from sglang_epd.wiring import check_wiring

EXAMPLES = sorted(EXAMPLES_DIR.glob("*.yaml"))


@pytest.fixture(params=EXAMPLES, ids=[p.name for p in EXAMPLES])
def example(request: pytest.FixtureRequest) -> Path:
    return request.param


@pytest.fixture
def example_objects(helm: HelmRunner, example: Path) -> list[dict]:
    return render(helm, values_files=[example])


def test_examples_exist() -> None:
    names = {p.name for p in EXAMPLES}
    assert {
        "qwen2.5-vl-7b-epd.yaml",
        "qwen2.5-vl-7b-collocated.yaml",
        "qwen2.5-vl-7b-pd.yaml",
        "qwen2.5-vl-7b-epd-8enc.yaml",
        "qwen2.5-vl-72b-epd-rdma.yaml",
    } <= names


def test_example_starts_with_who_and_hardware(example: Path) -> None:
    header = example.read_text().split("\n\n", 1)[0]
    assert header.startswith("# "), "each example opens with a comment saying who it is for"
    assert "Hardware:" in header


def test_example_is_wired(example_objects: list[dict]) -> None:
    topology = Topology.from_objects(example_objects)
    assert check_wiring(topology, example_objects) == []


def test_example_renders_identically_with_helm3_and_helm4(
    helm: HelmRunner, any_helm: HelmRunner, example: Path
) -> None:
    # The same objects; Helm 4 ends a document whose last line is a block scalar with one more newline.
    def documents(runner: HelmRunner) -> list:
        return list(yaml.safe_load_all(render_text(runner, values_files=[example])))

    assert documents(any_helm) == documents(helm)


def test_kep_topology(render_chart) -> None:
    """qwen2.5-vl-7b-epd.yaml is the KEP-75 topology: 2 encoders, 1 prefill, 1 decode, router."""
    objects = render_chart(values_files=[EXAMPLES_DIR / "qwen2.5-vl-7b-epd.yaml"], release="sglang-epd")
    topology = Topology.from_objects(objects)
    shape = {r.name: (r.component, r.replicas, r.port) for r in topology.roles.values()}
    assert shape == {
        "vlm-encoder": ("encoder", 2, 30002),
        "vlm-prefill": ("prefill", 1, 30000),
        "vlm-decode": ("decode", 1, 30001),
        "sglang-router": ("router", 1, 8000),
    }
    encoder = topology.role("encoder")
    assert encoder.flag("--enable-prefix-mm-cache") == []
    assert encoder.registrar_urls() == ["http://sglang-epd-vlm-prefill-0.s-sglang-epd-vlm-prefill:8997"]
    assert encoder.dependencies == []
    router = topology.role("router")
    assert router.flags["--prefill"] == [
        ["http://sglang-epd-vlm-prefill-0.s-sglang-epd-vlm-prefill:30000", "8998"]
    ]
    assert router.flags["--decode"] == [["http://sglang-epd-vlm-decode-0.s-sglang-epd-vlm-decode:30001"]]
    assert router.dependencies == ["vlm-prefill", "vlm-decode"]


def test_rdma_example_uses_tp4_and_rdma(render_chart) -> None:
    objects = render_chart(values_files=[EXAMPLES_DIR / "qwen2.5-vl-72b-epd-rdma.yaml"])
    topology = Topology.from_objects(objects)
    for component in ("prefill", "decode"):
        role = topology.role(component)
        assert role.flag("--tp-size") == ["4"] and role.gpus() == 4
        assert role.flag("--disaggregation-transfer-backend") == ["mooncake"]
        assert role.flag("--disaggregation-ib-device") == ["mlx5_0"]
        assert role.container["resources"]["limits"]["rdma/hca"] == 1
        assert role.container["securityContext"]["capabilities"]["add"] == ["IPC_LOCK"]
    encoder = topology.role("encoder")
    assert encoder.flag("--encoder-transfer-backend") == ["mooncake"]
    assert encoder.flag("--disaggregation-ib-device") == ["mlx5_0"]
