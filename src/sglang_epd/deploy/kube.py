"""Run the chart on a real Kubernetes cluster with the RBG controller: the cluster target of the system tests.

Everything goes through the `kubectl` and `helm` CLIs, called by an injectable command runner (`run(argv)`
for commands, `start(argv, log)` for the port-forward), so the unit tests replay recorded outputs.
A `KubeDeployment` owns a fresh namespace: it installs the release there, waits for the RoleBasedGroup's
Ready condition and for every role's pods to run the current spec, port-forwards the router Service, and
on exit uninstalls and deletes the namespace (after writing diagnostics when an exception,
KeyboardInterrupt included, is propagating).
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Protocol

from ..render import CHART_DIR, REPO_ROOT, find_helm
from ..topology import GROUP_LABEL, ROLE_LABEL
from ..waiting import http_status

RBG_GROUP = "workloads.x-k8s.io"
RBG_VERSION = "v1alpha2"
LOG_TAIL_LINES = 200
INSTALL_RBG_HINT = (
    "install it with `helm install rbgs <rbgs-<version>.tgz from the sgl-project/rbg release> "
    "-n rbgs-system --create-namespace` (chart deploy/helm/rbgs of github.com/sgl-project/rbg, "
    "Kubernetes >= 1.28)"
)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class KubeDeploymentError(RuntimeError):
    pass


# Command runners --------------------------------------------------------------------------------------------


class Process(Protocol):
    """What the deployment needs of a long-running child (subprocess.Popen satisfies it)."""

    def poll(self) -> int | None: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...
    def wait(self, timeout: float | None = None) -> int: ...


class CommandRunner(Protocol):
    def run(self, argv: Sequence[str], timeout: float | None = None) -> subprocess.CompletedProcess[str]: ...
    def start(self, argv: Sequence[str], log: Path | None) -> Process: ...


class SubprocessRunner:
    """Runs commands for real. stdin is closed so that kubectl never prompts for credentials."""

    def __init__(self, timeout: float = 120.0) -> None:
        self.timeout = timeout

    def run(self, argv: Sequence[str], timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout or self.timeout,
            check=False,
        )

    def start(self, argv: Sequence[str], log: Path | None) -> Process:
        out: IO[bytes] | int = subprocess.DEVNULL
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            out = log.open("ab")
        try:
            return subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        finally:
            if not isinstance(out, int):
                out.close()


# Settings ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KubeTarget:
    """Where and how to install the chart. `set_json` values are JSON-encoded for `--set-json`."""

    kubeconfig: Path | str | None = None
    context: str | None = None
    namespace_prefix: str = "sglang-epd"
    release: str = "sglang-epd"
    values_files: tuple[Path | str, ...] = ()
    set_json: Mapping[str, object] = field(default_factory=dict)
    image_repository: str | None = None
    image_tag: str | None = None
    keep: bool = False
    ready_timeout: float = 900.0
    results_dir: Path = REPO_ROOT / "results" / "kube"
    router_url: str | None = None
    chart: Path = CHART_DIR
    kubectl: str = "kubectl"
    helm: str | None = None  # None: find_helm("3") (Helm 4 reads `--wait=false` differently)

    def kubectl_argv(self, *args: str) -> list[str]:
        argv = [self.kubectl]
        if self.kubeconfig:
            argv += ["--kubeconfig", str(self.kubeconfig)]
        if self.context:
            argv += ["--context", self.context]
        return [*argv, *args]

    def helm_argv(self, *args: str) -> list[str]:
        argv = [self.helm or find_helm("3"), *args]
        if self.kubeconfig:
            argv += ["--kubeconfig", str(self.kubeconfig)]
        if self.context:
            argv += ["--kube-context", self.context]
        return argv


# Pure helpers -----------------------------------------------------------------------------------------------


def namespace_name(prefix: str, suffix: str | None = None) -> str:
    """`<prefix>-<suffix>` (suffix: 6 random hex digits by default), checked to be a DNS-1123 label."""
    name = f"{prefix}-{suffix if suffix is not None else secrets.token_hex(3)}"
    if len(name) > 63 or not _DNS_LABEL.match(name):
        raise ValueError(
            f"namespace {name!r} is not a DNS-1123 label (lowercase alphanumerics and '-', <= 63)"
        )
    return name


def helm_install_args(target: KubeTarget, namespace: str) -> list[str]:
    """Arguments of `helm install` (without the binary and cluster flags). The namespace exists already, so
    no --create-namespace; --wait=false because readiness is the RBG's Ready condition, waited for here."""
    args = ["install", target.release, str(target.chart), "--namespace", namespace, "--wait=false"]
    for path in target.values_files:
        args += ["-f", str(path)]
    overrides: dict[str, object] = dict(target.set_json)
    if target.image_repository:
        overrides["image.repository"] = target.image_repository
    if target.image_tag:
        overrides["image.tag"] = target.image_tag
    for key, value in overrides.items():
        args += ["--set-json", f"{key}={json.dumps(value)}"]
    return args


