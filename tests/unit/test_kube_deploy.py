"""The cluster target (sglang_epd.deploy.kube) against recorded kubectl/helm outputs: no cluster, no network.

The recorded documents under data/kube/ are hand-written from the RBG v1alpha2 CRD and controller facts,
except the unreachable-cluster `kubectl version` output, which is what kubectl 1.32 prints.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sglang_epd.deploy.kube import (
    GROUP_LABEL,
    ROLE_LABEL,
    KubeDeployment,
    KubeDeploymentError,
    KubePod,
    KubeTarget,
    cluster_skip_reason,
    diagnostic_commands,
    helm_install_args,
    namespace_name,
    parse_group_status,
    progress_line,
    ready_pods,
    roles_not_rolled_out,
)

DATA = Path(__file__).parent / "data" / "kube"
NS = "sglang-epd-a1b2c3"


def recorded(name: str) -> str:
    return (DATA / name).read_text()


def rbg_doc(name: str) -> dict:
    return json.loads(recorded(f"rbg-{name}.json"))


def rbg_list(name: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [rbg_doc(name)]})


# Replaying runner -------------------------------------------------------------------------------------------


@dataclass
class FakeProcess:
    argv: list[str]
    returncode: int | None = None
    terminated: bool = False

    def poll(self) -> int | None:
        return self.returncode

    def terminate(self) -> None:
        self.terminated = True
        self.returncode = -15

    def kill(self) -> None:
        self.returncode = -9

    def wait(self, timeout: float | None = None) -> int:
        return self.returncode or 0


@dataclass
class ReplayRunner:
    """Answers each command with the next recorded result, asserting the argv is the expected one."""

    steps: list[tuple[list[str], int, str, str]] = field(default_factory=list)
    started: list[FakeProcess] = field(default_factory=list)
    raise_on: str | None = None  # argv[1] that raises KeyboardInterrupt instead of answering

    def expect(self, argv: list[str], stdout: str = "", rc: int = 0, stderr: str = "") -> ReplayRunner:
        self.steps.append((argv, rc, stdout, stderr))
        return self

    def run(self, argv: Sequence[str], timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        assert self.steps, f"unexpected command {list(argv)}"
        want, rc, stdout, stderr = self.steps.pop(0)
        assert list(argv) == want
        if self.raise_on and argv[1] == self.raise_on:
            raise KeyboardInterrupt
        return subprocess.CompletedProcess(list(argv), rc, stdout, stderr)

    def start(self, argv: Sequence[str], log: Path | None) -> FakeProcess:
        process = FakeProcess(list(argv))
        self.started.append(process)
        return process

    def assert_done(self) -> None:
        assert not self.steps, f"commands never run: {[s[0] for s in self.steps]}"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def target(tmp_path: Path) -> KubeTarget:
    return KubeTarget(
        kubeconfig="/kc",
        context="kind-rbg",
        helm="helm",
        values_files=("values-examples/epd.yaml",),
        set_json={"vlmEncoder.replicas": 2},
        image_repository="registry.local/sglang",
        image_tag="v0.5.2",
        ready_timeout=30,
        results_dir=tmp_path / "results",
        chart=Path("/chart"),
    )


def kubectl(*args: str) -> list[str]:
    return ["kubectl", "--kubeconfig", "/kc", "--context", "kind-rbg", *args]


def helm(*args: str) -> list[str]:
    return ["helm", *args, "--kubeconfig", "/kc", "--kube-context", "kind-rbg"]


INSTALL = helm(
    "install",
    "sglang-epd",
    "/chart",
    "--namespace",
    NS,
    "--wait=false",
    "-f",
    "values-examples/epd.yaml",
    "--set-json",
    "vlmEncoder.replicas=2",
    "--set-json",
    'image.repository="registry.local/sglang"',
    "--set-json",
    'image.tag="v0.5.2"',
)
GET_GROUP = kubectl("get", "rbg", "sglang-epd", "-n", NS, "-o", "json")
GET_GROUP_PODS = kubectl("get", "pods", "-n", NS, "-l", f"{GROUP_LABEL}=sglang-epd", "-o", "json")
TEARDOWN = [helm("uninstall", "sglang-epd", "-n", NS), kubectl("delete", "namespace", NS, "--wait=false")]


def group_pods(rbg: dict, image: str | None = None, ready: bool = True) -> str:
    """`kubectl get pods` of a group: every role's pods, Ready or not, running `image` (default: the
    image in the role's template)."""
    items = []
    for role in rbg["spec"]["roles"]:
        containers = role["standalonePattern"]["template"].get("spec", {}).get("containers", [])
        for i in range(role.get("replicas", 1)):
            items.append(
                {
                    "metadata": {
                        "name": f"sglang-epd-{role['name']}-{i}",
                        "labels": {GROUP_LABEL: "sglang-epd", ROLE_LABEL: role["name"]},
                    },
                    "spec": {"containers": [{**c, "image": image or c.get("image")} for c in containers]},
                    "status": {
                        "podIP": f"10.244.0.{len(items) + 10}",
                        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                    },
                }
            )
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def expect_group(runner: ReplayRunner, status: str) -> None:
    """One poll of the group; a Ready one is followed by the look at its pods."""
    doc = rbg_doc(status)
    runner.expect(GET_GROUP, json.dumps(doc))
    if parse_group_status(doc).ready:
        runner.expect(GET_GROUP_PODS, group_pods(doc))


