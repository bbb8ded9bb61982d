"""Reading a chat request's prompt: text length and images (their size and content hash only).

Pillow opens an image lazily, so only the header is read for its size; the pixels are never decoded.
The content hash stands in for SGLang's multimodal cache key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from .cost import CostModel
from .errors import SimRequestError


@dataclass(frozen=True)
class ImageInfo:
    index: int  # position of the image in the request, 0-based
    width: int
    height: int
    hash: str
    vision_tokens: int

    def wire(self) -> dict:
        """The fields the language server sends to an encoder's /encode."""
        return {"index": self.index, "width": self.width, "height": self.height, "hash": self.hash}


@dataclass(frozen=True)
class Prompt:
    text_chars: int
    text_tokens: int
    images: tuple[ImageInfo, ...]

    @property
    def vision_tokens(self) -> int:
        return sum(image.vision_tokens for image in self.images)

    @property
    def prompt_tokens(self) -> int:
        return self.text_tokens + self.vision_tokens


def _image_url(part: dict, position: str) -> str:
    image_url = part.get("image_url")
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str) or not url:
        raise SimRequestError(f"{position}: image_url part without a url")
    return url


def decode_image(url: str, index: int, cost: CostModel) -> ImageInfo:
    """An image from a `data:image/...;base64,...` URL: its header's size and its bytes' hash."""
    if url.startswith(("http://", "https://")):
        raise SimRequestError(
            f"image {index}: {url[:80]!r} is an http(s) URL; the simulator has no network and cannot fetch "
            "images (in SGLang EPD the encoder pods fetch them): send the image inline as a data: URL"
        )
    if not url.startswith("data:"):
        raise SimRequestError(f"image {index}: only data: URLs are supported by the simulator")
    header, sep, payload = url.partition(",")
    if not sep or ";base64" not in header:
        raise SimRequestError(f"image {index}: expected data:image/<format>;base64,<data>")
    try:
        data = base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise SimRequestError(f"image {index}: invalid base64 data ({exc})") from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError) as exc:
        raise SimRequestError(f"image {index}: not a readable image ({exc})") from None
    try:
        tokens = cost.vision_tokens(width, height)
    except ValueError as exc:
        raise SimRequestError(f"image {index}: {exc}") from None
    return ImageInfo(index, width, height, hashlib.sha256(data).hexdigest(), tokens)


def read_prompt(messages: Sequence, cost: CostModel) -> Prompt:
    """Text characters and images of OpenAI chat `messages` (string content or content parts)."""
    if not isinstance(messages, list) or not messages:
        raise SimRequestError("messages must be a non-empty list")
    chars = 0
    image_urls: list[str] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise SimRequestError(f"messages[{i}] must be an object")
        content = message.get("content")
        if content is None or isinstance(content, str):
            chars += len(content or "")
            continue
        if not isinstance(content, list):
            raise SimRequestError(f"messages[{i}].content must be a string or a list of parts")
        for j, part in enumerate(content):
            position = f"messages[{i}].content[{j}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                chars += len(part.get("text") or "")
            elif kind == "image_url":
                image_urls.append(_image_url(part, position))
            else:
                raise SimRequestError(f"{position}: content part type {kind!r} is not simulated")
    images = tuple(decode_image(url, index, cost) for index, url in enumerate(image_urls))
    return Prompt(chars, cost.text_tokens(chars), images)
