"""NOTES.txt tells the user how to wait, reach the router and send an image request that works."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from sglang_epd.render import EXAMPLES_DIR, HelmRunner, find_helm, render_notes


@pytest.fixture(scope="module")
def helm4() -> HelmRunner:
    return HelmRunner(find_helm("4"))


@pytest.fixture(scope="module")
def notes(helm4: HelmRunner) -> str:
    return render_notes(helm4, values_files=[EXAMPLES_DIR / "qwen2.5-vl-7b-epd.yaml"])


class _Recorder(BaseHTTPRequestHandler):
    bodies: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.bodies.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"choices": [{"message": {"content": "ok"}}]}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recording_router() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.bodies = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.bodies
    server.shutdown()
    server.server_close()
    thread.join()


def test_notes_list_roles_and_wait_command(notes: str) -> None:
    assert "kubectl -n default wait --for=condition=Ready rbg/sglang-epd --timeout=60m" in notes
    assert "port-forward svc/sglang-epd-router 8000:8000" in notes
    for role in ("vlm-encoder", "vlm-prefill", "vlm-decode", "sglang-router"):
        assert role in notes


def test_notes_curl_sends_a_valid_image_request(
    notes: str, recording_router: tuple[str, list[tuple[str, bytes]]], tmp_path: Path
) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    url, bodies = recording_router
    command = notes.split("3. Send one image request", 1)[1].split("\n\n", 2)[1]
    (tmp_path / "photo.jpg").write_bytes(bytes(range(256)) * 1000)  # 256 kB: more than one argv string holds
    subprocess.run(
        ["bash", "-c", command],
        cwd=tmp_path,
        env={"ROUTER": url, "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
        timeout=30,
    )
    [(path, body)] = bodies
    request = json.loads(body)
    assert path == "/v1/chat/completions"
    assert request["model"] == "qwen2.5-vl-7b"
    image_url = request["messages"][0]["content"][0]["image_url"]["url"]
    assert image_url.startswith("data:image/jpeg;base64,") and len(image_url) > 300_000