def install_steps(runner: ReplayRunner, *statuses: str) -> ReplayRunner:
    runner.expect(kubectl("create", "namespace", NS), f"namespace/{NS} created\n")
    runner.expect(INSTALL, "NAME: sglang-epd\nSTATUS: deployed\n")
    runner.expect(kubectl("get", "rbg", "-n", NS, "-o", "json"), rbg_list("no-status"))
    for status in statuses:
        expect_group(runner, status)
    return runner


def deployment(
    target: KubeTarget, runner: ReplayRunner, lines: list[str], **kwargs: object
) -> KubeDeployment:
    clock = FakeClock()
    options: dict = {
        "namespace": NS,
        "clock": clock,
        "sleep": clock.sleep,
        "http_get": lambda url: 200,
        "local_port": lambda: 45678,
        "out": lines.append,
        **kwargs,
    }
    return KubeDeployment(target, runner, **options)


# Pure helpers -----------------------------------------------------------------------------------------------


def test_status_not_ready_lists_roles_with_ready_counts() -> None:
    status = parse_group_status(rbg_doc("not-ready"))
    assert not status.ready
    assert [(r.name, r.ready, r.replicas) for r in status.roles] == [
        ("vlm-encoder", 0, 2),
        ("vlm-prefill", 0, 1),
        ("vlm-decode", 0, 1),
        ("sglang-router", 0, 1),
    ]
    assert "RoleNotReady" in status.detail


def test_status_ready() -> None:
    status = parse_group_status(rbg_doc("ready"))
    assert status.ready and status.detail == "" and status.not_ready_roles() == []


def test_status_with_stale_generation_is_not_ready() -> None:
    status = parse_group_status(rbg_doc("stale-generation"))
    assert not status.ready
    assert "observedGeneration 1 != generation 2" in status.detail
    assert [r.name for r in status.not_ready_roles()] == ["vlm-prefill"]  # 1 of the 2 now wanted


def test_status_without_status_block() -> None:
    status = parse_group_status(rbg_doc("no-status"))
    assert not status.ready and status.detail == "no Ready condition yet"


def test_progress_line() -> None:
    assert progress_line(parse_group_status(rbg_doc("partly-ready"))) == (
        "rbg sglang-epd: vlm-encoder 1/2, vlm-prefill 1/1, vlm-decode 1/1, sglang-router 0/1 "
        "[waiting: Ready=False (RoleNotReady: role vlm-prefill is not ready)]"
    )
    assert progress_line(parse_group_status(rbg_doc("ready"))).endswith("sglang-router 1/1 [Ready]")


def test_namespace_name() -> None:
    assert namespace_name("sglang-epd", "a1b2c3") == NS
    first, second = namespace_name("e2e"), namespace_name("e2e")
    assert first != second and first.startswith("e2e-") and len(first) == len("e2e-") + 6
    with pytest.raises(ValueError, match="DNS-1123"):
        namespace_name("Bad_Prefix")
    with pytest.raises(ValueError):
        namespace_name("x" * 60)


def test_helm_install_args(target: KubeTarget) -> None:
    args = helm_install_args(target, NS)
    assert args == INSTALL[1:-4]
    assert "--create-namespace" not in args