@dataclass(frozen=True)
class RoleStatus:
    name: str
    replicas: int  # wanted (spec)
    ready: int  # status.roleStatuses[].readyReplicas

    @property
    def is_ready(self) -> bool:
        return self.ready >= self.replicas


@dataclass(frozen=True)
class GroupStatus:
    name: str
    ready: bool
    roles: tuple[RoleStatus, ...]
    detail: str  # why not Ready ("" when Ready)

    def not_ready_roles(self) -> list[RoleStatus]:
        return [r for r in self.roles if not r.is_ready]


def parse_group_status(rbg: Mapping) -> GroupStatus:
    """Readiness of one RoleBasedGroup document (`kubectl get rbg NAME -o json`): the Ready condition is
    True and, where recorded, the status's and the condition's observedGeneration equal
    metadata.generation (otherwise the condition describes an older spec)."""
    meta = rbg.get("metadata", {})
    status = rbg.get("status") or {}
    observed = {s.get("name"): s for s in status.get("roleStatuses") or []}
    roles = tuple(
        RoleStatus(
            name=spec["name"],
            replicas=int(spec.get("replicas", 1)),
            ready=int(observed.get(spec["name"], {}).get("readyReplicas") or 0),
        )
        for spec in rbg.get("spec", {}).get("roles", [])
    )
    generation = meta.get("generation")
    condition = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    detail = ""
    if condition is None:
        detail = "no Ready condition yet"
    elif condition.get("status") != "True":
        detail = (
            f"Ready={condition.get('status')} ({condition.get('reason', '')}: {condition.get('message', '')})"
        )
    else:
        for where, seen in (
            ("status", status.get("observedGeneration")),
            ("Ready condition", condition.get("observedGeneration")),
        ):
            if generation is not None and seen is not None and seen != generation:
                detail = f"{where} observedGeneration {seen} != generation {generation}"
                break
    return GroupStatus(meta.get("name", "?"), not detail, roles, detail)


def progress_line(status: GroupStatus) -> str:
    """`rbg sglang-epd: encoder 1/1, prefill 0/2, router 0/1 [waiting: no Ready condition yet]`."""
    roles = ", ".join(f"{r.name} {r.ready}/{r.replicas}" for r in status.roles) or "no roles"
    state = "Ready" if status.ready else f"waiting: {status.detail}"
    return f"rbg {status.name}: {roles} [{state}]"


@dataclass(frozen=True)
class KubePod:
    name: str
    ip: str
    restarts: int = 0


def _serves(pod: Mapping) -> bool:
    """Ready, with an IP and not being deleted."""
    meta, status = pod.get("metadata", {}), pod.get("status", {})
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    return (
        not meta.get("deletionTimestamp") and conditions.get("Ready") == "True" and bool(status.get("podIP"))
    )


