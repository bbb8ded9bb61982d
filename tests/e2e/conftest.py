"""The system under test for tests/e2e: the rendered chart running locally (default) or on a cluster.

pytest tests/e2e                        # local: simulator pods and the real router on this machine
pytest tests/e2e --target kube [...]    # a cluster with the RBG controller (see README)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sglang_epd.deploy.base import Deployment
from sglang_epd.deploy.local import LocalDeployment, helm_test_pods
from sglang_epd.render import EXAMPLES_DIR
from sglang_epd.topology import Topology


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
    with LocalDeployment(Topology.from_objects(objects), workdir, test_pods=helm_test_pods(objects)) as local:
        yield local
