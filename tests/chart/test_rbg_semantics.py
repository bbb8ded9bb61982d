"""The rendered group under the RBG controller's real rules (sglang_epd.rbg_model, docs/rbg-rules.md):
dependencies gate every reconcile, so nothing that scales may freeze another role; gang scheduling must be
able to start; the scaling adapter's webhook must accept upgrades."""

from __future__ import annotations

import copy
import itertools

import pytest

from sglang_epd.rbg_model import dependency_levels, gang_can_start, reconciled_roles, replicas
from sglang_epd.render import EXAMPLES_DIR

MODES = ["epd", "pd", "encoder+collocated", "collocated"]
HPA = {
    "enabled": True,
    "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}}],
}


def combination_values(mode: str, discovery: str, router_discovery: bool, autoscaled: str) -> dict | None:
    """Values for one mode x encoder discovery x router discovery x autoscaled role, None when the chart
    refuses the combination on purpose (tested in test_bad_values)."""
    values: dict = {"mode": mode, "encoderDiscovery.mode": discovery}
    if router_discovery:
        values |= {"router.discovery.enabled": True, "decode.port": 30000}
    if autoscaled == "none":
        return values
    roles = {"epd": ["encoder", "prefill", "decode"], "pd": ["prefill", "decode"]}.get(mode, [])
    roles = roles or (["encoder", "server"] if mode == "encoder+collocated" else ["server"])
    language = {"epd": "prefill", "encoder+collocated": "server"}.get(mode)
    if autoscaled not in roles:
        return None
    if autoscaled == "encoder" and discovery == "static":
        return None  # static encoders cannot autoscale
    if autoscaled != "encoder" and not router_discovery:
        return None  # a static router knows only the pods of the install
    if autoscaled == language and discovery == "static":
        return None  # it would wait for the encoders
    return values | {f"{autoscaled}.autoscaling": HPA}


COMBINATIONS = [
    (mode, discovery, router, autoscaled)
    for mode, discovery, router, autoscaled in itertools.product(
        MODES, ["dynamic", "static"], [False, True], ["none", "encoder", "prefill", "decode", "server"]
    )
    if combination_values(mode, discovery, router, autoscaled) is not None
]


@pytest.fixture(scope="module", params=COMBINATIONS, ids=["-".join(map(str, c)) for c in COMBINATIONS])
def group(request: pytest.FixtureRequest, render_chart) -> tuple[tuple, dict]:
    objects = render_chart(set_values=combination_values(*request.param))
    return request.param, next(o for o in objects if o["kind"] == "RoleBasedGroup")


def _by_component(rbg: dict) -> dict[str, dict]:
    label = "app.kubernetes.io/component"
    return {r["standalonePattern"]["template"]["metadata"]["labels"][label]: r for r in rbg["spec"]["roles"]}


def _scaling_roles(rbg: dict, discovery: str) -> list[str]:
    """Roles whose replica count changes without a helm upgrade: autoscaled ones, and dynamic encoders."""
    components = _by_component(rbg)
    names = [r["name"] for r in rbg["spec"]["roles"] if (r.get("scalingAdapter") or {}).get("enable")]
    if "encoder" in components and discovery == "dynamic":
        names.append(components["encoder"]["name"])
    return sorted(set(names))


def test_nothing_depends_on_a_role_that_scales(group: tuple[tuple, dict]) -> None:
    (_mode, discovery, _router, _auto), rbg = group
    scaling = set(_scaling_roles(rbg, discovery))
    for role in rbg["spec"]["roles"]:
        assert not scaling & set(role.get("dependencies") or []), role["name"]
        if role["name"] in scaling:
            assert not role.get("dependencies"), f"{role['name']} scales, so it must wait for no role"


def test_the_router_waits_only_for_its_static_workers(group: tuple[tuple, dict]) -> None:
    (_mode, _discovery, router_discovery, _auto), rbg = group
    components = _by_component(rbg)
    workers = {components[c]["name"] for c in ("prefill", "decode", "server") if c in components}
    expected = set() if router_discovery else workers
    assert set(components["router"].get("dependencies") or []) == expected


@pytest.mark.parametrize("change", ["scale-up-by-3", "one-pod-pending", "scale-down"])
def test_a_scaling_role_never_freezes_another(group: tuple[tuple, dict], change: str) -> None:
    """A role scaled up whose new pods are not Ready yet (or stay Pending for lack of a GPU), or one being
    scaled down, leaves every other role reconcilable on every pass."""
    (_mode, discovery, _router, _auto), rbg = group
    for name in _scaling_roles(rbg, discovery):
        scaled = copy.deepcopy(rbg)
        role = next(r for r in scaled["spec"]["roles"] if r["name"] == name)
        before = replicas(role)
        role["replicas"] = {"scale-up-by-3": before + 3, "one-pod-pending": before, "scale-down": 0}[change]
        ready = {name: {"scale-up-by-3": before, "one-pod-pending": before - 1, "scale-down": before}[change]}
        assert reconciled_roles(scaled, ready) == [n for level in dependency_levels(scaled) for n in level]


def test_the_model_catches_the_old_graph(render_chart) -> None:
    """The graph this chart rendered before (encoders after the prefill, the router after every role):
    an encoder scale-up froze the router, and a prefill restart froze encoder scaling."""
    rbg = next(o for o in render_chart() if o["kind"] == "RoleBasedGroup")
    roles = {r["name"]: r for r in rbg["spec"]["roles"]}
    roles["vlm-encoder"]["dependencies"] = ["vlm-prefill"]
    roles["sglang-router"]["dependencies"] = ["vlm-encoder", "vlm-prefill", "vlm-decode"]
    roles["vlm-encoder"]["replicas"] = 4
    assert "sglang-router" not in reconciled_roles(rbg, {"vlm-encoder": 2})
    assert "vlm-encoder" not in reconciled_roles(rbg, {"vlm-prefill": 0})


def test_gang_scheduled_rdma_example_can_start(render_chart) -> None:
    objects = render_chart(values_files=[EXAMPLES_DIR / "qwen2.5-vl-72b-epd-rdma.yaml"])
    rbg = next(o for o in objects if o["kind"] == "RoleBasedGroup")
    assert rbg["metadata"]["annotations"]["rbg.workloads.x-k8s.io/group-gang-scheduling"] == "true"
    assert gang_can_start(rbg)
    for role in rbg["spec"]["roles"]:
        assert role["standalonePattern"]["template"]["spec"]["schedulerName"] == "scheduler-plugins-scheduler"
    # What it rendered before: the router waiting for prefill and decode, which never get scheduled.
    next(r for r in rbg["spec"]["roles"] if r["name"] == "sglang-router")["dependencies"] = ["vlm-prefill"]
    assert not gang_can_start(rbg)


def test_replicas_are_never_omitted(group: tuple[tuple, dict]) -> None:
    """A missing count is defaulted to 1 before RBG's webhook compares it with the scaling adapter's."""
    _, rbg = group
    assert all("replicas" in role for role in rbg["spec"]["roles"])
