"""Real SGLang 0.5.23 runs as the chart runs it: as the chart's non-root UID (no passwd entry), writing only
where the chart mounts emptyDirs (/tmp, $HOME, /dev/shm), with everything else unwritable to it, as a
read-only root filesystem is. The user, HOME and mounts are read from the rendered chart. After serving an
image request, every file the server's UID owns anywhere on the root filesystem must lie under those
mounts (the UID keeps CAP_DAC_READ_SEARCH only to read this machine's root-only interpreter: it grants no
write). CPU path only: the GPU path's JIT caches (Triton, FlashInfer, DeepGEMM, TorchInductor) go under
$HOME by sglang/srt/environ.py redirect_third_party_caches, which this run imports too."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from sglang_epd.sim.client import chat_body, data_url, image_bytes, post_chat
from sglang_epd.topology import Topology
from sglang_epd.waiting import http_status, wait_for
from tests.sim.simproc import free_port

from .real_sglang import RealSglang

# The UID keeps CAP_DAC_READ_SEARCH (reads anything, writes nothing more): see RealSglang.server.
AS_USER = ["--clear-groups", "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", "--"]


def _needs_root_and_setpriv() -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("running a server as another user needs root and setpriv (util-linux)")


def _owned_by(uid: int) -> list[str]:
    """Every path on the root filesystem that `uid` owns."""
    return subprocess.run(
        ["find", "/", "-xdev", "-uid", str(uid)], capture_output=True, text=True, check=False
    ).stdout.split()


@pytest.fixture
def chart_pod(render_chart) -> dict:
    """The collocated server's container and pod security, as rendered."""
    topology = Topology.from_objects(render_chart(set_values={"mode": "collocated"}))
    server = topology.role("server")
    spec = server.pod_template["spec"]
    container = server.container
    env = {e["name"]: e.get("value") for e in container["env"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    writable = [
        m["mountPath"]
        for m in container["volumeMounts"]
        if "emptyDir" in volumes[m["name"]] and not m.get("readOnly")
    ]
    return {
        "user": (spec["securityContext"]["runAsUser"], spec["securityContext"]["runAsGroup"]),
        "read_only": container["securityContext"]["readOnlyRootFilesystem"],
        "home": env["HOME"],
        "writable": writable,
    }


def test_real_sglang_serves_as_the_charts_user_writing_only_to_its_emptydirs(
    chart_pod: dict, sglang: RealSglang, tiny_model: Path, tmp_path: Path
) -> None:
    _needs_root_and_setpriv()
    assert chart_pod["read_only"] is True
    assert sorted(chart_pod["writable"]) == sorted(["/dev/shm", "/tmp", chart_pod["home"]])
    uid, gid = chart_pod["user"]
    # $HOME is an emptyDir in the pod: here a fresh directory the UID owns, standing in for it.
    before = set(_owned_by(uid))
    home = tmp_path / "home"
    home.mkdir()
    os.chown(home, uid, gid)
    server = sglang.server(
        tiny_model, "127.0.0.1", free_port("127.0.0.1"), env={"HOME": str(home)}, user=(uid, gid)
    )

    async def ask() -> None:
        body = chat_body(
            "What is in this image?", [data_url(image_bytes(64, 64))], model=str(tiny_model), stream=True
        )
        async with aiohttp.ClientSession() as session:
            result = await post_chat(session, server.url, body, timeout=120)
        assert result.status == 200 and result.done, result

    asyncio.run(ask())
    owned = sorted(set(_owned_by(uid)) - before)
    server.stop()
    # What it created in /tmp (the pod's emptyDir) goes with it: only entries the UID itself owns.
    for path in (Path(p) for p in owned if Path(p).parent == Path("/tmp")):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    outside = [path for path in owned if not path.startswith(("/tmp/", f"{home}/")) and path != str(home)]
    assert not outside, f"real SGLang wrote outside the chart's emptyDirs: {outside[:20]}"
    written_home = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    print(f"\nreal SGLang as UID {uid}: wrote {len(written_home)} paths under HOME: {written_home[:10]}")


def test_the_real_router_writes_nothing(chart_pod: dict) -> None:
    """sglang-router 0.3.2 (the chart's router container: read-only root, no emptyDir) as the chart's UID
    with an unwritable HOME, serving /health: it owns no file anywhere afterwards."""
    _needs_root_and_setpriv()
    uid, gid = chart_pod["user"]
    port = free_port("127.0.0.1")
    before = set(_owned_by(uid))
    router = subprocess.Popen(
        [
            "setpriv",
            f"--reuid={uid}",
            f"--regid={gid}",
            *AS_USER,
            sys.executable,
            "-m",
            "sglang_router.launch_router",
            "--worker-urls",
            f"http://127.0.0.1:{free_port('127.0.0.1')}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env={"PATH": os.environ["PATH"], "HOME": "/nonexistent"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: http_status(f"http://127.0.0.1:{port}/health") == 200, 60, "the router's /health")
        owned = sorted(set(_owned_by(uid)) - before)
    finally:
        router.terminate()
        router.wait(30)
    assert owned == [], f"the router wrote: {owned[:20]}"
