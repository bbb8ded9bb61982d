"""The Locust side: options, the user, the ramp shape, sample aggregation and the verdict.

Importing this module registers its event listeners on `locust.events` (and, through Locust, gevent's
monkey patching): import it only from a locustfile (`loadtests/locustfile.py`) or a Locust process.

Processes. A local run generates and records in one process. Distributed, the workers generate: each
sends its raw samples to the master every second as a custom message (`sglang_epd_samples`) with the
start times of its requests still in flight; at the end the master asks every worker to drain
(`sglang_epd_drain`: stop sending, wait for the requests in flight) and waits for each worker's final
batch before it evaluates the SLOs. Only the master (or the local process) writes the results.

Load. Closed loop (default): each of the -u users sends its next request when the previous answer is
complete. Open loop (`--rate R`): each user plans arrival times at R/users per second and starts every
request on its own greenlet when it is due, so a slow server never slows the arrivals. Step ramp
(`--ramp STEP_RATE,STEP_SECONDS[,MAX_STEPS]`): the `SloRampShape` adds one open-loop user of STEP_RATE
per step and stops at the first step that misses the SLO, reporting the highest rate that met it.
"""

from __future__ import annotations

import datetime
import itertools
import logging
import random
import sys
import time
from pathlib import Path
from typing import Any

import gevent
import gevent.event
from gevent.pool import Group
from locust import LoadTestShape, User, constant, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from ..reports.plots import write_run_plots
from ..reports.report import SUMMARY_FILE, build_summary, format_table, write_json
from . import samples as kinds
from .arrivals import ArrivalSchedule
from .chat_client import new_sample, run_chat
from .httpstream import HttpClient, Target, TransportError
from .locust_options import add_options
from .meters import CpuMeter, LoopLagMonitor
from .payload import MAX_SALT, PreparedRequest, RequestFactory
from .profiles import Profile, ProfileError, load_profile
from .ramp import RampError, RampPlan, RampTracker
from .samples import SAMPLES_FILE, RequestSample, SampleLog
from .slo import ExitCode, SLOError, SLOSpec, Verdict, decide, evaluate

log = logging.getLogger("sglang_epd.load")

MSG_SAMPLES = "sglang_epd_samples"
MSG_DRAIN = "sglang_epd_drain"
MSG_FATAL = "sglang_epd_fatal"
# Set on the master's options at the start of a run: Locust forwards such keys to the workers (but not
# its own options such as --profile).
RATE_PER_USER = "sglang_epd_rate_per_user"
PROFILE_NAME = "sglang_epd_profile"
DEFAULT_PROFILE = "kep-8img"
FLUSH_INTERVAL_S = 1.0
PREFLIGHT_TIMEOUT_S = 10.0
FINAL_BATCH_MARGIN_S = 15.0
IDLE_USER_SLEEP_S = 0.5
RAMP_SPAWN_RATE = 100.0  # a step's new user starts at once (Locust warns above 100)

_profiles_dir: Path | None = None
SESSION: LoadSession | None = None


def configure(profiles_dir: Path) -> None:
    """Called by the locustfile: where profiles are found by name (unless --profiles-dir says otherwise)."""
    global _profiles_dir
    _profiles_dir = profiles_dir


class ConfigError(ValueError):
    pass


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    add_options(parser, DEFAULT_PROFILE)


def _role(environment: Environment) -> str:
    if isinstance(environment.runner, MasterRunner):
        return "master"
    if isinstance(environment.runner, WorkerRunner):
        return "worker"
    return "local"


