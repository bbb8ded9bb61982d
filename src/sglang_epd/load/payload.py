"""Chat-completion request bodies, built before the timed path as a list of byte pieces.

The base images are encoded once (`ImagePool`); each image in a request is a stamped variant of one of
them (see `images`), so every image is unique unless the profile's `cache_hit_ratio` asks for a repeat.
A fresh image's stamp packs (run salt, worker index, per-process counter), so images never repeat within
a process, across Locust workers, or across runs with different salts. A repeated ("hot") image's stamp
is just its number below `hot_images`: the same bytes on every worker, as a cache-friendly workload has.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from .images import ImageSpec, StampableImage, make_image
from .profiles import Profile

FRESH_FLAG = 1 << 94
MAX_SALT = (1 << 30) - 1
MAX_WORKER = (1 << 16) - 1
MAX_COUNTER = (1 << 48) - 1
CHARS_PER_TOKEN = 4  # the simulator's and a rough English tokenizer's ratio
WORDS = (
    *("describe", "compare", "the", "image", "images", "scene", "objects", "colours", "shapes", "detail"),
    *("left", "right", "top", "bottom", "background", "foreground", "count", "list", "every", "notable"),
    *("region", "texture", "light", "shadow", "pattern", "edge", "corner", "centre", "difference"),
    *("similar", "between", "first", "second", "third", "last", "each", "visible"),
)


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    pieces: tuple[bytes, ...]  # the JSON body, in order; large base64 middles are shared, not copied
    content_length: int
    images: int
    resolution: str
    image_format: str
    cache_hits: int
    max_tokens: int
    prompt_chars: int


class ImagePool:
    """`profile.image_pool` base images per (resolution, format), encoded up front: memory is bounded by
    the pool, not by the number of requests."""

    def __init__(self, profile: Profile) -> None:
        self.images: dict[ImageSpec, list[StampableImage]] = {
            spec: [make_image(spec, profile.seed, index) for index in range(profile.image_pool)]
            for spec in profile.image_specs()
        }

    @property
    def encoded_bytes(self) -> int:
        return sum(
            image.encoded_size + len(image.middle_b64) for pool in self.images.values() for image in pool
        )


class RequestFactory:
    def __init__(
        self, profile: Profile, model: str, *, worker: int = 0, salt: int = 0, pool: ImagePool | None = None
    ) -> None:
        if not 0 <= salt <= MAX_SALT:
            raise ValueError(f"the image salt must be 0..{MAX_SALT}, got {salt}")
        if not 0 <= worker <= MAX_WORKER:
            raise ValueError(f"the worker index must be 0..{MAX_WORKER}, got {worker}")
        self.profile = profile
        self.pool = pool or ImagePool(profile)
        self.rng = random.Random(f"{profile.seed}/{worker}")
        self._specs = {(spec.resolution, spec.fmt): spec for spec in self.pool.images}
        self._fresh_base = FRESH_FLAG | (salt << 64) | (worker << 48)
        self._counter = 0
        self._requests = 0
        self._worker = worker
        self._prompt_chars = profile.prompt_tokens * CHARS_PER_TOKEN
        self._filler = " ".join(self.rng.choice(WORDS) for _ in range(self._prompt_chars // 3 + 1))
        options = {"model": model, "stream": True, "stream_options": {"include_usage": True}}
        options["max_tokens"] = profile.max_tokens
        if profile.ignore_eos:
            options["ignore_eos"] = True
        self._prefix = json.dumps(options, separators=(",", ":"))[:-1].encode() + (
            b',"messages":[{"role":"user","content":['
        )

    def next(self) -> PreparedRequest:
        profile, rng = self.profile, self.rng
        self._requests += 1
        count = 0 if rng.random() < profile.text_only_share else profile.images_per_request.pick(rng)
        pieces: list[bytes] = []
        small = bytearray(self._prefix)
        labels: set[str] = set()
        formats: set[str] = set()
        hits = 0
        for _ in range(count):
            spec = self._specs[(profile.resolution.pick(rng), profile.format.pick(rng))]
            stamp, base = self._stamp(rng)
            hits += stamp < FRESH_FLAG
            image = self.pool.images[spec][base % len(self.pool.images[spec])]
            head, middle, tail = image.b64_parts(stamp)
            small += (
                b'{"type":"image_url","image_url":{"url":"data:' + image.mime.encode() + b";base64," + head
            )
            pieces += [bytes(small), middle]
            small = bytearray(tail + b'"}},')
            labels.add(spec.resolution.label)
            formats.add(spec.fmt)
        text = f"Request {self._worker}-{self._requests}: {self._filler}"[: self._prompt_chars]
        small += b'{"type":"text","text":' + json.dumps(text).encode() + b"}]}]}"
        pieces.append(bytes(small))
        return PreparedRequest(
            pieces=tuple(pieces),
            content_length=sum(len(p) for p in pieces),
            images=count,
            resolution=_one_or_mixed(labels),
            image_format=_one_or_mixed(formats),
            cache_hits=hits,
            max_tokens=profile.max_tokens,
            prompt_chars=len(text),
        )

    def _stamp(self, rng: random.Random) -> tuple[int, int]:
        """(stamp, base image number) of the next image."""
        if self.profile.cache_hit_ratio and rng.random() < self.profile.cache_hit_ratio:
            hot = rng.randrange(self.profile.hot_images)
            return hot, hot
        if self._counter > MAX_COUNTER:
            raise RuntimeError("this process has used up its 2**48 unique image stamps")
        counter = self._counter
        self._counter += 1
        return self._fresh_base | counter, counter


def _one_or_mixed(values: set[str]) -> str:
    if not values:
        return ""
    return values.pop() if len(values) == 1 else "mixed"