def test_helm_install_args_without_overrides() -> None:
    args = helm_install_args(KubeTarget(chart=Path("/chart")), NS)
    assert args == ["install", "sglang-epd", "/chart", "--namespace", NS, "--wait=false"]


def test_diagnostic_commands_layout() -> None:
    pods = json.loads(recorded("pods.json"))["items"]
    commands = diagnostic_commands(NS, "sglang-epd", pods)
    logs = ["-n", NS, "--tail=200"]
    assert commands == {
        "events.yaml": ["get", "events", "-n", NS, "-o", "yaml"],
        "rbg.yaml": ["get", "rbg", "sglang-epd", "-n", NS, "-o", "yaml"],
        "pods-describe.txt": ["describe", "pods", "-n", NS, "-l", f"{GROUP_LABEL}=sglang-epd"],
        "logs/sglang-epd-vlm-prefill-0/wait-model.log": [
            "logs",
            "sglang-epd-vlm-prefill-0",
            "-c",
            "wait-model",
            *logs,
        ],
        "logs/sglang-epd-vlm-prefill-0/sglang.log": [
            "logs",
            "sglang-epd-vlm-prefill-0",
            "-c",
            "sglang",
            *logs,
        ],
        "logs/sglang-epd-vlm-prefill-0/sglang.previous.log": [
            "logs",
            "sglang-epd-vlm-prefill-0",
            "-c",
            "sglang",
            *logs,
            "--previous",
        ],
        "logs/sglang-epd-sglang-router-0/router.log": [
            "logs",
            "sglang-epd-sglang-router-0",
            "-c",
            "router",
            *logs,
        ],
    }


# Cluster detection ------------------------------------------------------------------------------------------

VERSION = kubectl("version", "-o", "json", "--request-timeout=10s")
API_RESOURCES = kubectl("api-resources", "--api-group=workloads.x-k8s.io", "--request-timeout=10s")


def skip_reason(runner: ReplayRunner, tmp_path: Path) -> str | None:
    config = tmp_path / "kc"
    config.write_text("apiVersion: v1\nkind: Config\n")
    runner.steps = [([a if a != "/kc" else str(config) for a in argv], *rest) for argv, *rest in runner.steps]
    reason = cluster_skip_reason(runner, KubeTarget(kubeconfig=config, context="kind-rbg"))
    runner.assert_done()
    return reason


def test_cluster_with_rbg(tmp_path: Path) -> None:
    runner = ReplayRunner()
    runner.expect(VERSION, recorded("kubectl-version-reachable.json"))
    runner.expect(API_RESOURCES, recorded("api-resources-rbg.txt"))
    assert skip_reason(runner, tmp_path) is None


@pytest.mark.parametrize("resources", ["api-resources-none.txt", "api-resources-rbg-v1alpha1.txt"])
def test_cluster_without_rbg_v1alpha2(tmp_path: Path, resources: str) -> None:
    runner = ReplayRunner()
    runner.expect(VERSION, recorded("kubectl-version-reachable.json"))
    runner.expect(API_RESOURCES, recorded(resources))
    reason = skip_reason(runner, tmp_path)
    assert reason is not None
    assert reason.startswith("RBG v1alpha2 not served")
    assert "helm install rbgs" in reason and "-n rbgs-system" in reason


def test_unreachable_cluster(tmp_path: Path) -> None:
    runner = ReplayRunner()
    runner.expect(
        VERSION,
        recorded("kubectl-version-unreachable.stdout"),
        rc=1,
        stderr=recorded("kubectl-version-unreachable.stderr"),
    )
    reason = skip_reason(runner, tmp_path)
    assert reason is not None
    assert reason.startswith("no cluster: the API server is unreachable")
    assert "127.0.0.1:1 was refused" in reason


def test_no_kubeconfig(tmp_path: Path) -> None:
    runner = ReplayRunner()
    runner.expect(
        ["kubectl", "version", "-o", "json", "--request-timeout=10s"],
        recorded("kubectl-version-unreachable.stdout"),
        rc=1,
        stderr=recorded("kubectl-version-no-kubeconfig.stderr"),
    )
    reason = cluster_skip_reason(runner, KubeTarget())
    assert reason is not None and "no kubeconfig" in reason
    assert cluster_skip_reason(ReplayRunner(), KubeTarget(kubeconfig=tmp_path / "missing")) == (
        f"no cluster: kubeconfig {tmp_path / 'missing'} does not exist"
    )


