"""Test images: sizes and formats, reproducible from the seed, unique pixels per stamp, cheap base64."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import zlib

import numpy as np
import pytest
from PIL import Image

from sglang_epd.load.images import (
    MAX_STAMP,
    ImageSpec,
    Resolution,
    StampableImage,
    adler32_combine,
    make_image,
)

SPECS = [ImageSpec(Resolution(320, 240), "jpeg"), ImageSpec(Resolution(200, 120), "png")]


@pytest.fixture(scope="module", params=SPECS, ids=lambda spec: spec.fmt)
def image(request: pytest.FixtureRequest) -> StampableImage:
    return make_image(request.param, seed=5, index=0)


def decode(data: bytes) -> Image.Image:
    decoded = Image.open(io.BytesIO(data))
    decoded.load()
    return decoded


def pixel_hash(data: bytes) -> str:
    return hashlib.sha256(np.asarray(decode(data)).tobytes()).hexdigest()


def test_size_and_format(image: StampableImage) -> None:
    decoded = decode(image.encode(123))
    assert decoded.size == (image.resolution.width, image.resolution.height)
    assert decoded.format == image.fmt.upper()
    assert decoded.mode == "RGB"


def test_reproducible_from_the_seed(image: StampableImage) -> None:
    spec = ImageSpec(image.resolution, image.fmt)
    assert make_image(spec, seed=5, index=0).encode(7) == image.encode(7)
    assert make_image(spec, seed=6, index=0).encode(7) != image.encode(7)
    assert make_image(spec, seed=5, index=1).encode(7) != image.encode(7)


def test_every_stamp_changes_the_decoded_pixels(image: StampableImage) -> None:
    stamps = [0, 1, 2, 254, 255, 256, 2**40 + 3, 2**94 + 5, MAX_STAMP]
    assert len({pixel_hash(image.encode(stamp)) for stamp in stamps}) == len(stamps)
    assert len({hashlib.sha256(image.encode(stamp)).digest() for stamp in stamps}) == len(stamps)


def test_same_stamp_same_bytes(image: StampableImage) -> None:
    assert image.encode(42) == image.encode(42)


def test_base64_parts_are_the_base64_of_the_stamped_file(image: StampableImage) -> None:
    for stamp in (0, 99, MAX_STAMP):
        head, middle, tail = image.b64_parts(stamp)
        assert head + middle + tail == base64.b64encode(image.encode(stamp))
        assert middle is image.middle_b64  # shared, never copied per request


def test_a_stamp_touches_only_the_ends_of_the_file(image: StampableImage) -> None:
    head, middle, tail = image.b64_parts(1)
    assert len(head) + len(tail) < 0.2 * len(middle)


def test_png_checksums_stay_valid() -> None:
    png = make_image(SPECS[1], seed=1, index=0).encode(2**90)
    # Pillow checks chunk CRCs; zlib checks the Adler-32 while inflating the IDAT data.
    decode(png)
    chunks, pos = [], 8
    while pos < len(png):
        length = int.from_bytes(png[pos : pos + 4], "big")
        chunks.append((png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    raw = zlib.decompress(b"".join(data for kind, data in chunks if kind == b"IDAT"))
    assert len(raw) == 120 * (1 + 200 * 3)


def test_out_of_range_stamps_are_refused(image: StampableImage) -> None:
    with pytest.raises(ValueError, match="stamp must be"):
        image.encode(MAX_STAMP + 1)


def test_adler32_combine_matches_zlib() -> None:
    first, second = os.urandom(1000), os.urandom(70_001)
    combined = adler32_combine(zlib.adler32(first), zlib.adler32(second), len(second))
    assert combined == zlib.adler32(first + second)


@pytest.mark.parametrize(
    ("text", "size"), [("1080p", (1920, 1080)), ("4k", (3840, 2160)), ("640x480", (640, 480))]
)
def test_resolutions(text: str, size: tuple[int, int]) -> None:
    assert (Resolution.parse(text).width, Resolution.parse(text).height) == size
