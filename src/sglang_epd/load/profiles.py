"""Workload profiles: YAML files in loadtests/profiles/, selected by name (`--profile kep-8img`) or path.

```yaml
description: what the workload stands for
seed: 1                     # base images and random choices are reproducible from it
images_per_request: 8       # or {uniform: [1, 8]} or {weights: {1: 2, 4: 1, 8: 1}}
resolution: 1080p           # or WIDTHxHEIGHT, or a weighted mix {1080p: 3, 720p: 1}
format: jpeg                # jpeg | png, or a weighted mix {jpeg: 3, png: 1}
jpeg_quality: 75
png_compress_level: 1
image_pool: 4               # base images per resolution and format, encoded once at start
cache_hit_ratio: 0.0        # share of images that repeat one of `hot_images` images
hot_images: 4
text_only_share: 0.0        # share of requests without images
prompt_tokens: 64           # approximate text length (4 characters per token)
max_tokens: 128
ignore_eos: true            # SGLang extension: always generate max_tokens
```
Only `description` is required; the rest have the defaults above.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Generic, TypeVar

from ..named_files import names_in, read_yaml, resolve
from .images import FORMATS, ImageSpec, Resolution

T = TypeVar("T")
MAX_IMAGES_PER_REQUEST = 64


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the profile, the key and what is allowed."""


@dataclass(frozen=True)
class Weighted(Generic[T]):
    """A fixed value or a weighted choice among values."""

    values: tuple[T, ...]
    weights: tuple[float, ...]

    def pick(self, rng: random.Random) -> T:
        if len(self.values) == 1:
            return self.values[0]
        return rng.choices(self.values, self.weights)[0]


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    source: Path | None = None
    seed: int = 0
    images_per_request: Weighted[int] = field(default_factory=lambda: Weighted((1,), (1.0,)))
    resolution: Weighted[Resolution] = field(
        default_factory=lambda: Weighted((Resolution(1920, 1080),), (1.0,))
    )
    format: Weighted[str] = field(default_factory=lambda: Weighted(("jpeg",), (1.0,)))
    jpeg_quality: int = 75
    png_compress_level: int = 1
    image_pool: int = 4
    cache_hit_ratio: float = 0.0
    hot_images: int = 4
    text_only_share: float = 0.0
    prompt_tokens: int = 64
    max_tokens: int = 128
    ignore_eos: bool = True

    def image_specs(self) -> list[ImageSpec]:
        """Every (resolution, format) this profile can send."""
        return [
            ImageSpec(resolution, fmt, self.jpeg_quality, self.png_compress_level)
            for resolution in self.resolution.values
            for fmt in self.format.values
        ]

    def describe(self) -> dict[str, Any]:
        """The profile as plain data (for summary.json): weighted choices as {value: weight}."""
        described = {f.name: getattr(self, f.name) for f in fields(self)}
        described["source"] = str(self.source) if self.source else None
        for key in ("images_per_request", "resolution", "format"):
            choice = described[key]
            described[key] = {
                str(getattr(value, "label", value)): weight
                for value, weight in zip(choice.values, choice.weights, strict=True)
            }
        return described


def profile_names(search_dirs: Sequence[Path]) -> list[str]:
    return names_in(search_dirs)


def load_profile(name_or_path: str, search_dirs: Sequence[Path]) -> Profile:
    """A profile by name (`<dir>/<name>.yaml` in the first search dir that has it) or by file path."""
    path = resolve(name_or_path, search_dirs, "profile", ProfileError)
    return parse_profile(path.stem, read_yaml(path, "profile", ProfileError), path)


