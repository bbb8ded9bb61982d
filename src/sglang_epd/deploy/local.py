"""Run a rendered RoleBasedGroup on this machine: one local process per pod, each on its own loopback
address, started in RBG's dependency order and gated on the rendered readiness probes.

Nothing is re-derived from values: each process runs one container's rendered command and args.
`python3 -m sglang.launch_server` runs the SGLang simulator (`sglang_epd.sim`, same flags) or real SGLang
on the CPU (`servers`, see deploy/servers.py), the router runs the real `sglang_router` from PyPI, and the
encoder's registrar sidecar runs the chart's own files/encoder-registrar.py. Pod DNS names in arguments
are mapped to the pods' loopback addresses, and `--host 0.0.0.0` binds the pod's own address, as a pod's
network namespace would. Removing a pod follows the kubelet: the sglang container's preStop hook runs
while the other containers get SIGTERM at once, and SGLang gets SIGTERM when its hook has returned. A
container that exits by itself is started again, as the kubelet does for RBG's pods (restartPolicy
Always), after its back-off.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..k8s_env import PodIdentity, container_env, expand_all
from ..real_sglang import SGLANG_CACHE_ENV
from ..render import CHART_DIR
from ..topology import Role, Topology, container_argv
from ..waiting import http_status
from .servers import LAUNCH_SERVER, SglangServers, SimulatedServers, launches_sglang

# Rendered command prefix -> local command prefix (SGLang's own: `servers`).
COMMAND_MAP = {
    ("python3", "-m", "sglang_router.launch_router"): (sys.executable, "-m", "sglang_router.launch_router"),
    ("python3", "-c"): (sys.executable, "-c"),  # the helm test hook's inline script
    # Mounted from its ConfigMap in the encoder pods; the ConfigMap holds this very file.
    ("python3", "/opt/sglang-epd/encoder-registrar.py"): (
        sys.executable,
        str(CHART_DIR / "files" / "encoder-registrar.py"),
    ),
}
# Flags whose 0.0.0.0 means "every interface of the pod", i.e. the pod's own address here.
BIND_FLAGS = ("--host", "--prometheus-host")
MAX_PODS_PER_ROLE = 254
# The kubelet's restart back-off: 10 s doubling up to 5 min; the first restart of a pod is immediate here,
# the kubelet's is within its next sync.
RESTART_BACKOFF_S = (0.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0)


class LocalDeploymentError(RuntimeError):
    pass


def local_command(owner: str, rendered: list[str]) -> list[str]:
    """The rendered command with its prefix replaced by the local stand-in (COMMAND_MAP)."""
    for prefix, local in COMMAND_MAP.items():
        if tuple(rendered[: len(prefix)]) == prefix:
            return [*local, *rendered[len(prefix) :]]
    raise LocalDeploymentError(f"{owner}: no local stand-in for command {rendered[:3]}")


def helm_test_pods(objects: list[dict]) -> list[dict]:
    """The rendered Pods that `helm test` runs (annotation `helm.sh/hook: test`)."""
    return [
        o
        for o in objects
        if o.get("kind") == "Pod" and o["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"
    ]


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the test process dies, even by SIGKILL, so that no
    simulator or router outlives its deployment."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass
class LocalPod:
    role: Role
    identity: PodIdentity
    argv: list[str]  # the first (sglang or router) container
    env: dict[str, str]
    main_env: dict[str, str]  # the first container's, on top of env (what the SGLang servers need)
    log_path: Path
    sidecars: list[list[str]] = field(default_factory=list)  # argv of every other container
    pre_stop: list[str] | None = None  # the first container's preStop exec hook
    process: subprocess.Popen | None = None
    sidecar_processes: list[subprocess.Popen] = field(default_factory=list)
    restarts: int = 0  # restarts of its containers, as `kubectl get pods` counts them
    restart_at: float | None = None  # when a container that exited is due to start again

    @property
    def name(self) -> str:
        return self.identity.name

    @property
    def ip(self) -> str:
        return self.identity.ip

    def url(self, port: int | None = None) -> str:
        return f"http://{self.ip}:{port or self.role.port}"

    def all_processes(self) -> list[subprocess.Popen]:
        return [p for p in (self.process, *self.sidecar_processes) if p is not None]

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def readiness_url(self) -> str:
        probe = self.role.container.get("readinessProbe", {}).get("httpGet")
        if probe is None:
            raise LocalDeploymentError(f"{self.name}: the rendered container has no httpGet readinessProbe")
        ports = {p.get("name"): p["containerPort"] for p in self.role.container.get("ports", [])}
        port = probe["port"] if isinstance(probe["port"], int) else ports[probe["port"]]
        return f"http://{self.ip}:{port}{probe.get('path', '/')}"


@dataclass
class LocalDeployment:
    """A rendered group running as local processes. Use as a context manager; `stop()` is idempotent."""

    topology: Topology
    workdir: Path
    extra_env: Mapping[str, str] = field(default_factory=dict)
    servers: SglangServers = field(default_factory=SimulatedServers)
    ready_timeout: float | None = None  # default: the servers'
    subnet: int = field(default_factory=lambda: random.randint(20, 250))
    test_pods: list[dict] = field(default_factory=list)  # the rendered `helm.sh/hook: test` Pods
    pods: dict[str, list[LocalPod]] = field(default_factory=dict, init=False)
    _spawner: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)
    _kubelet: threading.Thread | None = field(default=None, init=False, repr=False)
    _stopping: threading.Event = field(default_factory=threading.Event, init=False, repr=False)

    def __post_init__(self) -> None:
        router = self.topology.role("router")
        if router is not None and "--service-discovery" in router.flags:
            raise LocalDeploymentError(
                "router.discovery.enabled: the router would watch pods through the Kubernetes API, which a "
                "local run has none of; render with router.discovery.enabled=false to run it here"
            )
        self._role_numbers = {name: i + 1 for i, name in enumerate(self.topology.roles)}
        self._host_map = {
            pod.host: self._ip(role.name, pod.index)
            for role in self.topology.roles.values()
            for pod in role.pods
        }
        self.workdir.mkdir(parents=True, exist_ok=True)

    # Addresses and argv -------------------------------------------------------------------------------

    def _ip(self, role_name: str, index: int) -> str:
        if index >= MAX_PODS_PER_ROLE:
            raise LocalDeploymentError(f"{role_name}: at most {MAX_PODS_PER_ROLE} pods per role run locally")
        return f"127.{self.subnet}.{self._role_numbers[role_name]}.{index + 1}"

    def _local_argv(
        self, owner: str, rendered: list[str], identity: PodIdentity, env: Mapping[str, str]
    ) -> list[str]:
        expanded = expand_all(rendered, env)
        if launches_sglang(expanded):
            argv = self.servers.command(expanded[len(LAUNCH_SERVER) :])
        else:
            argv = local_command(owner, expanded)
        for i, token in enumerate(argv[:-1]):
            if token in BIND_FLAGS and argv[i + 1] == "0.0.0.0":
                argv[i + 1] = identity.ip
        return [self._map_hosts(token) for token in argv]

    def _map_hosts(self, token: str) -> str:
        for host, ip in self._host_map.items():
            token = token.replace(f"//{host}:", f"//{ip}:")
        return token

    def _local_volume_paths(
        self, role: Role, container: dict, identity: PodIdentity, env: dict[str, str]
    ) -> dict[str, str]:
        """The env with the container's emptyDir mount paths (e.g. HOME=/home/sglang, where SGLang keeps its
        caches) moved to a directory of this pod under the workdir, as each pod has its own emptyDir."""
        volumes = {v["name"]: v for v in role.pod_template["spec"].get("volumes", [])}
        for mount in container.get("volumeMounts", []):
            if "emptyDir" not in volumes.get(mount["name"], {}) or mount.get("readOnly"):
                continue
            path = mount["mountPath"].rstrip("/")
            local = self.workdir / "volumes" / identity.name / mount["name"]
            for name, value in env.items():
                if value == path or value.startswith(f"{path}/"):
                    local.mkdir(parents=True, exist_ok=True)
                    env[name] = str(local) + value[len(path) :]
        return env

    def _pod(self, role: Role, index: int) -> LocalPod:
        identity = PodIdentity(self.topology.group, role.name, index, self._ip(role.name, index))
        main, *others = role.pod_template["spec"]["containers"]
        env = self._local_volume_paths(role, main, identity, container_env(main, identity))
        argv = self._local_argv(role.name, container_argv(main), identity, env)
        sidecars = [
            self._local_argv(
                f"{role.name}/{c['name']}", container_argv(c), identity, container_env(c, identity)
            )
            for c in others
        ]
        hook = main.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command")
        pre_stop = self._local_argv(f"{role.name} preStop", hook, identity, env) if hook else None
        # Cache locations an in-process `import sglang` set are this process's, not the pod's (its HOME).
        inherited = {k: v for k, v in os.environ.items() if k not in SGLANG_CACHE_ENV}
        process_env = {**inherited, **env, **self.extra_env}
        main_env = self.servers.env() if launches_sglang(container_argv(main)) else {}
        log_path = self.workdir / "logs" / f"{identity.name}.log"
        return LocalPod(role, identity, argv, process_env, main_env, log_path, sidecars, pre_stop)

    # Life cycle -----------------------------------------------------------------------------------------

    def start(self) -> LocalDeployment:
        """Start every role once its dependencies are Ready, as the RBG controller does."""
        started: set[str] = set()
        try:
            while len(started) < len(self.topology.roles):
                wave = [
                    role
                    for role in self.topology.roles.values()
                    if role.name not in started and set(role.dependencies) <= started
                ]
                if not wave:
                    raise LocalDeploymentError(f"dependency cycle among {set(self.topology.roles) - started}")
                for role in wave:
                    pods = [self._spawn(self._pod(role, i)) for i in range(role.replicas)]
                    with self._lock:
                        self.pods[role.name] = pods
                for role in wave:
                    self.wait_ready(self.pods[role.name])
                    started.add(role.name)
        except BaseException:
            self.stop()
            raise
        self._kubelet = threading.Thread(target=self._restart_exited, name="local-kubelet", daemon=True)
        self._kubelet.start()
        return self

    def _restart_exited(self) -> None:
        """Start again every container that exited on its own (a crash, an OOM kill), with back-off."""
        while not self._stopping.wait(0.2):
            with self._lock:
                for pod in [p for pods in self.pods.values() for p in pods]:
                    exited = [p for p in pod.all_processes() if p.poll() is not None]
                    if not exited:
                        continue
                    now = time.monotonic()
                    if pod.restart_at is None:
                        backoff = RESTART_BACKOFF_S[min(pod.restarts, len(RESTART_BACKOFF_S) - 1)]
                        pod.restart_at = now + backoff
                    if now >= pod.restart_at:
                        self._spawner.submit(self._restart, pod).result()  # type: ignore[union-attr]

    def _restart(self, pod: LocalPod) -> None:
        with pod.log_path.open("ab") as log:
            log.write(f"--- local kubelet: restarting the exited containers of {pod.name} ---\n".encode())
            if pod.process is not None and pod.process.poll() is not None:
                pod.process = self._start_container(pod, pod.argv, log, pod.main_env)
            pod.sidecar_processes = [
                self._start_container(pod, argv, log) if process.poll() is not None else process
                for argv, process in zip(pod.sidecars, pod.sidecar_processes, strict=True)
            ]
        pod.restarts += 1
        pod.restart_at = None

    def _spawn(self, pod: LocalPod) -> LocalPod:
        # PDEATHSIG fires when the *thread* that started the child exits, so every pod is started from
        # one thread that lives as long as the deployment, whichever thread calls start() or scale().
        if self._spawner is None:
            self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-deployment")
        return self._spawner.submit(self._popen, pod).result()

    @staticmethod
    def _start_container(
        pod: LocalPod, argv: list[str], log: BinaryIO, env: Mapping[str, str] | None = None
    ) -> subprocess.Popen:
        return subprocess.Popen(
            argv,
            env={**pod.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def _popen(self, pod: LocalPod) -> LocalPod:
        pod.log_path.parent.mkdir(parents=True, exist_ok=True)
        with pod.log_path.open("ab") as log:
            pod.process = self._start_container(pod, pod.argv, log, pod.main_env)
            pod.sidecar_processes = [self._start_container(pod, argv, log) for argv in pod.sidecars]
        return pod

    def wait_ready(self, pods: list[LocalPod]) -> None:
        """Return once every pod passes its readiness probe; raise if one exits first or the time runs out."""
        timeout = self.ready_timeout or self.servers.ready_timeout
        deadline = time.monotonic() + timeout
        waiting = list(pods)
        while waiting:
            for pod in list(waiting):
                if pod.process is not None and pod.process.poll() is not None:
                    raise LocalDeploymentError(
                        f"{pod.name} exited with code {pod.process.returncode} before it was Ready.\n"
                        f"command: {' '.join(pod.argv)}\nlast log lines ({pod.log_path}):\n{pod.log_tail()}"
                    )
                if http_status(pod.readiness_url()) == 200:
                    waiting.remove(pod)
            if waiting and time.monotonic() > deadline:
                names = ", ".join(f"{p.name} ({p.readiness_url()})" for p in waiting)
                raise LocalDeploymentError(
                    f"not Ready after {timeout:.0f} s: {names}. "
                    f"Last log lines of {waiting[0].name}:\n{waiting[0].log_tail()}"
                )
            if waiting:
                time.sleep(0.05)  # polling interval of the readiness check, not a wait for an event

    def scale(self, role_name: str, replicas: int) -> None:
        """Add or remove pods of a role, highest index first, as the RBG scaling adapter does. Only the
        replica count changes: the other roles' arguments stay as rendered."""
        role = self.topology.roles[role_name]
        pods = self.pods[role_name]
        while len(pods) > replicas:
            with self._lock:
                pod = pods.pop()
            _remove(pod)
        new = [self._spawn(self._pod(role, i)) for i in range(len(pods), replicas)]
        with self._lock:
            pods.extend(new)
        self.wait_ready(new)

    def kill(self, role_name: str, index: int) -> LocalPod:
        """SIGKILL one pod (no clean shutdown, like a node failure) and forget it."""
        with self._lock:
            pods = self.pods[role_name]
            pod = next(p for p in pods if p.identity.index == index)
            pods.remove(pod)
        for process in pod.all_processes():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        return pod

    def stop(self) -> None:
        """Terminate every pod and wait for them to exit. A teardown skips the preStop hooks: nothing is
        left to drain for."""
        self._stopping.set()
        if self._kubelet is not None:
            self._kubelet.join()
            self._kubelet = None
        # All at once: each real SGLang server takes seconds to exit, and one after another added up to
        # most of a minute per group.
        _terminate(*self.processes())
        self.pods.clear()
        if self._spawner is not None:
            self._spawner.shutdown()
            self._spawner = None

    def __enter__(self) -> LocalDeployment:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # Access ---------------------------------------------------------------------------------------------

    @property
    def router_url(self) -> str:
        router = self.topology.role("router")
        if router is None or not self.pods.get(router.name):
            raise LocalDeploymentError("the deployment has no running router pod")
        return self.pods[router.name][0].url()

    def running_pods(self, role: str) -> list[LocalPod]:
        return [p for p in self.pods.get(role, []) if p.process is not None and p.process.poll() is None]

    def pod_http_get(self, pod: str, port: int, path: str, timeout: float = 10.0) -> str:
        ip = next((p.ip for pods in self.pods.values() for p in pods if p.name == pod), None)
        if ip is None:
            raise LocalDeploymentError(f"no running pod {pod!r}")
        with urllib.request.urlopen(f"http://{ip}:{port}{path}", timeout=timeout) as response:
            return response.read().decode()

    def helm_test(
        self, pods: list[dict] | None = None, timeout: float = 600.0
    ) -> subprocess.CompletedProcess[str]:
        """Run every rendered test Pod's command (default: `test_pods`) here, as `helm test` runs it in the
        cluster, with the router Service (`<group>-router:<port>`) resolving to the router pod. Exit code:
        the worst one."""
        router = re.compile(rf"http://{re.escape(self.topology.group)}-router:\d+")
        code, output = 0, []
        for pod in self.test_pods if pods is None else pods:
            for container in pod["spec"]["containers"]:
                env = {
                    e["name"]: router.sub(self.router_url, str(e.get("value", ""))) for e in container["env"]
                }
                argv = local_command(
                    pod["metadata"]["name"], container["command"] + container.get("args", [])
                )
                run = subprocess.run(
                    argv, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout
                )
                code = max(code, run.returncode)
                output.append(f"{pod['metadata']['name']}/{container['name']}:\n{run.stdout}{run.stderr}")
        return subprocess.CompletedProcess(["helm", "test", self.topology.group], code, "\n".join(output), "")

    def role_pods(self, component: str) -> list[LocalPod]:
        role = self.topology.role(component)
        return list(self.pods.get(role.name, [])) if role else []

    def processes(self) -> Iterator[subprocess.Popen]:
        for pods in self.pods.values():
            for pod in pods:
                yield from pod.all_processes()


def _remove(pod: LocalPod) -> None:
    """Delete a pod as the kubelet does: the sidecars get SIGTERM at once (they have no hook), the first
    container's preStop hook runs (bounded by terminationGracePeriodSeconds), then it gets SIGTERM."""
    grace = float(pod.role.pod_template["spec"].get("terminationGracePeriodSeconds", 30))
    _terminate(*pod.sidecar_processes)
    if pod.pre_stop is not None and pod.process is not None and pod.process.poll() is None:
        # The kubelet, too, goes on to SIGTERM when the grace period runs out.
        with pod.log_path.open("ab") as log, contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(pod.pre_stop, env=pod.env, stdout=log, stderr=subprocess.STDOUT, timeout=grace)
    if pod.process is not None:
        _terminate(pod.process)


def _terminate(*processes: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM each container's first process, as the kubelet signals PID 1, and give them `grace` seconds;
    then, as a container ends with its first process, SIGKILL whatever it started. (Signalling the whole
    group at once would differ: SGLang's server takes its scheduler dying first for a crash and waits 5 s
    more before it exits.)"""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in running:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
