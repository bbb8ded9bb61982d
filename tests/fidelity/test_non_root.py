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
from pathlib import Path

import aiohttp
import pytest

from sglang_epd.sim.client import chat_body, data_url, image_bytes, post_chat
from sglang_epd.topology import Topology
from tests.sim.simproc import free_port

from .real_sglang import RealSglang


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
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("running a server as another user needs root and setpriv (util-linux)")
    assert chart_pod["read_only"] is True
    assert sorted(chart_pod["writable"]) == sorted(["/dev/shm", "/tmp", chart_pod["home"]])
    uid, gid = chart_pod["user"]
    # $HOME is an emptyDir in the pod: here a fresh directory the UID owns, standing in for it.
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
    owned = subprocess.run(
        ["find", "/", "-xdev", "-uid", str(uid)], capture_output=True, text=True, check=False
    ).stdout.split()
    server.stop()
    outside = [path for path in owned if not path.startswith(("/tmp/", f"{home}/")) and path != str(home)]
    assert not outside, f"real SGLang wrote outside the chart's emptyDirs: {outside[:20]}"
    written_home = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    print(f"\nreal SGLang as UID {uid}: wrote {len(written_home)} paths under HOME: {written_home[:10]}")
