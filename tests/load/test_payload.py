"""Request bodies: valid JSON, counts and formats from the profile, unique images unless a cache hit
is asked for, reproducible, bounded memory."""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter

import pytest

from sglang_epd.load.payload import ImagePool, PreparedRequest, RequestFactory
from sglang_epd.load.profiles import Profile, parse_profile


def profile(**settings: object) -> Profile:
    return parse_profile("p", {"description": "d", "resolution": "96x64", "image_pool": 2, **settings})


def body(request: PreparedRequest) -> dict:
    raw = b"".join(request.pieces)
    assert len(raw) == request.content_length
    return json.loads(raw)


def image_hashes(request: PreparedRequest) -> list[str]:
    parts = body(request)["messages"][0]["content"]
    urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    return [hashlib.sha256(base64.b64decode(url.split(",", 1)[1])).hexdigest() for url in urls]


def test_the_body_is_an_openai_streaming_chat_request() -> None:
    request = RequestFactory(profile(images_per_request=3, max_tokens=17, prompt_tokens=10), "qwen").next()
    document = body(request)
    assert document["model"] == "qwen" and document["max_tokens"] == 17
    assert document["stream"] is True and document["stream_options"] == {"include_usage": True}
    assert document["ignore_eos"] is True
    content = document["messages"][0]["content"]
    assert [part["type"] for part in content] == ["image_url"] * 3 + ["text"]
    assert content[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert len(content[-1]["text"]) == 40
    assert (request.images, request.resolution, request.image_format) == (3, "96x64", "jpeg")


def test_mixes_follow_the_profile() -> None:
    factory = RequestFactory(
        profile(
            images_per_request={"uniform": [1, 3]},
            resolution={"96x64": 1, "64x96": 1},
            format={"jpeg": 1, "png": 1},
        ),
        "m",
    )
    requests = [factory.next() for _ in range(60)]
    assert {r.images for r in requests} == {1, 2, 3}
    assert "mixed" in {r.resolution for r in requests} and "mixed" in {r.image_format for r in requests}
    assert any(url.startswith("data:image/png") for r in requests for url in _urls(r))


def _urls(request: PreparedRequest) -> list[str]:
    return [
        p["image_url"]["url"] for p in body(request)["messages"][0]["content"] if p["type"] == "image_url"
    ]


def test_every_image_is_unique_by_default() -> None:
    factory = RequestFactory(profile(images_per_request=8), "m")
    hashes = [h for _ in range(25) for h in image_hashes(factory.next())]
    assert len(hashes) == 200 and len(set(hashes)) == 200
    assert (
        len(factory.pool.images[next(iter(factory.pool.images))]) == 2
    )  # memory: the pool, not the requests


def test_workers_and_salts_never_share_fresh_images() -> None:
    shared = profile(images_per_request=4)
    pool = ImagePool(shared)
    seen = [
        set(image_hashes(RequestFactory(shared, "m", worker=worker, salt=salt, pool=pool).next()))
        for worker, salt in [(0, 0), (1, 0), (0, 1)]
    ]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])


def test_the_same_seed_gives_the_same_requests() -> None:
    first, second = (RequestFactory(profile(images_per_request={"uniform": [1, 4]}), "m") for _ in range(2))
    for _ in range(5):
        assert b"".join(first.next().pieces) == b"".join(second.next().pieces)


def test_cache_hits_repeat_the_hot_images_at_the_asked_ratio() -> None:
    factory = RequestFactory(profile(images_per_request=4, cache_hit_ratio=0.5, hot_images=3), "m", worker=2)
    requests = [factory.next() for _ in range(200)]
    hits = sum(r.cache_hits for r in requests)
    assert hits / 800 == pytest.approx(0.5, abs=0.06)
    counts = Counter(h for r in requests for h in image_hashes(r))
    repeated = {h for h, n in counts.items() if n > 1}
    assert len(repeated) == 3  # the hot set; every other image appears once
    assert sum(counts[h] for h in repeated) == hits
    other_worker = RequestFactory(
        profile(images_per_request=4, cache_hit_ratio=1.0, hot_images=3), "m", worker=9
    )
    assert set(image_hashes(other_worker.next())) <= repeated  # hot images are the same on every worker


def test_text_only_share() -> None:
    factory = RequestFactory(profile(images_per_request=2, text_only_share=0.3), "m")
    requests = [factory.next() for _ in range(400)]
    text_only = [r for r in requests if r.images == 0]
    assert len(text_only) / 400 == pytest.approx(0.3, abs=0.06)
    assert all(r.resolution == "" and len(body(r)["messages"][0]["content"]) == 1 for r in text_only)


def test_prompts_differ_per_request() -> None:
    factory = RequestFactory(profile(images_per_request=0), "m")
    texts = {body(factory.next())["messages"][0]["content"][0]["text"] for _ in range(5)}
    assert len(texts) == 5


def test_bad_worker_or_salt() -> None:
    with pytest.raises(ValueError, match="salt must be"):
        RequestFactory(profile(), "m", salt=2**31)
    with pytest.raises(ValueError, match="worker index must be"):
        RequestFactory(profile(), "m", worker=-1)
