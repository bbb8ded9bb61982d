"""Fixtures shared by every suite: the real helm CLIs and a renderer bound to them."""

from __future__ import annotations

from collections.abc import Callable

import pytest

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


@pytest.fixture(scope="session")
def render_chart(helm: HelmRunner) -> Renderer:
    """render_chart(values_files=[...], set_values={...}) -> rendered objects (helm 3)."""

    def _render(**kwargs: object) -> list[dict]:
        return render(helm, **kwargs)

    return _render
