"""Test images that are encoded once and made unique per use for the cost of a few hundred bytes.

An encoder cache (SGLang's `--enable-prefix-mm-cache`, the simulator's LRU) would hide the encoder's cost
if images repeated. SGLang keys it on the *decoded pixels* (a hash of the processed patches), the
simulator on the image bytes; a changed JPEG comment or PNG text chunk changes the bytes but not the
pixels, so it would fool only the simulator. Re-encoding 8 x 1080p per request is far too slow. So each
image is encoded once from seeded noise and then *stamped* with a number (up to 255**12, ~2**96) that
changes its pixels:

* JPEG: the stamp is written as base-255 digits into the 12 highest-frequency entries of the luminance
  quantization table (DQT). The decoder multiplies every block's coefficients by that table, so the
  decoded pixels change in every block where those coefficients are non-zero (all of them, for noise),
  while the entropy-coded data stays as it was.
* PNG: the file is written by hand with the first pixel row in a stored (uncompressed) deflate block and
  the other rows compressed once; the stamp is the first 12 bytes of that row, and only that block's
  CRC and the zlib Adler-32 (combined arithmetically) are recomputed.

The base64 text of the unchanged middle of the file is computed once and shared: a stamped data URL is a
small re-encoded head, the shared middle and a small re-encoded tail (base64 works on 3-byte groups, so
the cut points sit on multiples of 3).
"""

from __future__ import annotations

import base64
import io
import re
import struct
import zlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from PIL import Image

MIN_SIDE, MAX_SIDE = 28, 8192  # Qwen2.5-VL's smallest patch group; PNG's stored row must fit 64 KiB
RESOLUTION_NAMES = {
    "360p": (640, 360),
    "720p": (1280, 720),
    "1080p": (1920, 1080),
    "1440p": (2560, 1440),
    "4k": (3840, 2160),
}
FORMATS = ("jpeg", "png")
# Zigzag positions of the stamped luminance quantization entries: the 12 highest frequencies.
JPEG_STAMP_POSITIONS = tuple(range(52, 64))
JPEG_DIGIT_BASE = 255  # an 8-bit quantization entry is 1..255
MAX_STAMP = JPEG_DIGIT_BASE ** len(JPEG_STAMP_POSITIONS) - 1  # a little under 2**96
PNG_STAMP_BYTES = 12
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ZLIB_HEADER = b"\x78\x01"  # deflate, 32 KiB window, (0x7801 % 31 == 0)
ADLER_MOD = 65521


@dataclass(frozen=True, order=True)
class Resolution:
    width: int
    height: int

    @classmethod
    def parse(cls, text: str) -> Resolution:
        """`1080p` (also 360p, 720p, 1440p, 4k) or `WIDTHxHEIGHT`."""
        key = str(text).strip().lower()
        if key in RESOLUTION_NAMES:
            return cls(*RESOLUTION_NAMES[key])
        match = re.fullmatch(r"(\d+)x(\d+)", key)
        if not match:
            names = ", ".join(RESOLUTION_NAMES)
            raise ValueError(f"resolution {text!r} is neither WIDTHxHEIGHT nor one of {names}")
        resolution = cls(int(match[1]), int(match[2]))
        if not all(MIN_SIDE <= side <= MAX_SIDE for side in (resolution.width, resolution.height)):
            raise ValueError(f"resolution {text!r}: each side must be {MIN_SIDE}..{MAX_SIDE} pixels")
        return resolution

    @property
    def label(self) -> str:
        return f"{self.width}x{self.height}"


def noise_pixels(resolution: Resolution, seed: int, index: int) -> np.ndarray:
    """Uniform RGB noise, the same for the same (seed, index, size): the worst case for JPEG size, like
    SGLang's own `bench_serving --dataset-name image` random images."""
    rng = np.random.default_rng([seed, index, resolution.width, resolution.height])
    return rng.integers(0, 256, (resolution.height, resolution.width, 3), dtype=np.uint8)


