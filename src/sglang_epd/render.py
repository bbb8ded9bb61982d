"""Render the chart with the real helm CLI and return the parsed objects."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "sglang-epd"
EXAMPLES_DIR = REPO_ROOT / "values-examples"
RBG_API = "workloads.x-k8s.io/v1alpha2/RoleBasedGroup"
# APIs that chart options need besides RBG (checked by preflight.requireOptionalApis).
OPTIONAL_APIS = (
    "monitoring.coreos.com/v1/PodMonitor",
    "keda.sh/v1alpha1/ScaledObject",
    "workloads.x-k8s.io/v1alpha2/CoordinatedPolicy",
)

# Which env var overrides, and which file under .tools/bin is installed by scripts/install_helm.py.
_HELM_LOCATIONS = {"3": ("SGLANG_EPD_HELM", "helm"), "4": ("SGLANG_EPD_HELM4", "helm4")}


class HelmNotFoundError(RuntimeError):
    pass


class RenderError(RuntimeError):
    """helm refused the values: the message is helm's own (it names the offending value)."""


def find_helm(major: str = "3") -> str:
    """Path of a helm CLI of the given major version: env override, then .tools/bin, then PATH."""
    env_var, tool_name = _HELM_LOCATIONS[major]
    candidates = [os.environ.get(env_var), str(REPO_ROOT / ".tools" / "bin" / tool_name)]
    if major == "3":
        candidates.append(shutil.which("helm"))
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise HelmNotFoundError(
        f"No Helm {major} CLI found (looked at ${env_var}, .tools/bin/{tool_name} and PATH). "
        "Run `python3 scripts/install_helm.py` or point the variable at a helm binary."
    )


@dataclass(frozen=True)
class HelmRunner:
    """Runs one helm binary with private cache/config dirs, so tests never touch the user's helm setup."""

    binary: str

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        with tempfile.TemporaryDirectory(prefix="sglang-epd-helm-") as home:
            env = {
                **os.environ,
                "HELM_CACHE_HOME": f"{home}/cache",
                "HELM_CONFIG_HOME": f"{home}/config",
                "HELM_DATA_HOME": f"{home}/data",
            }
            return subprocess.run([self.binary, *args], capture_output=True, text=True, env=env, check=False)


def template_args(
    values_files: Iterable[Path | str] = (),
    set_values: Mapping[str, object] | None = None,
    release: str = "sglang-epd",
    namespace: str = "default",
    chart: Path = CHART_DIR,
    api_versions: Iterable[str] = (RBG_API, *OPTIONAL_APIS),
) -> list[str]:
    args = ["template", release, str(chart), "--namespace", namespace]
    for path in values_files:
        args += ["-f", str(path)]
    for key, value in (set_values or {}).items():
        args += ["--set-json", f"{key}={json.dumps(value)}"]
    for api in api_versions:
        args += ["--api-versions", api]
    return args


def render_text(helm: HelmRunner | None = None, **kwargs: object) -> str:
    """Rendered manifests as helm prints them; raises RenderError with helm's message on failure."""
    runner = helm or HelmRunner(find_helm())
    result = runner.run(*template_args(**kwargs))  # type: ignore[arg-type]
    if result.returncode != 0:
        raise RenderError(result.stderr.strip())
    return result.stdout


def render(helm: HelmRunner | None = None, **kwargs: object) -> list[dict]:
    """Rendered objects (empty documents dropped)."""
    return [doc for doc in yaml.safe_load_all(render_text(helm, **kwargs)) if doc]


def render_notes(
    helm4: HelmRunner,
    values_files: Iterable[Path | str] = (),
    release: str = "sglang-epd",
    namespace: str = "default",
) -> str:
    """NOTES.txt as `helm install` prints it. Needs Helm 4: its `install --dry-run=client` works without a
    cluster (Helm 3.17 contacts the API server even then). The preflight is off because a client-side
    dry run knows only the built-in APIs."""
    args = [
        "install",
        release,
        str(CHART_DIR),
        "--namespace",
        namespace,
        "--dry-run=client",
        "--set",
        "preflight.requireRbgApi=false",
        "--set",
        "preflight.requireOptionalApis=false",
    ]
    for path in values_files:
        args += ["-f", str(path)]
    result = helm4.run(*args)
    if result.returncode != 0:
        raise RenderError(result.stderr.strip())
    notes = result.stdout.partition("NOTES:\n")[2]
    if not notes:
        raise RenderError(f"helm install --dry-run printed no NOTES:\n{result.stdout[-2000:]}")
    return notes


class InProcessRenderer:
    """Renders with the Helm Go SDK loaded in-process (`helm-python-sdk`): ~10 ms a render instead of
    ~60 ms for a helm process, for tests that render hundreds of documents. The SDK cannot declare extra
    API versions, so the RBG preflight is switched off for these renders."""

    def __init__(self, chart: Path = CHART_DIR) -> None:
        import helm_python

        self._errors = (helm_python.HelmValuesError, helm_python.HelmRenderError)
        self._chart = helm_python.Chart.load(str(chart))

    def render(
        self, values: Mapping[str, object], release: str = "sglang-epd", namespace: str = "default"
    ) -> list[dict]:
        merged = {**values, "preflight": {"requireRbgApi": False, "requireOptionalApis": False}}
        try:
            rendered = self._chart.render(merged, name=release, namespace=namespace)
        except self._errors as error:
            raise RenderError(str(error)) from error
        objects = []
        for path, text in sorted(rendered.items()):
            if path.endswith(".yaml"):
                objects += [doc for doc in yaml.safe_load_all(text) if doc]
        return objects

    def close(self) -> None:
        self._chart.close()