def ready_pods(pods: Sequence[Mapping]) -> list[KubePod]:
    """The pods (items of `kubectl get pods -o json`) that serve, in index order (RBG names pod i
    `<rbg>-<role>-<i>`)."""
    serving = [
        KubePod(
            p["metadata"]["name"],
            p["status"]["podIP"],
            sum(c.get("restartCount", 0) for c in p["status"].get("containerStatuses") or []),
        )
        for p in pods
        if _serves(p)
    ]
    return sorted(serving, key=lambda p: _pod_index(p.name))


def _runs_template(pod: Mapping, template: Mapping) -> bool:
    """The pod runs every container of the role's template as written: same image, command and args
    (RBG adds env, volumes and readiness gates, never changes those)."""
    running = {c.get("name"): c for c in pod.get("spec", {}).get("containers", [])}
    fields = ("image", "command", "args")
    return all(
        c.get("name") in running and all(running[c["name"]].get(f) == c.get(f) for f in fields)
        for c in template.get("spec", {}).get("containers", [])
    )


def roles_not_rolled_out(rbg: Mapping, pods: Sequence[Mapping]) -> list[str]:
    """Roles whose pods do not all serve the group's current spec yet, e.g. `vlm-prefill 0/1 updated, 1
    old`. RBG's Ready condition cannot tell: it is written before the roles are reconciled and compares
    only replicas with ready replicas, so it stays True through a template-only upgrade
    (rbg internal/controller/workloads/rolebasedgroup_controller.go updateRBGStatus). A role is rolled
    out when exactly its `replicas` pods exist, each serving the template's containers."""
    lagging = []
    for role in rbg.get("spec", {}).get("roles", []):
        own = [p for p in pods if p.get("metadata", {}).get("labels", {}).get(ROLE_LABEL) == role["name"]]
        template = role.get("standalonePattern", {}).get("template", {})
        updated = sum(1 for p in own if _serves(p) and _runs_template(p, template))
        wanted = int(role.get("replicas", 1))
        if updated != wanted or len(own) != wanted:
            lagging.append(f"{role['name']} {updated}/{wanted} updated, {len(own) - updated} old")
    return lagging


def _pod_index(name: str) -> int:
    suffix = name.rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else -1


def diagnostic_commands(namespace: str, group: str, pods: Sequence[Mapping]) -> dict[str, list[str]]:
    """File (relative to the diagnostics dir) -> kubectl arguments whose output it holds:
    events.yaml, rbg.yaml, pods-describe.txt, and logs/<pod>/<container>.log (last 200 lines; also
    <container>.previous.log for a container that restarted), for every (init) container of every pod
    in `pods` (items of `kubectl get pods -l <group label> -o json`)."""
    selector = f"{GROUP_LABEL}={group}"
    commands = {
        "events.yaml": ["get", "events", "-n", namespace, "-o", "yaml"],
        "rbg.yaml": ["get", "rbg", group, "-n", namespace, "-o", "yaml"],
        "pods-describe.txt": ["describe", "pods", "-n", namespace, "-l", selector],
    }
    for pod in pods:
        name = pod["metadata"]["name"]
        spec = pod.get("spec", {})
        statuses = {
            s["name"]: s
            for s in [
                *pod.get("status", {}).get("initContainerStatuses", []),
                *pod.get("status", {}).get("containerStatuses", []),
            ]
        }
        for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
            cname = container["name"]
            logs = ["logs", name, "-c", cname, "-n", namespace, f"--tail={LOG_TAIL_LINES}"]
            commands[f"logs/{name}/{cname}.log"] = logs
            if statuses.get(cname, {}).get("restartCount", 0) > 0:
                commands[f"logs/{name}/{cname}.previous.log"] = [*logs, "--previous"]
    return commands


