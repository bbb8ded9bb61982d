"""`helm test`: one streamed image request through the router; fails on an error, an empty answer or a
TTFT over the bound. Standard library only (it runs in the SGLang image)."""

import base64
import http.client
import json
import os
import struct
import sys
import time
import urllib.parse
import zlib


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def fail(message: str) -> None:
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


router = urllib.parse.urlsplit(os.environ["ROUTER_URL"])
images = [
    {
        "type": "image_url",
        "image_url": {
            "url": "data:image/png;base64,"
            + base64.b64encode(png(448, 448, (i * 40 % 256, 120, 200))).decode()
        },
    }
    for i in range(int(os.environ["IMAGES"]))
]
body = json.dumps(
    {
        "model": os.environ["MODEL"],
        "messages": [
            {
                "role": "user",
                "content": [*images, {"type": "text", "text": "Describe the images in one sentence."}],
            }
        ],
        "max_tokens": int(os.environ["MAX_TOKENS"]),
        "stream": True,
    }
)
connection = http.client.HTTPConnection(
    router.hostname, router.port or 80, timeout=float(os.environ["TIMEOUT_SECONDS"])
)
start = time.perf_counter()
try:
    connection.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
except OSError as error:
    fail(f"cannot reach the router at {os.environ['ROUTER_URL']}: {error}")
if response.status != 200:
    fail(f"the router answered HTTP {response.status}: {response.read()[:500]!r}")

ttft_ms = None
pieces = []
for raw in response:  # one SSE line at a time, so the first token is timed when it arrives
    line = raw.decode("utf-8", "replace").strip()
    if not line.startswith("data:"):
        continue
    data = line[len("data:") :].strip()
    if data == "[DONE]":
        break
    try:
        chunk = json.loads(data)
    except ValueError:
        fail(f"the stream carried a line that is not JSON (an error event?): {data[:300]}")
    for choice in chunk.get("choices") or []:
        piece = (choice.get("delta") or {}).get("content") or ""
        if piece and ttft_ms is None:
            ttft_ms = (time.perf_counter() - start) * 1000
        pieces.append(piece)

answer = "".join(pieces).strip()
if not answer:
    fail("the answer is empty")
bound_ms = float(os.environ["TTFT_BOUND_MS"])
print(f"answer: {answer[:200]!r}")
print(f"TTFT {ttft_ms:.0f} ms (bound {bound_ms:.0f} ms) with {len(images)} image(s)")
if ttft_ms > bound_ms:
    fail(f"TTFT {ttft_ms:.0f} ms is over the bound {bound_ms:.0f} ms (helmTest.ttftBoundMs)")
print("PASS")
