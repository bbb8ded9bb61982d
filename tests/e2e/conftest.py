"""The system under test for tests/e2e: the rendered chart running locally (default) or on a cluster.

pytest tests/e2e                        # local: the chart on this machine, the real router, and the
                                        # SGLang pods simulated, then real SGLang on the CPU
pytest tests/e2e --servers simulated    # local, the simulator only (real: real SGLang only)
pytest tests/e2e --target kube [...]    # a cluster with the RBG controller (see README)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sglang_epd.deploy.base import Deployment
from sglang_epd.deploy.local import LocalDeployment, helm_test_pods
from sglang_epd.deploy.servers import RealServers, SglangServers, SimulatedServers
from sglang_epd.real_sglang import mooncake_problem
from sglang_epd.render import EXAMPLES_DIR
from sglang_epd.topology import Topology

SERVERS = {"simulated": ["simulated"], "real": ["real"], "both": ["simulated", "real"]}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A local test that runs the chart runs once per kind of SGLang server (`--servers`)."""
    if "servers" not in metafunc.fixturenames or metafunc.config.getoption("--target") != "local":
        return
    names = SERVERS[metafunc.config.getoption("--servers")]
    if metafunc.definition.get_closest_marker("simulator_only"):
        names = [name for name in names if name == "simulated"]
    metafunc.parametrize("servers", names, indirect=True, scope="module")


@pytest.fixture(scope="module")
def servers(request: pytest.FixtureRequest) -> SglangServers:
    """What runs the SGLang pods of a local deployment: the simulator, or real SGLang 0.5.23 on the CPU
    serving the tiny model (skipped, naming `make sglang`, where it is not installed). Unused on a
    cluster."""
    if getattr(request, "param", "simulated") == "real":
        python = request.getfixturevalue("sglang_python")
        problem = mooncake_problem(python)  # every topology the system tests run has prefill/decode
        if problem:
            pytest.skip(problem)
        return RealServers(python, request.getfixturevalue("tiny_model"))
    return SimulatedServers()


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--target")


@pytest.fixture(scope="session")
def values_files(request: pytest.FixtureRequest, target: str) -> list[Path]:
    given = request.config.getoption("--values")
    if given:
        return given
    if target == "kube":
        return [EXAMPLES_DIR / "qwen2.5-vl-7b-epd.yaml"]
    return [EXAMPLES_DIR / "sim-epd.yaml"]


@pytest.fixture(scope="module")
def deployment(
    request: pytest.FixtureRequest,
    target: str,
    values_files: list[Path],
    servers: SglangServers,
    render_chart,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    """The deployment the system tests talk to. Module-scoped: each test module gets a fresh one."""
    if target == "kube":
        from sglang_epd.deploy.kube import KubeDeployment, KubeTarget, cluster_skip_reason

        settings = KubeTarget(
            values_files=tuple(values_files),
            context=request.config.getoption("--kube-context"),
            namespace_prefix=request.config.getoption("--namespace-prefix"),
            keep=request.config.getoption("--keep"),
            ready_timeout=request.config.getoption("--ready-timeout"),
            router_url=request.config.getoption("--router-url"),
            results_dir=request.config.getoption("--e2e-results") / "kube",
        )
        reason = cluster_skip_reason(target=settings)
        if reason:
            pytest.skip(f"kube target: {reason}")
        with KubeDeployment(settings) as cluster:
            yield cluster
        return
    objects = render_chart(values_files=values_files)
    workdir = tmp_path_factory.mktemp("e2e")
    topology = Topology.from_objects(objects)
    with LocalDeployment(topology, workdir, servers=servers, test_pods=helm_test_pods(objects)) as local:
        yield local