class LoadSession:
    """This process's part of the load test: configuration, request generation (local and workers),
    sample collection and the verdict (local and master)."""

    def __init__(self, environment: Environment) -> None:
        self.env = environment
        self.role = _role(environment)
        self.profile: Profile | None = None
        self.spec = SLOSpec()
        self.tracker: RampTracker | None = None
        self.fatal: str | None = None
        self.verdict: Verdict | None = None
        self.results_dir: Path | None = None
        self.run_number = 0
        self.started_at = ""
        self.log: SampleLog | None = None
        self.worker_reports: dict[str, dict[str, Any]] = {}
        # generating processes
        self.factory: RequestFactory | None = None
        self.client: HttpClient | None = None
        self.rate_per_user = 0.0
        self.worker_index = 0
        self.stopping = True
        self.in_flight: dict[str, float] = {}
        self._idle = gevent.event.Event()
        self._idle.set()
        self.requests = Group()
        self.outbox: list[dict] = []
        self.generated = 0
        self.cpu = CpuMeter()
        self.loop_lag = LoopLagMonitor()
        self._ids = itertools.count(1)
        self._rng_seeds = itertools.count(1)
        self._flusher: gevent.Greenlet | None = None

    @property
    def options(self) -> Any:
        return self.env.parsed_options

    # Configuration ------------------------------------------------------------------------------------

    def configure(self) -> None:
        """Read and check the options; raises ConfigError with a message for people."""
        options = self.options
        dirs = [Path(options.profiles_dir)] if options.profiles_dir else []
        dirs += [_profiles_dir] if _profiles_dir else []
        try:
            name = getattr(options, PROFILE_NAME, None) if self.role == "worker" else None
            self.profile = load_profile(name or options.profile or DEFAULT_PROFILE, dirs)
            self.spec = SLOSpec.parse(options.slo or [])
            plan = RampPlan.parse(options.ramp) if options.ramp else None
        except (ProfileError, SLOError, RampError) as exc:
            raise ConfigError(str(exc)) from None
        if plan and options.rate:
            raise ConfigError("--rate and --ramp exclude each other: the ramp sets the rate step by step")
        if options.rate < 0 or options.max_in_flight < 1 or options.request_timeout <= 0:
            raise ConfigError("--rate must be >= 0, --max-in-flight >= 1 and --request-timeout > 0")
        if options.image_salt > MAX_SALT:
            raise ConfigError(f"--image-salt must be 0..{MAX_SALT} (or -1 for a random salt)")
        if self.role != "worker":
            if not self.env.host:
                raise ConfigError("no target: pass --host http://ROUTER:PORT (the sglang router's URL)")
            try:
                Target.parse(self.env.host)
            except ValueError as exc:
                raise ConfigError(f"--host: {exc}") from None
        self.tracker = RampTracker(plan, self.spec) if plan else None

    # Start ----------------------------------------------------------------------------------------------

    def on_test_start(self) -> None:
        self.run_number += 1
        self.verdict = None
        self.started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        if self.role == "worker":
            self._start_worker()
            return
        self.fatal = None
        try:
            self.configure()
            self._prepare_run()
            self._preflight()
        except ConfigError as exc:
            self.fail(str(exc))
        if self.role == "local" and not self.fatal:
            self._start_generating(worker_index=0)

    def _prepare_run(self) -> None:
        options = self.options
        if options.image_salt < 0:
            options.image_salt = random.SystemRandom().randrange(MAX_SALT + 1)
        setattr(options, PROFILE_NAME, options.profile or DEFAULT_PROFILE)
        users = max(1, self.env.runner.target_user_count or 1)
        if self.tracker:
            setattr(options, RATE_PER_USER, self.tracker.plan.step_rate)
        else:
            setattr(options, RATE_PER_USER, options.rate / users if options.rate else 0.0)
        base = Path(
            options.results_dir or f"results/loadtest-{self.profile.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        )
        if not options.results_dir:
            options.results_dir = str(base)  # a web-UI session's later runs go into run-N/ below it
        self.results_dir = base if self.run_number == 1 else base / f"run-{self.run_number}"
        self.log = SampleLog(self.results_dir / SAMPLES_FILE)
        self.worker_reports = {}
        if self.tracker:
            self.tracker = RampTracker(self.tracker.plan, self.spec)

    def _preflight(self) -> None:
        """Reach the host before the load starts, and learn the model name if none was given."""
        client = HttpClient(
            self.env.host, timeout=PREFLIGHT_TIMEOUT_S, connect_timeout=PREFLIGHT_TIMEOUT_S / 2
        )
        try:
            status, body = client.get_json("/v1/models")
        except TransportError as exc:
            raise ConfigError(
                f"cannot reach the target {self.env.host}: {exc.detail}. "
                "Check --host (the sglang router's URL) and that the deployment is up."
            ) from None
        finally:
            client.close()
        if self.options.model:
            return
        models = body.get("data") if status == 200 and isinstance(body, dict) else None
        if models and isinstance(models[0], dict) and models[0].get("id"):
            self.options.model = models[0]["id"]
        else:
            self.options.model = "default"
            log.warning(
                "GET %s/v1/models answered %s; sending model 'default' (set --model)", self.env.host, status
            )

    def _start_worker(self) -> None:
        try:
            self.configure()
        except ConfigError as exc:
            message = f"worker {self.env.runner.worker_index}: {exc}"
            log.error(message)
            self.env.runner.send_message(MSG_FATAL, {"message": message})
            return
        self._start_generating(worker_index=self.env.runner.worker_index)
        if self._flusher is None or self._flusher.dead:
            self._flusher = gevent.spawn(self._flush_loop)

    def _start_generating(self, worker_index: int) -> None:
        """Encode the image pool now, before any request: this is the slow part of a start."""
        assert self.profile is not None
        options = self.options
        self.worker_index = worker_index
        self.rate_per_user = float(getattr(options, RATE_PER_USER, 0.0) or 0.0)
        if self.factory is None or self.factory.profile != self.profile:
            self.factory = RequestFactory(
                self.profile, options.model or "default", worker=worker_index, salt=options.image_salt
            )
        self.client = HttpClient(self.env.host, timeout=options.request_timeout)
        self.generated = 0
        self.outbox = []
        self.stopping = False
        self.cpu.start()
        self.loop_lag.start()

    def fail(self, message: str) -> None:
        """Could not run: say why, and end the run."""
        if self.fatal:
            return
        self.fatal = message
        log.error("could not run: %s", message)
        gevent.spawn_later(0, self.env.runner.quit)

    # Requests -------------------------------------------------------------------------------------------

    def user_loop(self) -> None:
        if self.stopping or self.factory is None:
            gevent.sleep(IDLE_USER_SLEEP_S)  # nothing to do until Locust stops this user
            return
        if self.rate_per_user > 0:
            self._open_loop()
        else:
            self.run_request(self.factory.next())

    def _open_loop(self) -> None:
        assert self.factory is not None
        schedule = ArrivalSchedule(
            self.rate_per_user,
            self.options.arrivals,
            random.Random(f"{self.worker_index}/{next(self._rng_seeds)}"),
            time.perf_counter(),
        )
        while not self.stopping:
            prepared = self.factory.next()  # built before its time comes, not on the timed path
            due = schedule.next()
            delay = due - time.perf_counter()
            if delay > 0:
                gevent.sleep(delay)
            if self.stopping:
                return
            if len(self.in_flight) >= self.options.max_in_flight:
                self._drop(prepared, due)
            else:
                self.requests.spawn(self.run_request, prepared, due)

    def run_request(self, prepared: PreparedRequest, due: float | None = None) -> None:
        assert self.client is not None
        request_id = f"{self.worker_index}-{next(self._ids)}"
        sample = new_sample(prepared, request_id, self.worker_index)
        if due is not None:
            lag = time.perf_counter() - due
            sample.lag_ms, sample.scheduled = lag * 1000, time.time() - lag
        self.in_flight[request_id] = time.time()
        self._idle.clear()
        try:
            run_chat(self.client, prepared, sample)
        except gevent.GreenletExit:
            sample.error, sample.error_detail = (
                kinds.CANCELLED,
                "the test ended before the answer was complete",
            )
            raise
        finally:
            del self.in_flight[request_id]
            if not self.in_flight:
                self._idle.set()
            self.record(sample)

    def _drop(self, prepared: PreparedRequest, due: float) -> None:
        sample = new_sample(prepared, f"{self.worker_index}-{next(self._ids)}", self.worker_index)
        sample.scheduled = sample.start = time.time() - (time.perf_counter() - due)
        sample.error = kinds.CLIENT_OVERLOAD
        sample.error_detail = (
            f"{self.options.max_in_flight} requests were in flight in this process: raise --max-in-flight or "
            "add Locust workers"
        )
        self.record(sample)

    def record(self, sample: RequestSample) -> None:
        self.generated += 1
        record = sample.to_dict()
        if sample.error != kinds.CANCELLED:
            self._fire_locust_events(sample)
        if self.role == "worker":
            self.outbox.append(record)
        elif self.log is not None:
            self.log.add([record])

    def _fire_locust_events(self, sample: RequestSample) -> None:
        fire = self.env.events.request.fire
        name = f"{sample.images} images"
        failure = None if sample.ok else RuntimeError(f"{sample.error}: {sample.error_detail}")
        fire(
            request_type="E2E",
            name=name,
            response_time=sample.e2e_ms or 0.0,
            response_length=sample.response_bytes,
            exception=failure,
            context={},
        )
        if not sample.ok:
            return
        # An ok sample has a first token, hence a TTFT; a single-token answer has no TPOT.
        for request_type, value in (("TTFT", sample.ttft_ms), ("TPOT", sample.tpot_ms)):
            if value is not None:
                fire(
                    request_type=request_type,
                    name=name,
                    response_time=value,
                    response_length=0,
                    exception=None,
                    context={},
                )

    # The end ------------------------------------------------------------------------------------------

    def drain(self, timeout: float) -> None:
        """Stop sending; wait up to `timeout` s for the requests in flight, then cancel the rest."""
        was_generating = not self.stopping
        self.stopping = True
        if not was_generating:
            return
        if not self._idle.wait(timeout):
            log.warning(
                "%d requests still in flight after --drain-timeout %g s: cancelled",
                len(self.in_flight),
                timeout,
            )
        self.requests.kill(block=True)
        self.cpu.stop()
        self.loop_lag.stop()

    def cpu_report(self) -> dict[str, Any]:
        return {
            "cpu_s": self.cpu.cpu_s,
            "cpu_system_s": self.cpu.system_s,
            "wall_s": self.cpu.wall_s,
            "requests": self.generated,
            "loop_lag_ms": self.loop_lag.report(),
        }

    def _flush_loop(self) -> None:
        while True:
            gevent.sleep(FLUSH_INTERVAL_S)
            if not self.stopping:
                self.send_batch(final=False)

    def send_batch(self, *, final: bool) -> None:
        batch, self.outbox = self.outbox, []
        data = {"samples": batch, "pending": list(self.in_flight.values()), "final": final}
        if final:
            data["cpu"] = self.cpu_report()
        self.env.runner.send_message(MSG_SAMPLES, data)

    def on_worker_samples(self, node_id: str, data: dict[str, Any]) -> None:
        if self.log is not None:
            self.log.add(data["samples"])
        report = self.worker_reports.setdefault(node_id, {})
        report["pending"] = data["pending"]
        if data["final"]:
            report.update(final=True, cpu=data.get("cpu"), pending=[])

    def drain_workers(self) -> None:
        """Master: ask every worker to drain and wait for their final batches."""
        runner = self.env.runner
        expected = {client.id for client in runner.clients.all}
        runner.send_message(MSG_DRAIN, {"timeout": self.options.drain_timeout})
        deadline = time.monotonic() + self.options.drain_timeout + FINAL_BATCH_MARGIN_S
        while not all(self.worker_reports.get(node, {}).get("final") for node in expected):
            if time.monotonic() > deadline:
                missing = [n for n in expected if not self.worker_reports.get(n, {}).get("final")]
                log.error(
                    "no final samples from workers %s: their last requests are missing", ", ".join(missing)
                )
                break
            gevent.sleep(0.05)  # the message listener greenlet fills worker_reports

    def all_samples(self) -> list[dict]:
        return self.log.records if self.log else []

    def pending_starts(self) -> list[float]:
        if self.role == "local":
            return list(self.in_flight.values())
        return [t for report in self.worker_reports.values() for t in report.get("pending", ())]

    def finish(self) -> None:
        """Master or local process, once per run: evaluate, write summary.json, print, plot."""
        if self.verdict is not None or (self.results_dir is None and not self.fatal):
            return
        records = self.all_samples()
        evaluation = evaluate(records, self.spec) if records else None
        if exceptions := list(self.env.runner.exceptions.values()):
            # A bug in the load generator: its figures cannot be trusted, whatever they say.
            self.fatal = (
                self.fatal
                or f"the load generator raised {exceptions[0]['msg']!r} (and {len(exceptions) - 1} more)"
            )
        if self.fatal:
            verdict = decide(evaluation, fatal=self.fatal)
        elif self.tracker:
            verdict = self.tracker.verdict()
        else:
            verdict = decide(evaluation)
        self.verdict = verdict
        if self.log is not None:
            self.log.close()
        if self.results_dir is None:
            return
        summary = build_summary(records, self.spec, evaluation, verdict, self._run_info())
        write_json(self.results_dir / SUMMARY_FILE, summary)
        print("\n" + format_table(summary) + f"\n\nresults: {self.results_dir}", flush=True)
        if records and not self.options.no_plots:
            write_run_plots(records, self.results_dir, f"{self.profile.name if self.profile else ''}")

    def _run_info(self) -> dict[str, Any]:
        options = self.options
        if self.tracker:
            mode = f"ramp: +{self.tracker.plan.step_rate:g} req/s every {self.tracker.plan.step_seconds:g} s"
        elif options.rate:
            users = self.env.runner.target_user_count
            mode = f"open loop: {options.rate:g} req/s ({options.arrivals}) over {users} users"
        else:
            mode = f"closed loop: {self.env.runner.target_user_count} users"
        reports = (
            [self.cpu_report()]
            if self.role == "local"
            else [r["cpu"] for r in self.worker_reports.values() if r.get("cpu")]
        )
        requests = sum(r["requests"] for r in reports)
        cpu_s = sum(r["cpu_s"] for r in reports)
        system_s = sum(r.get("cpu_system_s", 0.0) for r in reports)
        info: dict[str, Any] = {
            "profile": self.profile.describe() if self.profile else options.profile or DEFAULT_PROFILE,
            "host": self.env.host,
            "model": options.model,
            "mode": mode,
            "started_at": self.started_at,
            "locust_processes": len(reports),
            "image_salt": options.image_salt,
            "command": " ".join(sys.argv),
            "client": {
                "cpu_s": cpu_s,
                "cpu_system_s": system_s,
                "cpu_ms_per_request": cpu_s * 1000 / requests if requests else None,
                "max_cpu_utilization": max(
                    (r["cpu_s"] / r["wall_s"] for r in reports if r["wall_s"]), default=None
                ),
                "loop_lag_ms_by_process": [r.get("loop_lag_ms") for r in reports],
            },
        }
        if self.tracker:
            info["ramp"] = self.tracker.report()
        return info


# Listeners --------------------------------------------------------------------------------------------


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    global SESSION
    SESSION = session = LoadSession(environment)
    runner = environment.runner
    if session.role == "master":
        runner.register_message(
            MSG_SAMPLES, lambda environment, msg, **_: session.on_worker_samples(msg.node_id, msg.data)
        )
        runner.register_message(MSG_FATAL, lambda environment, msg, **_: session.fail(msg.data["message"]))
    if session.role == "worker":
        runner.register_message(
            MSG_DRAIN, lambda environment, msg, **_: _worker_drain(session, msg.data), concurrent=True
        )
        return
    try:
        session.configure()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(ExitCode.COULD_NOT_RUN)
    if session.tracker is None:
        environment.shape_class = None  # the ramp shape runs only when --ramp asks for it


def _worker_drain(session: LoadSession, data: dict[str, Any]) -> None:
    session.drain(float(data["timeout"]))
    session.send_batch(final=True)


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    if SESSION is not None:
        SESSION.on_test_start()


@events.test_stopping.add_listener
def _on_test_stopping(environment: Environment, **_: Any) -> None:
    if SESSION is None:
        return
    if SESSION.role == "master":
        SESSION.drain_workers()
    elif SESSION.role == "local":
        SESSION.drain(SESSION.options.drain_timeout)


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_: Any) -> None:
    if SESSION is not None and SESSION.role != "worker":
        SESSION.finish()


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_: Any) -> None:
    if SESSION is None or SESSION.role == "worker":
        return
    if SESSION.verdict is None:
        SESSION.finish()
    verdict = SESSION.verdict or Verdict("could_not_run", ExitCode.COULD_NOT_RUN, ("the test never started",))
    if SESSION.verdict is None:
        print(f"could not run: {verdict.reasons[0]}", file=sys.stderr, flush=True)
    environment.process_exit_code = int(verdict.exit_code)


class VisionChatUser(User):
    """Streams chat completions with the profile's images to --host (the sglang router)."""

    wait_time = constant(0)

    @task
    def chat(self) -> None:
        assert SESSION is not None
        SESSION.user_loop()


class SloRampShape(LoadTestShape):
    """Step k runs k open-loop users of STEP_RATE req/s each; stops at the first step that misses the
    SLO. Active only with --ramp (the init listener removes it otherwise)."""

    use_common_options = True  # -t still ends the run

    def tick(self) -> tuple[int, float] | None:
        session = SESSION
        if session is None or session.tracker is None:
            return None
        tracker = session.tracker
        now = time.time()
        tracker.judge_due(now, session.all_samples, session.pending_starts)
        if tracker.finished:
            return None
        step = min(tracker.plan.step_at(self.get_run_time()), tracker.plan.max_steps)
        tracker.start_step(step, now)
        return step, RAMP_SPAWN_RATE
