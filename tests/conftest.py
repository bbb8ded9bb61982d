"""Fixtures shared by every suite: the real helm CLIs and a renderer bound to them, real SGLang's
interpreter and the tiny model it serves on the CPU."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from sglang_epd.real_sglang import build_tiny_model, clean_env, real_python
from sglang_epd.render import HelmRunner, find_helm, render


@pytest.fixture(scope="session")
def helm() -> HelmRunner:
    """Helm 3 (the CLI most clusters are driven with); `make test` installs it into .tools/bin."""
    return HelmRunner(find_helm("3"))


@pytest.fixture(scope="session", params=["3", "4"], ids=["helm3", "helm4"])
def any_helm(request: pytest.FixtureRequest) -> HelmRunner:
    """Each supported Helm major version in turn."""
    return HelmRunner(find_helm(request.param))


Renderer = Callable[..., list[dict]]


# Options of the system tests (tests/e2e); pytest reads options only from the top-level conftest.
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sglang-epd system tests")
    group.addoption(
        "--target",
        choices=["local", "kube"],
        default="local",
        help="where the chart runs: local processes (default) or a Kubernetes cluster",
    )
    group.addoption(
        "--values",
        action="append",
        type=Path,
        default=[],
        help="values file(s) for the system tests (default: values-examples/sim-epd.yaml locally)",
    )
    group.addoption(
        "--servers",
        choices=["simulated", "real", "both"],
        default="both",
        help="what runs the SGLang pods locally: the simulator, real SGLang on the CPU (`make sglang`), or "
        "each in turn (default)",
    )
    group.addoption("--kube-context", default=None, help="kubeconfig context (kube target)")
    group.addoption(
        "--namespace-prefix", default="sglang-epd-e2e", help="prefix of the test namespace (kube)"
    )
    group.addoption(
        "--keep", action="store_true", help="leave the release and namespace for inspection (kube)"
    )
    group.addoption(
        "--ready-timeout", type=float, default=3600.0, help="seconds to wait for RBG Ready (kube)"
    )
    group.addoption(
        "--router-url", default=None, help="reach the router here instead of port-forwarding (kube)"
    )
    group.addoption(
        "--ttft-slo-ms",
        type=float,
        default=None,
        help="TTFT p95 SLO of the load test (default on local: derived from the cost model)",
    )
    group.addoption(
        "--e2e-results", type=Path, default=Path("results/e2e"), help="diagnostics and load test results"
    )


@pytest.fixture(scope="session")
def render_chart(helm: HelmRunner) -> Renderer:
    """render_chart(values_files=[...], set_values={...}) -> rendered objects (helm 3)."""

    def _render(**kwargs: object) -> list[dict]:
        return render(helm, **kwargs)

    return _render


@pytest.fixture(scope="session")
def sglang_python() -> Path:
    """The interpreter of real SGLang 0.5.23; the test skips, naming `make sglang`, without one."""
    python = real_python()
    if python is None:
        pytest.skip(
            "real SGLang is not installed: `make sglang` puts SGLang 0.5.23 with its dependencies into "
            ".venv-sglang (or set SGLANG_REAL_PYTHON to an interpreter that has it)"
        )
    version = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('sglang'))"],
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    if version.returncode != 0:
        pytest.fail(f"{python} cannot import sglang: {version.stderr.strip()[-500:]}")
    return python


@pytest.fixture(scope="session")
def tiny_model(sglang_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2.5-VL that real SGLang serves on the CPU (sglang_epd/real_sglang/tiny_qwen.py)."""
    return build_tiny_model(sglang_python, tmp_path_factory.mktemp("tiny-qwen2.5-vl"))