def cluster_skip_reason(runner: CommandRunner | None = None, target: KubeTarget | None = None) -> str | None:
    """None when kubectl reaches a cluster that serves RoleBasedGroup workloads.x-k8s.io/v1alpha2,
    else why the cluster tests must skip."""
    runner = runner or SubprocessRunner(timeout=30)
    target = target or KubeTarget()
    if target.kubeconfig and not Path(target.kubeconfig).is_file():
        return f"no cluster: kubeconfig {target.kubeconfig} does not exist"
    try:
        version = runner.run(target.kubectl_argv("version", "-o", "json", "--request-timeout=10s"))
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"no cluster: kubectl failed to run ({exc})"
    server = None
    with contextlib.suppress(json.JSONDecodeError):
        server = json.loads(version.stdout or "{}").get("serverVersion")
    if version.returncode != 0 or not server:
        message = _last_line(version.stderr) or f"kubectl version exited with {version.returncode}"
        if "localhost:8080" in version.stderr:
            return f"no cluster: no kubeconfig (kubectl fell back to localhost:8080): {message}"
        return f"no cluster: the API server is unreachable: {message}"
    resources = runner.run(
        target.kubectl_argv("api-resources", f"--api-group={RBG_GROUP}", "--request-timeout=10s")
    )
    if resources.returncode != 0:
        return f"no cluster: kubectl api-resources failed: {_last_line(resources.stderr)}"
    for line in resources.stdout.splitlines()[1:]:
        columns = line.split()
        if columns and columns[0] == "rolebasedgroups":
            if f"{RBG_GROUP}/{RBG_VERSION}" in columns:
                return None
            break
    return f"RBG {RBG_VERSION} not served by the cluster (server {server.get('gitVersion', '?')}): " + (
        INSTALL_RBG_HINT
    )


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def free_local_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# The deployment ---------------------------------------------------------------------------------------------