def parse_profile(name: str, document: object, source: Path | None = None) -> Profile:
    where = f"profile {name}" + (f" ({source})" if source else "")
    if not isinstance(document, Mapping):
        raise ProfileError(f"{where}: expected a mapping of settings, got {type(document).__name__}")
    reader = _Reader(where, document)
    known = {f.name for f in fields(Profile)} - {"name", "source"}
    unknown = sorted(set(map(str, document)) - known)
    if unknown:
        raise ProfileError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}"
        )
    if "description" not in document:
        raise ProfileError(f"{where}: `description` is required (say what the workload stands for)")
    defaults = Profile(name=name, description="")
    profile = Profile(
        name=name,
        source=source,
        description=reader.text("description"),
        seed=reader.integer("seed", defaults.seed, 0, 2**63),
        images_per_request=reader.count("images_per_request", defaults.images_per_request),
        resolution=reader.weighted("resolution", defaults.resolution, _resolution),
        format=reader.weighted("format", defaults.format, _format),
        jpeg_quality=reader.integer("jpeg_quality", defaults.jpeg_quality, 30, 95),
        png_compress_level=reader.integer("png_compress_level", defaults.png_compress_level, 0, 9),
        image_pool=reader.integer("image_pool", defaults.image_pool, 1, 256),
        cache_hit_ratio=reader.share("cache_hit_ratio", defaults.cache_hit_ratio),
        hot_images=reader.integer("hot_images", defaults.hot_images, 1, 10_000),
        text_only_share=reader.share("text_only_share", defaults.text_only_share),
        prompt_tokens=reader.integer("prompt_tokens", defaults.prompt_tokens, 1, 1_000_000),
        max_tokens=reader.integer("max_tokens", defaults.max_tokens, 1, 1_000_000),
        ignore_eos=reader.boolean("ignore_eos", defaults.ignore_eos),
    )
    return profile


def _resolution(value: object) -> Resolution:
    return Resolution.parse(str(value))


def _format(value: object) -> str:
    fmt = str(value).lower()
    fmt = "jpeg" if fmt == "jpg" else fmt
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {value!r}")
    return fmt


@dataclass
class _Reader:
    where: str
    document: Mapping

    def _fail(self, key: str, message: str) -> ProfileError:
        return ProfileError(f"{self.where}: {key}: {message}")

    def text(self, key: str) -> str:
        value = self.document[key]
        if not isinstance(value, str) or not value.strip():
            raise self._fail(key, f"must be a non-empty string, got {value!r}")
        return value.strip()

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self.document.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self._fail(key, f"must be an integer from {low} to {high}, got {value!r}")
        return value

    def share(self, key: str, default: float) -> float:
        value = self.document.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise self._fail(key, f"must be a fraction from 0 to 1 (0.25 for a quarter), got {value!r}")
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.document.get(key, default)
        if not isinstance(value, bool):
            raise self._fail(key, f"must be true or false, got {value!r}")
        return value

    def weighted(self, key: str, default: Weighted, convert: Any) -> Weighted:
        value = self.document.get(key)
        if value is None:
            return default
        items = value.items() if isinstance(value, Mapping) else [(value, 1)]
        values, weights = [], []
        for raw, weight in items:
            try:
                values.append(convert(raw))
            except ValueError as exc:
                raise self._fail(key, str(exc)) from None
            if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
                raise self._fail(key, f"the weight of {raw!r} must be a positive number, got {weight!r}")
            weights.append(float(weight))
        if not values:
            raise self._fail(key, "needs at least one value")
        return Weighted(tuple(values), tuple(weights))

    def count(self, key: str, default: Weighted[int]) -> Weighted[int]:
        value = self.document.get(key)
        form = "an integer, {uniform: [LOW, HIGH]} or {weights: {COUNT: WEIGHT, ...}}"
        if value is None:
            return default
        if isinstance(value, Mapping) and set(value) == {"uniform"}:
            bounds = value["uniform"]
            if not (isinstance(bounds, list) and len(bounds) == 2 and all(_is_count(b) for b in bounds)):
                raise self._fail(
                    key,
                    f"uniform takes [LOW, HIGH] with 0 <= LOW <= HIGH <= {MAX_IMAGES_PER_REQUEST}, "
                    f"got {bounds!r}",
                )
            low, high = bounds
            if low > high:
                raise self._fail(key, f"uniform takes [LOW, HIGH] with LOW <= HIGH, got {bounds!r}")
            counts = tuple(range(low, high + 1))
            return Weighted(counts, tuple(1.0 for _ in counts))
        if isinstance(value, Mapping) and set(value) == {"weights"}:
            weights = value["weights"]
            if not isinstance(weights, Mapping) or not weights or not all(_is_count(c) for c in weights):
                raise self._fail(
                    key, f"weights maps image counts 0..{MAX_IMAGES_PER_REQUEST} to weights, got {weights!r}"
                )
            return _Reader(self.where, {key: weights}).weighted(key, default, int)
        if _is_count(value):
            return Weighted((value,), (1.0,))
        raise self._fail(key, f"must be {form} (counts 0..{MAX_IMAGES_PER_REQUEST}), got {value!r}")


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_IMAGES_PER_REQUEST
