"""Workload profiles: the shipped ones, lookup by name or path, and clear errors for bad ones."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from sglang_epd.load.images import Resolution
from sglang_epd.load.profiles import ProfileError, load_profile, parse_profile, profile_names
from sglang_epd.load.simrun import LOCUSTFILE

PROFILES_DIR = LOCUSTFILE.parent / "profiles"
SHIPPED = ("kep-8img", "mixed-1to8", "text-only", "cache-hot")


def test_every_shipped_profile_loads_by_name() -> None:
    assert set(SHIPPED) <= set(profile_names([PROFILES_DIR]))
    for name in SHIPPED:
        profile = load_profile(name, [PROFILES_DIR])
        assert profile.name == name and profile.description


def test_the_shipped_profiles_say_what_the_issue_asks() -> None:
    kep = load_profile("kep-8img", [PROFILES_DIR])
    assert kep.images_per_request.values == (8,)
    assert kep.resolution.values == (Resolution(1920, 1080),) and kep.format.values == ("jpeg",)
    assert kep.cache_hit_ratio == 0
    assert load_profile("mixed-1to8", [PROFILES_DIR]).images_per_request.values == tuple(range(1, 9))
    assert load_profile("text-only", [PROFILES_DIR]).text_only_share == 1
    assert load_profile("cache-hot", [PROFILES_DIR]).cache_hit_ratio > 0.5


def test_a_profile_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        "description: mine\nimages_per_request: {weights: {1: 3, 4: 1}}\nformat: {jpg: 1, png: 1}\n"
    )
    profile = load_profile(str(path), [])
    assert profile.name == "mine" and profile.source == path
    assert profile.images_per_request.values == (1, 4) and profile.format.values == ("jpeg", "png")


def test_weighted_choices_follow_their_weights() -> None:
    profile = parse_profile("w", {"description": "d", "images_per_request": {"weights": {1: 3, 8: 1}}})
    rng = random.Random(1)
    counts = Counter(profile.images_per_request.pick(rng) for _ in range(4000))
    assert counts[1] / 4000 == pytest.approx(0.75, abs=0.03)


def test_an_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ProfileError, match=r"no profile named 'nope'.*known profiles: cache-hot, kep-8img"):
        load_profile("nope", [PROFILES_DIR])


def test_a_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="does not exist"):
        load_profile(str(tmp_path / "missing.yaml"), [])
    bad = tmp_path / "bad.yaml"
    bad.write_text("description: [unclosed\n")
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_profile(str(bad), [])


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "`description` is required"),
        ({"description": "d", "images": 8}, "unknown key.*images.*known keys"),
        ({"description": "d", "images_per_request": -1}, "images_per_request: must be an integer"),
        ({"description": "d", "images_per_request": {"uniform": [8, 1]}}, "LOW <= HIGH"),
        ({"description": "d", "images_per_request": {"uniform": [1]}}, r"uniform takes \[LOW, HIGH\]"),
        ({"description": "d", "images_per_request": {"weights": {"x": 1}}}, "weights maps image counts"),
        ({"description": "d", "resolution": "huge"}, "resolution: resolution 'huge' is neither WIDTHxHEIGHT"),
        ({"description": "d", "resolution": "10x10"}, "each side must be 28..8192"),
        ({"description": "d", "format": "gif"}, "format must be one of jpeg, png"),
        ({"description": "d", "resolution": {"1080p": 0}}, "weight of '1080p' must be a positive number"),
        ({"description": "d", "cache_hit_ratio": 90}, "cache_hit_ratio: must be a fraction from 0 to 1"),
        ({"description": "d", "jpeg_quality": 100}, "jpeg_quality: must be an integer from 30 to 95"),
        ({"description": "d", "ignore_eos": "yes"}, "ignore_eos: must be true or false"),
        ({"description": ""}, "description: must be a non-empty string"),
    ],
)
def test_bad_profiles_name_the_key_and_what_is_allowed(settings: dict, message: str) -> None:
    with pytest.raises(ProfileError, match=message) as caught:
        parse_profile("bad", settings, Path("/profiles/bad.yaml"))
    assert "profile bad (/profiles/bad.yaml)" in str(caught.value)


def test_a_profile_must_be_a_mapping() -> None:
    with pytest.raises(ProfileError, match="expected a mapping"):
        parse_profile("bad", ["a", "list"])
