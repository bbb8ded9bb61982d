"""EPD scenarios that run against any deployment (`deploy.base.Deployment`: local processes or a cluster):
8-image TTFT at a given encoder count, encoder registration, and open-loop load while something happens to
the deployment (an encoder killed, encoders added or removed). Shared by the system tests and the bench.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from .deploy.base import Deployment
from .sim.client import ChatResult, chat_body, data_url, image_bytes, post_chat
from .sim.config import Settings
from .sim.encoder_registry import HEALTH_FAIL_THRESHOLD
from .topology import Topology
from .waiting import wait_for

WIDTH, HEIGHT, IMAGES = 1920, 1080, 8


class ImageSource:
    """Unique 1080p JPEGs, encoded before the timed path (every request's images differ, so an encoder
    cache cannot hide encoder work)."""

    def __init__(self, seed: int = 0) -> None:
        self._next = seed

    def request_images(self, count: int = IMAGES) -> list[str]:
        start, self._next = self._next, self._next + count
        return [data_url(image_bytes(WIDTH, HEIGHT, "JPEG", seed=start + i), "jpeg") for i in range(count)]


def served_model(topology: Topology) -> str:
    return next(r for r in topology.roles.values() if r.component != "router").flag("--served-model-name")[0]


async def ask(
    session: aiohttp.ClientSession, url: str, model: str, images: list[str], max_tokens: int = 8
) -> ChatResult:
    """One streamed image request; a transport error is a failed result (status 0), not an exception."""
    body = chat_body("Describe the images.", images, max_tokens=max_tokens, stream=True, model=model)
    try:
        return await post_chat(session, url, body, timeout=600)
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        # ValueError: a `data:` line that is not JSON (a stream cut in the middle of an event).
        return ChatResult(status=0, headers={"error": repr(error)})


def succeeded(result: ChatResult) -> bool:
    """A 200 is not enough: SGLang streams errors after a 200 (serving_chat.py)."""
    return result.status == 200 and result.done and result.client_ttft_ms is not None and result.error is None


def sequential_requests(url: str, model: str, source: ImageSource, requests: int) -> list[ChatResult]:
    """`requests` 8-image requests sent one after another (low load), after one warm-up request
    (connections, the router's choice of workers). Raises when any fails: a failure's TTFT means nothing."""

    async def run() -> list[ChatResult]:
        async with aiohttp.ClientSession() as session:
            await ask(session, url, model, source.request_images())
            return [await ask(session, url, model, source.request_images()) for _ in range(requests)]

    results = asyncio.run(run())
    failed = [r for r in results if not succeeded(r)]
    if failed:
        raise RuntimeError(
            f"{len(failed)} of {requests} requests to {url} failed, e.g. HTTP {failed[0].status} "
            f"{failed[0].error or failed[0].headers.get('error') or failed[0].body}"
        )
    return results


def median_ttft_ms(results: list[ChatResult]) -> float:
    return statistics.median(r.client_ttft_ms for r in results if r.client_ttft_ms is not None)


# Encoder registration (dynamic discovery) ---------------------------------------------------------------


def serving_encoder_urls(deployment: Deployment, topology: Topology) -> list[str]:
    """What every language server should list: one URL per running encoder pod (encoders register with
    their pod IP, from SGLANG_HOST_IP)."""
    encoder = topology.role("encoder")
    if encoder is None:
        return []
    return sorted(f"http://{pod.ip}:{encoder.port}" for pod in deployment.running_pods(encoder.name))


def registered_encoder_urls(deployment: Deployment, topology: Topology) -> dict[str, list[str]]:
    """Language server pod -> the encoder URLs its bootstrap server lists (`GET /list_encoder_urls`)."""
    listed = {}
    for language in topology.language_roles():
        port = int((language.flag("--encoder-bootstrap-port") or ["8997"])[0])
        for pod in deployment.running_pods(language.name):
            listed[pod.name] = sorted(
                # {"encoder_urls": [...]}: sglang srt/disaggregation/encoder/receiver.py
                json.loads(deployment.pod_http_get(pod.name, port, "/list_encoder_urls"))["encoder_urls"]
            )
    return listed


def wait_for_registration(deployment: Deployment, topology: Topology, timeout: float) -> list[str]:
    """Wait until every language server lists exactly the running encoders; return their URLs."""

    def settled() -> list[str] | None:
        expected = serving_encoder_urls(deployment, topology)
        known = registered_encoder_urls(deployment, topology)
        return expected if known and all(urls == expected for urls in known.values()) else None

    try:
        return wait_for(settled, timeout, "every prefill to list exactly the running encoders", interval=0.2)
    except TimeoutError as error:
        raise TimeoutError(
            f"{error}: running {serving_encoder_urls(deployment, topology)}, "
            f"listed {registered_encoder_urls(deployment, topology)}"
        ) from None


# Load while something happens -----------------------------------------------------------------------------


@dataclass
class Sent:
    at: float  # seconds since the load started
    result: ChatResult
    in_flight_at_action: bool = False

    @property
    def ok(self) -> bool:
        return succeeded(self.result)


@dataclass
class LoadUnderAction:
    """Open-loop requests around one action on the deployment, with what each request did."""

    action_at: float
    action_seconds: float  # how long the action itself took (a scale waits for Ready)
    sent: list[Sent] = field(default_factory=list)

    @property
    def failed(self) -> list[Sent]:
        return [s for s in self.sent if not s.ok]

    @property
    def in_flight_at_action(self) -> int:
        return sum(s.in_flight_at_action for s in self.sent)

    def failed_outside(self, window: float) -> list[Sent]:
        """Failures that neither were in flight at the action nor were sent within `window` s after it."""
        return [
            s
            for s in self.failed
            if not s.in_flight_at_action and not self.action_at <= s.at <= self.action_at + window
        ]

    @property
    def seconds_to_recover(self) -> float | None:
        """From the action to the send time of the last failed request; None when no request after the
        last failure succeeded (not recovered before the load ended)."""
        last = max((s.at for s in self.failed), default=self.action_at)
        if not any(s.ok and s.at > last for s in self.sent):
            return None
        return max(0.0, last - self.action_at)

    def ttft_p50_ms(self, before: bool) -> float | None:
        """Median TTFT of the successful requests sent before the action, or after both the action and the
        last failure."""
        settled = max([self.action_at + self.action_seconds, *(s.at for s in self.failed)])
        values = [
            s.result.client_ttft_ms
            for s in self.sent
            if s.ok
            and s.result.client_ttft_ms is not None
            and (s.at < self.action_at if before else s.at > settled)
        ]
        return statistics.median(values) if values else None

    def figures(self) -> dict[str, float | int | None]:
        return {
            "requests": len(self.sent),
            "failed": len(self.failed),
            "in_flight_at_action": self.in_flight_at_action,
            "action_at_s": self.action_at,
            "action_seconds": self.action_seconds,
            "seconds_to_recover": self.seconds_to_recover,
            "ttft_p50_before_ms": self.ttft_p50_ms(before=True),
            "ttft_p50_after_ms": self.ttft_p50_ms(before=False),
        }

    def summary(self) -> str:
        recovered = self.seconds_to_recover
        before, after = self.ttft_p50_ms(before=True), self.ttft_p50_ms(before=False)
        return (
            f"{len(self.sent)} requests, {len(self.failed)} failed, {self.in_flight_at_action} in flight "
            f"at the action (t={self.action_at:.1f} s, took {self.action_seconds:.1f} s); "
            + (
                "none failed"
                if not self.failed
                else f"recovered {recovered:.1f} s after it"
                if recovered is not None
                else "not recovered"
            )
            + (f"; TTFT p50 before {before:.0f} ms" if before is not None else "")
            + (f", after {after:.0f} ms" if after is not None else "")
        )


def load_under_action(
    url: str,
    model: str,
    source: ImageSource,
    *,
    duration: float,
    rate: float,
    action_at: float,
    action: Callable[[], object],
) -> LoadUnderAction:
    """Open-loop arrivals at `rate` requests/s for `duration` s (a failing server cannot slow them down);
    `action` runs in a thread `action_at` s in, so a slow one (a scale that waits for Ready) does not hold
    back the arrivals."""
    bodies = [source.request_images() for _ in range(int(duration * rate))]  # before the timed path
    return asyncio.run(_load_under_action(url, model, bodies, rate, action_at, action))


async def _load_under_action(
    url: str, model: str, bodies: list[list[str]], rate: float, action_at: float, action: Callable[[], object]
) -> LoadUnderAction:
    run = LoadUnderAction(action_at=action_at, action_seconds=0.0)
    in_flight: set[int] = set()
    sent: dict[int, Sent] = {}
    start = time.monotonic()

    async def one(session: aiohttp.ClientSession, index: int, images: list[str]) -> None:
        at = time.monotonic() - start
        in_flight.add(index)
        result = await ask(session, url, model, images)
        in_flight.discard(index)
        sent[index] = Sent(at, result)

    async def act() -> set[int]:
        await asyncio.sleep(max(0.0, start + action_at - time.monotonic()))
        caught = set(in_flight)
        began = time.monotonic()
        await asyncio.to_thread(action)
        run.action_seconds = time.monotonic() - began
        return caught

    async with aiohttp.ClientSession() as session:
        actor = asyncio.create_task(act())
        tasks = []
        for index, images in enumerate(bodies):
            await asyncio.sleep(max(0.0, start + index / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one(session, index, images)))
        await asyncio.gather(*tasks)
        caught = await actor
    for index in caught:
        sent[index].in_flight_at_action = True
    run.sent = [sent[i] for i in sorted(sent)]
    return run


@dataclass
class ScaleStep:
    before: int
    after: int
    run: LoadUnderAction
    registered: list[str]  # encoder URLs every language server listed once the step settled


def encoders_scaled_under_load(
    deployment: Deployment,
    topology: Topology,
    counts: list[int],
    *,
    source: ImageSource,
    duration: float,
    rate: float,
    action_at: float,
    registration_timeout: float,
) -> list[ScaleStep]:
    """Scale the encoder role through `counts` (e.g. [2, 4, 1]), each step under its own open-loop 8-image
    load, as an autoscaler would. Every step starts and ends with the registration settled."""
    encoder = topology.role("encoder")
    if encoder is None:
        raise ValueError("the topology has no encoder role to scale")
    if len(deployment.running_pods(encoder.name)) != counts[0]:
        deployment.scale(encoder.name, counts[0])
    wait_for_registration(deployment, topology, registration_timeout)
    steps = []
    for before, after in itertools.pairwise(counts):
        run = load_under_action(
            deployment.router_url,
            served_model(topology),
            source,
            duration=duration,
            rate=rate,
            action_at=action_at,
            action=lambda count=after: deployment.scale(encoder.name, count),
        )
        steps.append(
            ScaleStep(before, after, run, wait_for_registration(deployment, topology, registration_timeout))
        )
    return steps


def eviction_window_s(topology: Topology) -> float:
    """How long after an encoder dies a language server may still send it work: until it has failed
    enough health checks to be evicted. SGLang's loop (srt/disaggregation/encoder/receiver.py,
    EncoderBootstrapServer._health_check_loop) sleeps the interval, then probes with the timeout, and evicts
    on the 3rd failure in a row, so at most 3 x (interval + timeout) pass. The settings are the ones the
    chart renders on the language role (encoderDiscovery.healthCheck), SGLang's defaults otherwise."""
    language = next(iter(topology.language_roles()), None)
    env = language.container.get("env", []) if language else []
    settings = Settings.from_env({e["name"]: str(e.get("value", "")) for e in env if "value" in e})
    return HEALTH_FAIL_THRESHOLD * (settings.encoder_health_interval + settings.encoder_health_timeout)