def test_kubectl_missing() -> None:
    class Missing(ReplayRunner):
        def run(self, argv: Sequence[str], timeout: float | None = None) -> subprocess.CompletedProcess[str]:
            raise FileNotFoundError(2, "No such file or directory", argv[0])

    reason = cluster_skip_reason(Missing(), KubeTarget())
    assert reason is not None and reason.startswith("no cluster: kubectl failed to run")


# Deployment life cycle --------------------------------------------------------------------------------------


def test_install_wait_forward_and_teardown(target: KubeTarget) -> None:
    runner = install_steps(ReplayRunner(), "not-ready", "not-ready", "partly-ready", "ready")
    runner.expect(
        kubectl("get", "service", "sglang-epd-router", "-n", NS, "-o", "json"),
        recorded("service-router.json"),
    )
    lines: list[str] = []
    with deployment(target, runner, lines) as dep:
        assert dep.router_url == "http://127.0.0.1:45678"
        (forward,) = runner.started
        assert forward.argv == kubectl("port-forward", "svc/sglang-epd-router", "45678:8000", "-n", NS)
        runner.steps.extend((argv, 0, "", "") for argv in TEARDOWN)
    runner.assert_done()
    assert forward.terminated
    progress = [line for line in lines if line.startswith("rbg ")]
    assert len(progress) == 3  # the repeated not-ready status is printed once
    assert progress[-1].endswith("[Ready]")
    assert not (target.results_dir / NS / "events.yaml").exists()  # no diagnostics without an error


def test_router_url_override_skips_port_forward(target: KubeTarget) -> None:
    target = KubeTarget(**{**target.__dict__, "router_url": "http://router.example:8000"})
    runner = install_steps(ReplayRunner(), "ready")
    runner.steps.extend((argv, 0, "", "") for argv in TEARDOWN)
    with deployment(target, runner, []) as dep:
        assert dep.router_url == "http://router.example:8000"
    runner.assert_done()
    assert runner.started == []


def expect_diagnostics(runner: ReplayRunner) -> None:
    pods = json.loads(recorded("pods.json"))
    runner.expect(
        kubectl("get", "pods", "-n", NS, "-l", f"{GROUP_LABEL}=sglang-epd", "-o", "json"), json.dumps(pods)
    )
    for relative, args in diagnostic_commands(NS, "sglang-epd", pods["items"]).items():
        failing = relative.endswith("previous.log")
        runner.expect(kubectl(*args), f"output of {relative}\n", rc=1 if failing else 0, stderr="no previous")


def test_timeout_lists_not_ready_roles_and_tears_down(target: KubeTarget) -> None:
    runner = install_steps(ReplayRunner(), *["partly-ready"] * 17)  # 30 s timeout, 2 s polls
    expect_diagnostics(runner)
    runner.steps.extend((argv, 0, "", "") for argv in TEARDOWN)
    with pytest.raises(KubeDeploymentError) as error, deployment(target, runner, []):
        pytest.fail("the body must not run")
    runner.assert_done()
    assert "not Ready after 30 s" in str(error.value)
    assert "sglang-router (0/1 ready)" in str(error.value)
    assert "vlm-encoder (1/2 ready)" in str(error.value)
    results = target.results_dir / NS
    assert (results / "events.yaml").read_text() == "output of events.yaml\n"
    assert (results / "logs/sglang-epd-vlm-prefill-0/sglang.log").exists()
    assert (results / "logs/sglang-epd-vlm-prefill-0/sglang.previous.log").read_text().startswith("# exit 1")


def test_body_exception_collects_diagnostics_then_tears_down(target: KubeTarget) -> None:
    runner = install_steps(ReplayRunner(), "ready")
    runner.expect(
        kubectl("get", "service", "sglang-epd-router", "-n", NS, "-o", "json"),
        recorded("service-router.json"),
    )
    with pytest.raises(RuntimeError, match="test failed"), deployment(target, runner, []):
        expect_diagnostics(runner)
        runner.steps.extend((argv, 0, "", "") for argv in TEARDOWN)
        raise RuntimeError("test failed")
    runner.assert_done()
    assert runner.started[0].terminated
    assert (target.results_dir / NS / "pods-describe.txt").exists()


