"""checkov, the scanner platform teams gate charts with, run on what the cluster will hold: the rendered
objects with every RoleBasedGroup replaced by the pods RBG makes of it (checkov knows no RoleBasedGroup)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..render import REPO_ROOT
from .rbg_pods import as_cluster_objects

CHECKOV_ENV = "SGLANG_EPD_CHECKOV"
# requirements/checkov.txt, installed by `make scanners` (checkov's pins clash with the project's venv).
DEFAULT_CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"


def find_checkov() -> Path | None:
    """$SGLANG_EPD_CHECKOV, else the project's .venv-checkov; None when neither is there."""
    candidate = Path(os.environ.get(CHECKOV_ENV) or DEFAULT_CHECKOV)
    return candidate if os.access(candidate, os.X_OK) else None


@dataclass(frozen=True)
class Finding:
    """One check on one object: its outcome and, for a skip, the reason written in the annotation."""

    case: str
    check_id: str
    check_name: str
    resource: str
    outcome: str  # passed | failed | skipped
    reason: str = ""

    def __str__(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.case}: {self.resource} {self.check_id} {self.check_name}{why}"


@dataclass(frozen=True)
class ScanReport:
    findings: tuple[Finding, ...]

    def of(self, outcome: str) -> list[Finding]:
        return [f for f in self.findings if f.outcome == outcome]

    def counts(self) -> dict[str, int]:
        return {outcome: len(self.of(outcome)) for outcome in ("passed", "failed", "skipped")}

    def for_case(self, case: str) -> ScanReport:
        return ScanReport(tuple(f for f in self.findings if f.case == case))


SKIP_PREFIX = "checkov.io/skip"


@dataclass(frozen=True)
class Skip:
    """A ``checkov.io/skipN: ID=scope: reason`` annotation; scope names the containers the reason is about
    (``a/b``) or ``pod``."""

    check_id: str
    scope: tuple[str, ...]
    reason: str

    @property
    def pod_wide(self) -> bool:
        return self.scope == ("pod",)


def skips_of(obj: Mapping) -> list[Skip]:
    """The chart's checkov skips on an object; a skip without a scope raises, naming it."""
    result = []
    for key, value in ((obj.get("metadata") or {}).get("annotations") or {}).items():
        if not key.startswith(SKIP_PREFIX):
            continue
        check_id, _, comment = str(value).partition("=")
        scope, colon, reason = comment.partition(": ")
        if not colon or not reason:
            raise ValueError(f"{key}: {value!r} has no '<containers or pod>: <reason>' after the check id")
        result.append(Skip(check_id, tuple(scope.split("/")), reason))
    return result


def residual_pods(pod: dict) -> list[tuple[dict, str]]:
    """For each container-scoped skip of the pod: the pod without any skip annotation and without the
    containers that skip names, with the check id, which must pass on it. This proves that a skip, which
    checkov applies to the whole pod, hides nothing about the containers its reason does not name. A skip
    that names every container yields nothing."""
    result = []
    for skip in skips_of(pod):
        if skip.pod_wide:
            continue
        residual = json.loads(json.dumps(pod))
        metadata = residual["metadata"]
        metadata["annotations"] = {
            k: v for k, v in metadata.get("annotations", {}).items() if not k.startswith(SKIP_PREFIX)
        }
        metadata["name"] += f"-without-{'-'.join(skip.scope)}-{skip.check_id.lower().replace('_', '-')}"
        spec = residual["spec"]
        for field in ("containers", "initContainers"):
            if field in spec:
                spec[field] = [c for c in spec[field] if c["name"] not in skip.scope]
        if spec["containers"]:
            result.append((residual, skip.check_id))
    return result


def scan(
    cases: Mapping[str, Sequence[dict]], namespace: str, checkov: Path, timeout: float = 600
) -> ScanReport:
    """Scan each case's rendered objects (as RBG turns them into cluster objects) with one checkov run:
    one file per case, so findings map back to their case."""
    with tempfile.TemporaryDirectory(prefix="sglang-epd-checkov-") as tmp:
        folder = Path(tmp)
        files: dict[str, str] = {}
        for index, (case, objects) in enumerate(cases.items()):
            path = folder / f"case-{index}.yaml"
            path.write_text(yaml.safe_dump_all(as_cluster_objects(objects, namespace)))
            files[f"/{path.name}"] = case
        result = subprocess.run(
            [
                str(checkov),
                "-d",
                str(folder),
                "--framework",
                "kubernetes",
                "--output",
                "json",
                "--compact",
                "--skip-download",
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            # Offline: no Prisma Cloud guidelines download, no version check.
            env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_NO_VERSION_CHECK": "1"},
            check=False,
        )
    # checkov exits 1 when a check failed; anything else without JSON is checkov itself failing.
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(
            f"checkov ({checkov}) exited {result.returncode} without a JSON report:\n{result.stderr[-3000:]}"
        ) from None
    reports = report if isinstance(report, list) else [report]
    findings = []
    for one in reports:
        results = one.get("results", {})
        for outcome in ("passed", "failed", "skipped"):
            for check in results.get(f"{outcome}_checks", []):
                findings.append(
                    Finding(
                        case=files.get(check["file_path"], check["file_path"]),
                        check_id=check["check_id"],
                        check_name=check["check_name"],
                        resource=check["resource"],
                        outcome=outcome,
                        reason=(check.get("check_result") or {}).get("suppress_comment", ""),
                    )
                )
    return ScanReport(tuple(findings))