class StampableImage:
    """An encoded image whose bytes and pixels can be varied by `stamp` (0..MAX_STAMP)."""

    fmt: str
    mime: str

    def __init__(self, data: bytes, resolution: Resolution, head_end: int, tail_start: int) -> None:
        self.data = data
        self.resolution = resolution
        self._head_end = head_end
        self._tail_start = tail_start
        self._cut_head = -(-head_end // 3) * 3
        self._cut_tail = self._cut_head + (tail_start - self._cut_head) // 3 * 3
        self.middle_b64 = base64.b64encode(data[self._cut_head : self._cut_tail])

    def _stamped_ends(self, stamp: int) -> tuple[bytes, bytes]:
        """The bytes before `head_end` and from `tail_start` on, for this stamp."""
        raise NotImplementedError

    def b64_parts(self, stamp: int) -> tuple[bytes, bytes, bytes]:
        """Base64 of the stamped image as (head, shared middle, tail); concatenated they are the base64 of
        `encode(stamp)`."""
        head, tail = self._stamped_ends(_check_stamp(stamp))
        data = self.data
        return (
            base64.b64encode(head + data[self._head_end : self._cut_head]),
            self.middle_b64,
            base64.b64encode(data[self._cut_tail : self._tail_start] + tail),
        )

    def encode(self, stamp: int) -> bytes:
        head, tail = self._stamped_ends(_check_stamp(stamp))
        return head + self.data[self._head_end : self._tail_start] + tail

    @property
    def encoded_size(self) -> int:
        return len(self.data)


def _check_stamp(stamp: int) -> int:
    if not 0 <= stamp <= MAX_STAMP:
        raise ValueError(f"an image stamp must be 0..{MAX_STAMP}, got {stamp}")
    return stamp


class StampableJpeg(StampableImage):
    fmt = "jpeg"
    mime = "image/jpeg"

    def __init__(self, data: bytes, resolution: Resolution) -> None:
        self._offsets = _luma_quant_offsets(data)
        super().__init__(data, resolution, head_end=self._offsets[-1] + 1, tail_start=len(data))

    def _stamped_ends(self, stamp: int) -> tuple[bytes, bytes]:
        head = bytearray(self.data[: self._head_end])
        for offset in reversed(self._offsets):
            stamp, digit = divmod(stamp, JPEG_DIGIT_BASE)
            head[offset] = digit + 1
        return bytes(head), b""


def _luma_quant_offsets(data: bytes) -> list[int]:
    """File offsets of the stamped entries of quantization table 0, read from the DQT segments."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF and data[pos + 1] != 0xDA:
        marker, length = data[pos + 1], int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xDB:
            table, end = pos + 4, pos + 2 + length
            while table < end:
                precision, number = data[table] >> 4, data[table] & 0x0F
                if number == 0:
                    if precision != 0:
                        raise ValueError("the JPEG's luminance quantization table has 16-bit entries")
                    return [table + 1 + position for position in JPEG_STAMP_POSITIONS]
                table += 1 + 64 * (precision + 1)
        pos += 2 + length
    raise ValueError("the JPEG has no luminance quantization table before its scan")


class StampablePng(StampableImage):
    fmt = "png"
    mime = "image/png"

    def __init__(self, pixels: np.ndarray, compress_level: int) -> None:
        height, width, _ = pixels.shape
        rows = np.zeros((height, 1 + width * 3), dtype=np.uint8)  # filter byte 0 (None) per row
        rows[:, 1:] = pixels.reshape(height, width * 3)
        self._row0 = rows[0].tobytes()
        rest = rows[1:].tobytes()
        compressor = zlib.compressobj(compress_level, zlib.DEFLATED, -15)
        deflated = compressor.compress(rest) + compressor.flush()
        self._rest_adler, self._rest_length = zlib.adler32(rest), len(rest)
        self._prefix = PNG_SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        head, tail = self._ends(self._row0)
        middle = _chunk(b"IDAT", deflated)
        super().__init__(head + middle + tail, Resolution(width, height), len(head), len(head) + len(middle))

    def _ends(self, row0: bytes) -> tuple[bytes, bytes]:
        stored = b"\x00" + struct.pack("<HH", len(row0), len(row0) ^ 0xFFFF) + row0  # non-final stored block
        adler = adler32_combine(zlib.adler32(row0), self._rest_adler, self._rest_length)
        head = self._prefix + _chunk(b"IDAT", ZLIB_HEADER + stored)
        tail = _chunk(b"IDAT", adler.to_bytes(4, "big")) + _chunk(b"IEND", b"")
        return head, tail

    def _stamped_ends(self, stamp: int) -> tuple[bytes, bytes]:
        row0 = b"\x00" + stamp.to_bytes(PNG_STAMP_BYTES, "big") + self._row0[1 + PNG_STAMP_BYTES :]
        return self._ends(row0)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def adler32_combine(first: int, second: int, second_length: int) -> int:
    """Adler-32 of A+B from Adler-32(A), Adler-32(B) and len(B) (zlib's adler32_combine)."""
    s1a, s2a = first & 0xFFFF, first >> 16
    s1b, s2b = second & 0xFFFF, second >> 16
    s1 = (s1a + s1b - 1) % ADLER_MOD
    s2 = (s2a + s2b + second_length * (s1a - 1)) % ADLER_MOD
    return (s2 << 16) | s1


@dataclass(frozen=True)
class ImageSpec:
    resolution: Resolution
    fmt: str
    jpeg_quality: int = 90
    png_compress_level: int = 1

    @cached_property
    def label(self) -> str:
        return f"{self.resolution.label} {self.fmt}"


def make_image(spec: ImageSpec, seed: int, index: int) -> StampableImage:
    """Base image number `index` of this spec, reproducible from `seed`."""
    pixels = noise_pixels(spec.resolution, seed, index)
    if spec.fmt == "png":
        return StampablePng(pixels, spec.png_compress_level)
    if spec.fmt == "jpeg":
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=spec.jpeg_quality)
        return StampableJpeg(buffer.getvalue(), spec.resolution)
    raise ValueError(f"image format must be one of {', '.join(FORMATS)}, got {spec.fmt!r}")