def test_keyboard_interrupt_during_install_still_tears_down(target: KubeTarget) -> None:
    runner = ReplayRunner(raise_on="install")
    runner.expect(kubectl("create", "namespace", NS))
    runner.expect(INSTALL)
    expect_diagnostics(runner)
    runner.steps.extend((argv, 0, "", "") for argv in TEARDOWN)  # the release may exist: uninstall too
    with pytest.raises(KeyboardInterrupt), deployment(target, runner, []):
        pytest.fail("the body must not run")
    runner.assert_done()


def test_keep_leaves_the_namespace(target: KubeTarget) -> None:
    target = KubeTarget(**{**target.__dict__, "keep": True, "router_url": "http://r:1"})
    runner = install_steps(ReplayRunner(), "ready")
    lines: list[str] = []
    with deployment(target, runner, lines):
        pass
    runner.assert_done()
    assert f"keeping namespace {NS} (keep=True)" in lines


def test_failed_teardown_step_does_not_stop_the_next(target: KubeTarget) -> None:
    target = KubeTarget(**{**target.__dict__, "router_url": "http://r:1"})
    runner = install_steps(ReplayRunner(), "ready")
    runner.expect(TEARDOWN[0], rc=1, stderr="Error: uninstall: release not found")
    runner.expect(TEARDOWN[1])
    lines: list[str] = []
    with deployment(target, runner, lines):
        pass
    runner.assert_done()
    assert any("helm uninstall failed" in line and "release not found" in line for line in lines)


# Scaling ----------------------------------------------------------------------------------------------------


def started(target: KubeTarget, lines: list[str] | None = None) -> tuple[KubeDeployment, ReplayRunner]:
    target = KubeTarget(**{**target.__dict__, "router_url": "http://r:1"})
    runner = install_steps(ReplayRunner(), "ready")
    dep = deployment(target, runner, [] if lines is None else lines).start()
    runner.assert_done()
    return dep, runner


def test_scale_through_the_scaling_adapter(target: KubeTarget) -> None:
    dep, runner = started(target)
    runner.expect(
        kubectl("scale", "rolebasedgroupscalingadapter/sglang-epd-vlm-decode", "--replicas=3", "-n", NS)
    )
    expect_group(runner, "ready")
    assert dep.scale("vlm-decode", 3).ready
    runner.assert_done()


def test_scale_by_patching_the_role(target: KubeTarget) -> None:
    dep, runner = started(target)
    patch = '[{"op": "replace", "path": "/spec/roles/1/replicas", "value": 2}]'
    runner.expect(kubectl("patch", "rbg", "sglang-epd", "-n", NS, "--type=json", "-p", patch))
    expect_group(runner, "stale-generation")
    expect_group(runner, "ready")
    assert dep.scale("vlm-prefill", 2).ready
    runner.assert_done()
    with pytest.raises(KubeDeploymentError, match="no role 'nope'"):
        dep.scale("nope", 1)


# Pods: what the system tests read and kill --------------------------------------------------------------

ENCODER_PODS = kubectl(
    "get", "pods", "-n", NS, "-l", f"{GROUP_LABEL}=sglang-epd,{ROLE_LABEL}=vlm-encoder", "-o", "json"
)


def test_ready_pods_skip_terminating_unready_and_unscheduled_pods_in_index_order() -> None:
    pods = json.loads(recorded("pods-encoders.json"))["items"]
    assert ready_pods(pods) == [
        KubePod("sglang-epd-vlm-encoder-0", "10.244.1.10"),
        KubePod("sglang-epd-vlm-encoder-1", "10.244.2.11", restarts=2),  # summed over its containers
        KubePod("sglang-epd-vlm-encoder-10", "10.244.1.30"),
    ]


def test_running_pods_and_pod_get_through_the_api_server_proxy(target: KubeTarget) -> None:
    dep, runner = started(target)
    runner.expect(ENCODER_PODS, recorded("pods-encoders.json"))
    assert [p.ip for p in dep.running_pods("vlm-encoder")] == ["10.244.1.10", "10.244.2.11", "10.244.1.30"]
    proxy = f"/api/v1/namespaces/{NS}/pods/sglang-epd-vlm-prefill-0:8997/proxy/list_encoder_urls"
    runner.expect(kubectl("get", "--raw", proxy), '{"encoder_urls": ["http://10.244.1.10:30002"]}')
    assert json.loads(dep.pod_http_get("sglang-epd-vlm-prefill-0", 8997, "/list_encoder_urls")) == {
        "encoder_urls": ["http://10.244.1.10:30002"]
    }
    runner.assert_done()