class KubeDeployment:
    """The chart installed in a fresh namespace. Use as a context manager."""

    def __init__(
        self,
        target: KubeTarget,
        runner: CommandRunner | None = None,
        *,
        namespace: str | None = None,
        poll_interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        http_get: Callable[[str], int | None] = http_status,
        local_port: Callable[[], int] = free_local_port,
        out: Callable[[str], None] | None = None,
    ) -> None:
        self.target = target
        self.runner = runner or SubprocessRunner()
        self.namespace = namespace or namespace_name(target.namespace_prefix)
        self.poll_interval = poll_interval
        self._clock, self._sleep, self._http_get, self._local_port = clock, sleep, http_get, local_port
        self._out = out or (lambda line: print(line, file=sys.stderr, flush=True))
        self.group: str | None = None
        self.rbg: dict = {}
        self._router_url = target.router_url
        self._port_forward: Process | None = None
        self._created_namespace = False
        self._installed = False

    # commands

    def _kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._check(self.runner.run(self.target.kubectl_argv(*args)), check)

    def _helm(
        self, *args: str, check: bool = True, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self._check(self.runner.run(self.target.helm_argv(*args), timeout), check)

    @staticmethod
    def _check(result: subprocess.CompletedProcess[str], check: bool) -> subprocess.CompletedProcess[str]:
        if check and result.returncode != 0:
            raise KubeDeploymentError(
                f"`{' '.join(map(str, result.args))}` exited with {result.returncode}: "
                f"{result.stderr.strip()}"
            )
        return result

    # life cycle

    def __enter__(self) -> KubeDeployment:
        try:
            self.start()
        except BaseException as exc:
            self.stop(exc)
            raise
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.stop(exc)

    def start(self) -> KubeDeployment:
        # Marked before the command: an interrupted command may still have taken effect.
        self._created_namespace = True
        self._kubectl("create", "namespace", self.namespace)
        self._out(f"namespace {self.namespace} created")
        self._installed = True
        self._helm(*helm_install_args(self.target, self.namespace))
        self.rbg = self._get_group()
        self.group = self.rbg["metadata"]["name"]
        self.wait_ready()
        if self._router_url is None:
            self._router_url = self._forward_router()
        return self

    def stop(self, exc: BaseException | None = None) -> None:
        """Stop the port-forward; write diagnostics when `exc` is set; then uninstall and delete the
        namespace unless `keep`. Every step runs even when an earlier one fails."""
        steps: list[tuple[str, Callable[[], object]]] = [("stop port-forward", self._stop_port_forward)]
        if exc is not None and self._created_namespace:
            steps.append(("collect diagnostics", lambda: self.collect_diagnostics(self.diagnostics_dir)))
        if self.target.keep:
            if self._created_namespace:
                self._out(f"keeping namespace {self.namespace} (keep=True)")
        else:
            if self._installed:
                steps.append(
                    (
                        "helm uninstall",
                        lambda: self._helm("uninstall", self.target.release, "-n", self.namespace),
                    )
                )
            if self._created_namespace:
                steps.append(
                    (
                        "delete namespace",
                        lambda: self._kubectl("delete", "namespace", self.namespace, "--wait=false"),
                    )
                )
        interrupted: BaseException | None = None
        for what, step in steps:
            try:
                step()
            except KeyboardInterrupt as err:  # finish tearing down, then re-raise
                interrupted = err
            except Exception as err:
                self._out(f"teardown: {what} failed: {err}")
        self._installed = self._installed and self.target.keep
        self._created_namespace = self._created_namespace and self.target.keep
        if interrupted is not None and exc is None:
            raise interrupted

    @property
    def diagnostics_dir(self) -> Path:
        return self.target.results_dir / self.namespace

    # readiness

    def _get_group(self) -> dict:
        if self.group is not None:
            return json.loads(
                self._kubectl("get", "rbg", self.group, "-n", self.namespace, "-o", "json").stdout
            )
        items = json.loads(self._kubectl("get", "rbg", "-n", self.namespace, "-o", "json").stdout)["items"]
        if len(items) != 1:
            raise KubeDeploymentError(f"expected one RoleBasedGroup in {self.namespace}, found {len(items)}")
        return items[0]

    def _rollout_status(self, status: GroupStatus) -> GroupStatus:
        """A Ready group is ready only once every role's pods run the current spec (roles_not_rolled_out)."""
        if not status.ready:
            return status
        listing = self._kubectl(
            "get", "pods", "-n", self.namespace, "-l", f"{GROUP_LABEL}={status.name}", "-o", "json"
        )
        lagging = roles_not_rolled_out(self.rbg, json.loads(listing.stdout).get("items", []))
        return (
            replace(status, ready=False, detail=f"rolling out: {'; '.join(lagging)}") if lagging else status
        )

    def wait_ready(self, timeout: float | None = None) -> GroupStatus:
        """Poll the RBG until Ready with every role's pods running its current spec, printing a progress
        line whenever it changes."""
        timeout = self.target.ready_timeout if timeout is None else timeout
        deadline = self._clock() + timeout
        last = ""
        while True:
            self.rbg = self._get_group()
            status = self._rollout_status(parse_group_status(self.rbg))
            line = progress_line(status)
            if line != last:
                self._out(line)
                last = line
            if status.ready:
                return status
            if self._clock() > deadline:
                roles = ", ".join(
                    f"{r.name} ({r.ready}/{r.replicas} ready)" for r in status.not_ready_roles()
                )
                raise KubeDeploymentError(
                    f"RoleBasedGroup {status.name} in {self.namespace} not Ready after {timeout:.0f} s: "
                    f"{status.detail}; not-ready roles: {roles or 'none'}"
                )
            self._sleep(self.poll_interval)

    # router

    @property
    def router_url(self) -> str:
        if self._router_url is None:
            raise KubeDeploymentError("the deployment is not started")
        return self._router_url

    def _forward_router(self) -> str:
        service = f"{self.group}-router"
        svc = json.loads(self._kubectl("get", "service", service, "-n", self.namespace, "-o", "json").stdout)
        ports = svc["spec"]["ports"]
        port = next((p["port"] for p in ports if p.get("name") == "http"), ports[0]["port"])
        local = self._local_port()
        argv = self.target.kubectl_argv(
            "port-forward", f"svc/{service}", f"{local}:{port}", "-n", self.namespace
        )
        self._port_forward = self.runner.start(argv, self.diagnostics_dir / "port-forward.log")
        url = f"http://127.0.0.1:{local}"
        deadline = self._clock() + 60
        while self._http_get(f"{url}/health") is None:
            code = self._port_forward.poll()
            if code is not None:
                raise KubeDeploymentError(
                    f"kubectl port-forward exited with {code} (log: {self.diagnostics_dir})"
                )
            if self._clock() > deadline:
                raise KubeDeploymentError(f"{url}/health did not answer through kubectl port-forward in 60 s")
            self._sleep(0.2)
        self._out(f"router {service}:{port} forwarded to {url}")
        return url

    def _stop_port_forward(self) -> None:
        process, self._port_forward = self._port_forward, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    # operations

    def role_spec(self, role: str) -> tuple[int, dict]:
        for index, spec in enumerate(self.rbg.get("spec", {}).get("roles", [])):
            if spec["name"] == role:
                return index, spec
        raise KubeDeploymentError(f"RoleBasedGroup {self.group} has no role {role!r}")

    def scale(self, role: str, replicas: int, timeout: float | None = None) -> GroupStatus:
        """Scale through the role's RoleBasedGroupScalingAdapter when it has one (the webhook rejects
        other replica changes then), else by patching the role's replicas; then wait for Ready."""
        index, spec = self.role_spec(role)
        if (spec.get("scalingAdapter") or {}).get("enable"):
            self._kubectl(
                "scale",
                f"rolebasedgroupscalingadapter/{self.group}-{role}",
                f"--replicas={replicas}",
                "-n",
                self.namespace,
            )
        else:
            patch = [{"op": "replace", "path": f"/spec/roles/{index}/replicas", "value": replicas}]
            self._kubectl(
                "patch", "rbg", str(self.group), "-n", self.namespace, "--type=json", "-p", json.dumps(patch)
            )
        return self.wait_ready(timeout)

    def running_pods(self, role: str) -> list[KubePod]:
        selector = f"{GROUP_LABEL}={self.group},{ROLE_LABEL}={role}"
        listing = self._kubectl("get", "pods", "-n", self.namespace, "-l", selector, "-o", "json")
        return ready_pods(json.loads(listing.stdout).get("items", []))

    def pod_http_get(self, pod: str, port: int, path: str) -> str:
        """Through the API server's pod proxy: needs no port-forward and no tool in the image."""
        return self._kubectl(
            "get", "--raw", f"/api/v1/namespaces/{self.namespace}/pods/{pod}:{port}/proxy{path}"
        ).stdout

    def kill(self, role: str, index: int) -> KubePod:
        """Force-delete pod `index` (no grace period, like a lost node); the controller re-creates it."""
        pod = next((p for p in self.running_pods(role) if _pod_index(p.name) == index), None)
        if pod is None:
            raise KubeDeploymentError(f"role {role} has no Ready pod with index {index} in {self.namespace}")
        self._kubectl(
            "delete", "pod", pod.name, "-n", self.namespace, "--grace-period=0", "--force", "--wait=false"
        )
        return pod

    def helm_test(self) -> subprocess.CompletedProcess[str]:
        """`helm test --logs`: the chart's test Pod sends one image request through the router Service
        (it may pull the SGLang image first, hence the long timeout)."""
        return self._helm(
            "test",
            self.target.release,
            "-n",
            self.namespace,
            "--logs",
            "--timeout=15m",
            check=False,
            timeout=960,
        )

    def collect_diagnostics(self, directory: Path) -> list[Path]:
        """Events, pod descriptions, the RBG and the last log lines of every container of the group, one
        file each (layout: `diagnostic_commands`). A failing command writes its stderr into its file."""
        group = self.group or self.target.release
        pods: list[dict] = []
        listing = self._kubectl(
            "get", "pods", "-n", self.namespace, "-l", f"{GROUP_LABEL}={group}", "-o", "json", check=False
        )
        if listing.returncode == 0:
            pods = json.loads(listing.stdout).get("items", [])
        written = []
        for relative, args in diagnostic_commands(self.namespace, group, pods).items():
            result = self._kubectl(*args, check=False)
            path = directory / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            text = result.stdout if result.returncode == 0 else f"# exit {result.returncode}\n{result.stderr}"
            path.write_text(text)
            written.append(path)
        self._out(f"diagnostics written to {directory}")
        return written
