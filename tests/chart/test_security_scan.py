"""checkov on what the cluster will run: every values example and the mode/option matrix, rendered and with
each RoleBasedGroup replaced by the pods RBG makes of it. No check may fail; every skip the chart writes
has a scope and a reason, is listed in the chart README, and hides nothing about the containers it does
not name."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import pytest

from sglang_epd.render import CHART_DIR, EXAMPLES_DIR
from sglang_epd.security.checkov_scan import (
    ScanReport,
    find_checkov,
    residual_pods,
    scan,
    skips_of,
)
from sglang_epd.security.rbg_pods import as_cluster_objects

from .matrix import MODES, OPTIONS

NAMESPACE = "vlm"
DIGEST = "sha256:" + "a" * 64
# Options that change what the scanners see, beside the wiring matrix.
SECURITY_OPTIONS: dict[str, dict[str, object]] = {
    "network-policy": {
        "networkPolicy.enabled": True,
        "networkPolicy.routerClientNamespaces": [{"kubernetes.io/metadata.name": "gateway"}],
        "networkPolicy.metricsNamespaces": [{"kubernetes.io/metadata.name": "monitoring"}],
    },
    "network-policy-discovery": {
        "networkPolicy.enabled": True,
        "router.discovery.enabled": True,
        "decode.port": 30000,
    },
    "digest": {"image.digest": DIGEST},
    "cpu-limits": {f"{role}.resources.limits.cpu": "8" for role in ("encoder", "prefill", "decode", "server")}
    | {"router.resources.limits.cpu": "4"},
    "hf-token": {"model.huggingface.tokenSecret.name": "hf"},
    "ingress-pdb": {
        "router.ingress.enabled": True,
        "router.ingress.hosts": [{"host": "vlm.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}],
        "podDisruptionBudget.enabled": True,
    },
}
EXAMPLES = sorted(path.name for path in EXAMPLES_DIR.glob("*.yaml"))
KEP_EXAMPLE = "qwen2.5-vl-7b-epd.yaml"


def _cases() -> Iterator[tuple[str, dict]]:
    for example in EXAMPLES:
        yield example, {"values_files": [EXAMPLES_DIR / example]}
        yield (
            f"{example}+network-policy",
            {
                "values_files": [EXAMPLES_DIR / example],
                "set_values": SECURITY_OPTIONS["network-policy"],
            },
        )
    options = {**OPTIONS, **SECURITY_OPTIONS}
    for mode, discovery, option in itertools.product(MODES, ["dynamic", "static"], options):
        values = {"mode": mode, "encoderDiscovery.mode": discovery, **options[option]}
        yield f"{mode}-{discovery}-{option}", {"set_values": values}


CASES = dict(_cases())


@pytest.fixture(scope="session")
def checkov_path():
    path = find_checkov()
    if path is None:
        pytest.skip(
            "checkov is not installed: `make scanners` puts checkov 3.3.30 into .venv-checkov "
            "(or set SGLANG_EPD_CHECKOV to a checkov executable)"
        )
    return path


@pytest.fixture(scope="session")
def rendered(render_chart) -> dict[str, list[dict]]:
    return {case: render_chart(namespace=NAMESPACE, **kwargs) for case, kwargs in CASES.items()}


@pytest.fixture(scope="session")
def report(rendered, checkov_path) -> ScanReport:
    """One checkov run over every case (~20 s for 142 renders)."""
    return scan(rendered, NAMESPACE, checkov_path)


def _pods(objects: list[dict]) -> list[dict]:
    return [obj for obj in as_cluster_objects(objects, NAMESPACE) if obj["kind"] == "Pod"]


@pytest.mark.parametrize("case", CASES)
def test_no_check_fails(case: str, report: ScanReport) -> None:
    results = report.for_case(case)
    assert results.counts()["passed"] > 0, f"checkov scanned nothing for {case}"
    failed = "\n".join(f"  {finding}" for finding in results.of("failed"))
    assert not failed, (
        f"checkov finds these in {case} (fix the chart, or skip on the object with "
        f"sglang-epd.checkovSkips and a reason, listed in the chart README):\n{failed}"
    )


def test_skips_are_the_charts_own_and_reasoned(report: ScanReport, rendered) -> None:
    """Every skip checkov applied is one the chart wrote, with its reason."""
    written = {
        (skip.check_id, f"{'/'.join(skip.scope)}: {skip.reason}")
        for objects in rendered.values()
        for pod in _pods(objects)
        for skip in skips_of(pod)
    }
    applied = {(f.check_id, f.reason) for f in report.of("skipped")}
    assert applied <= written, f"skips checkov applied that the chart did not write: {applied - written}"
    assert all(reason for _id, reason in applied)


def test_skips_hide_nothing_about_other_containers(rendered, checkov_path) -> None:
    """A skip sits on the pod, so checkov would not see the same finding on another container: scan each
    pod again without its skips and without the containers they name; the skipped checks must pass."""
    residuals: dict[str, list[dict]] = {}
    covered: dict[str, str] = {}
    for case, objects in rendered.items():
        for pod in _pods(objects):
            for residual, check_id in residual_pods(pod):
                name = f"{case}/{residual['metadata']['name']}"
                residuals[name] = [residual]
                covered[name] = check_id
    assert residuals, "no pod has a container-scoped skip: the test proves nothing"
    # The residual pods are plain Pods already; as_cluster_objects leaves them as they are.
    report = scan(residuals, NAMESPACE, checkov_path)
    hidden = [f"  {finding}" for finding in report.of("failed") if finding.check_id == covered[finding.case]]
    evaluated = {f.case for f in report.findings if f.check_id == covered[f.case] and f.outcome == "passed"}
    assert evaluated == set(residuals), f"checkov did not evaluate: {sorted(set(residuals) - evaluated)[:5]}"
    assert not hidden, "findings a pod-level skip hid on containers its reason does not name:\n" + "\n".join(
        hidden
    )


def _readme_skips() -> set[tuple[str, str]]:
    """(check id, reason) rows of the chart README's table of checkov skips."""
    text = (CHART_DIR / "README.md").read_text()
    section = text.split("### checkov skips", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(CKV2?_K8S_\d+)` \| (.+?) \|", section, re.MULTILINE))


def test_readme_lists_every_skip(rendered) -> None:
    documented = _readme_skips()
    written = {
        (
            skip.check_id,
            re.sub(
                r"\b(encoder|prefill|decode|server|router)\.resources",
                "<role>.resources",
                f"{'/'.join(skip.scope)}: {skip.reason}",
            ),
        )
        for objects in rendered.values()
        for pod in _pods(objects)
        for skip in skips_of(pod)
    }
    missing = sorted(written - documented)
    assert not missing, "skips missing from the chart README, section 'checkov skips':\n" + "\n".join(
        f"| `{check}` | {reason} |" for check, reason in missing
    )
    stale = sorted(documented - written)
    assert not stale, f"the README lists skips the chart never writes: {stale}"


def test_digest_pins_every_image_and_clears_its_skips(rendered, report: ScanReport) -> None:
    for case in (c for c in CASES if c.endswith("-digest")):
        for pod in _pods(rendered[case]):
            spec = pod["spec"]
            for container in spec["containers"] + spec.get("initContainers", []):
                assert container["image"].endswith(f"@{DIGEST}"), (case, container["name"])
            assert not {"CKV_K8S_43", "CKV_K8S_15"} & {skip.check_id for skip in skips_of(pod)}
        passed = {f.check_id for f in report.for_case(case).of("passed")}
        assert {"CKV_K8S_43", "CKV_K8S_15"} <= passed


def test_cpu_limits_opt_in_clears_the_cpu_skip(rendered) -> None:
    for case in (c for c in CASES if c.endswith("-cpu-limits")):
        for pod in _pods(rendered[case]):
            assert "CKV_K8S_11" not in {skip.check_id for skip in skips_of(pod)}, (
                case,
                pod["metadata"]["name"],
            )


def test_kep_example_counts(report: ScanReport, capsys: pytest.CaptureFixture[str]) -> None:
    """Prints checkov's counts for the KEP example, with and without network policies."""
    with capsys.disabled():
        for case in (KEP_EXAMPLE, f"{KEP_EXAMPLE}+network-policy"):
            print(f"\ncheckov 3.3.30 on {case}: {report.for_case(case).counts()}")
    assert report.for_case(KEP_EXAMPLE).counts()["failed"] == 0