def test_kill_force_deletes_the_ready_pod_with_that_index(target: KubeTarget) -> None:
    dep, runner = started(target)
    runner.expect(ENCODER_PODS, recorded("pods-encoders.json"))
    force = ["--grace-period=0", "--force", "--wait=false"]
    runner.expect(kubectl("delete", "pod", "sglang-epd-vlm-encoder-1", "-n", NS, *force))
    assert dep.kill("vlm-encoder", 1) == KubePod("sglang-epd-vlm-encoder-1", "10.244.2.11", restarts=2)
    runner.expect(ENCODER_PODS, recorded("pods-encoders.json"))
    with pytest.raises(KubeDeploymentError, match="no Ready pod with index 3"):
        dep.kill("vlm-encoder", 3)  # not Ready: killing it proves nothing about failover
    runner.assert_done()


def test_helm_test_runs_the_hook_with_logs(target: KubeTarget) -> None:
    dep, runner = started(target)
    test = helm("test", "sglang-epd", "-n", NS, "--logs", "--timeout=15m")
    runner.expect(
        test, "Phase: Failed\nFAIL: TTFT 31000 ms is over the bound\n", rc=1, stderr="Error: pod failed"
    )
    result = dep.helm_test()
    assert result.returncode == 1 and "over the bound" in result.stdout
    runner.assert_done()


# Rollout: Ready is not enough after a template-only upgrade ------------------------------------------------


def upgraded_group(image: str = "lmsysorg/sglang:v0.5.24") -> dict:
    """The Ready group right after a `helm upgrade` that changed only the prefill's image: RBG keeps Ready
    True and observedGeneration current (it writes them before reconciling the roles)."""
    doc = rbg_doc("ready")
    prefill = next(r for r in doc["spec"]["roles"] if r["name"] == "vlm-prefill")
    prefill["standalonePattern"]["template"] = {"spec": {"containers": [{"name": "sglang", "image": image}]}}
    return doc


def test_old_pods_keep_a_ready_group_rolling_out() -> None:
    doc = upgraded_group()
    assert parse_group_status(doc).ready
    old = json.loads(group_pods(doc, image="lmsysorg/sglang:v0.5.23"))["items"]
    assert roles_not_rolled_out(doc, old) == ["vlm-prefill 0/1 updated, 1 old"]
    assert roles_not_rolled_out(doc, json.loads(group_pods(doc))["items"]) == []


def test_a_terminating_or_unready_pod_is_not_rolled_out() -> None:
    doc = upgraded_group()
    pods = json.loads(group_pods(doc))["items"]
    pods.append({**pods[0], "metadata": {**pods[0]["metadata"], "name": "sglang-epd-vlm-encoder-2"}})
    pods[-1]["metadata"]["deletionTimestamp"] = "2026-08-20T10:05:00Z"
    assert roles_not_rolled_out(doc, pods) == ["vlm-encoder 2/2 updated, 1 old"]
    unready = json.loads(group_pods(doc, ready=False))["items"]
    assert "vlm-decode 0/1 updated, 1 old" in roles_not_rolled_out(doc, unready)


def test_wait_after_a_template_only_upgrade_waits_for_the_new_pods(target: KubeTarget) -> None:
    lines: list[str] = []
    dep, runner = started(target, lines)
    del lines[:]  # the install's own progress lines
    doc = upgraded_group()
    runner.expect(GET_GROUP, json.dumps(doc))
    runner.expect(GET_GROUP_PODS, group_pods(doc, image="lmsysorg/sglang:v0.5.23"))
    runner.expect(GET_GROUP, json.dumps(doc))
    runner.expect(GET_GROUP_PODS, group_pods(doc))
    assert dep.wait_ready().ready
    runner.assert_done()
    assert lines[0].endswith("[waiting: rolling out: vlm-prefill 0/1 updated, 1 old]")
    assert lines[1].endswith("[Ready]")
