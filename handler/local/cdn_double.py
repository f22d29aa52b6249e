"""A local stand-in for the Alibaba Cloud CDN: its RPC API on loopback, and the CDN behind it.

The API side verifies V2 and V3 signatures, enforces per-call caps, the daily prefetch
and refresh quotas (refilled at 00:00 UTC+8), the per-second call limit and the domain
allow-list, and answers in the API's XML or JSON. Behind it (cdn_double_model.py) sit
an origin, an edge cache and tasks that complete on the double's own clock, so tests can
check what a CDN would serve. Faults (error answers, latency, answers lost before or
after the action ran, truncated answers, refused connections, failed tasks) can be
injected from Python or, for a separate process, over the unsigned /_double/ paths
(cdn_double_admin.py lists them).

    python -m handler.local.cdn_double --port 8080 --key AK --secret SK --domains cdn.example.com
"""

from __future__ import annotations

import argparse
import collections
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from .cdn_double_actions import ACTIONS, urls_of
from .cdn_double_auth import Credentials, Incoming, NonceBook, signature_version, verify
from .cdn_double_faults import Fault, FaultPlan
from .cdn_double_model import PRELOAD, REFRESH, CdnModel, SimClock, TaskFault, object_key
from .cdn_double_rules import ApiError, Domains, error_body, new_request_id, render, wants_json
from .cdn_double_server import Answer, DoubleServer

VERSIONS = ("2014-11-11", "2018-05-10")
PUSH_QUOTA_CODES = ("QuotaExceeded.Refresh", "QuotaExceeded.Preload")


@dataclass
class Received:
    """One RPC request as the double saw it, and what it answered."""

    action: str | None
    params: dict[str, str]
    urls: list[str]
    signature_version: str | None
    request_id: str
    version: str | None = None  # Version parameter, or the x-acs-version header of a V3 call
    accepted: bool = False
    error: str | None = None
    status: int | None = None
    fault: str | None = None  # kind of the injected fault that shaped the answer, if any
    at: float | None = None  # the double's clock when the call arrived


@dataclass
class _Decision:
    """Phase one of a call (under the lock): who is calling and which fault, if any, applies."""

    record: Received
    as_json: bool
    error: ApiError | None = None
    fault: Fault | None = None


class CdnDouble:
    """The CDN API double. Thread-safe: one lock guards all state."""

    def __init__(
        self,
        access_key_id: str,
        access_key_secret: str,
        domains: Iterable[str],
        *,
        quota: int = 1000,
        cap: int = 100,
        refresh_quota: int = 10000,
        refresh_cap: int = 1000,
        calls_per_second: int = 50,
        security_token: str | None = None,
        clock: Callable[[], float] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
        verbose: bool = False,
        task_seconds: float = 180.0,
        refresh_seconds: float = 300.0,
        task_ids: str = "per_url",
        push_quota_code: str = "QuotaExceeded.Refresh",
        open_origin: bool = True,
        max_skew: float | None = 900.0,
    ) -> None:
        # Signatures and the per-second limit run on the base clock (real time unless injected);
        # the CDN (tasks, quota days, the 3-day history) runs on `clock`, which tests may set and advance.
        self.auth_clock: Callable[[], float] = clock or time.time
        self.clock = SimClock(self.auth_clock)
        self.cap = cap
        self.refresh_cap = refresh_cap
        self.calls_per_second = calls_per_second
        self.verbose = verbose
        self.max_skew = max_skew  # None turns the timestamp check off (a test clock far from real time)
        self.push_quota_code = _push_quota_code(push_quota_code)
        self.received: list[Received] = []
        self.pushed_urls: list[str] = []
        self.refreshed_urls: list[str] = []
        self.domains = Domains.of(domains)
        self.model = CdnModel(
            self.clock, task_seconds, refresh_seconds, {PRELOAD: quota, REFRESH: refresh_quota}, _task_ids(task_ids),
            seed, open_origin,
        )
        self._creds = Credentials(access_key_id, access_key_secret, security_token)
        self._window: collections.deque[float] = collections.deque()
        self._nonces = NonceBook()
        self._faults = FaultPlan(seed)
        self._lock = threading.RLock()
        self._server = DoubleServer(self, host, port)

    # ------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        return self._server.base_url

    def start(self) -> str:
        self._server.start()
        return self.base_url

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> CdnDouble:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def refuse_connections(self, refuse: bool = True) -> None:
        """Close the listening socket (connections are refused: nothing can be sent) or open it again."""
        self._server.refuse(refuse)

    def refuse_connections_for(self, seconds: float) -> None:
        """Refuse connections for `seconds`, then listen again on the same port."""
        self._server.refuse_for(seconds)

    # ------------------------------------------------------------ API faults and records

    def calls(self, action: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.received if action is None or r.action == action)

    def inject(
        self,
        code: str | None,
        status: int | None = None,
        *,
        count: int = 1,
        probability: float | None = None,
        latency: float | None = None,
        drop: bool = False,
        drop_after_accept: bool = False,
        truncate: bool = False,
        action: str | None = None,
    ) -> None:
        """Answer the next `count` calls (or each call with `probability`) with this fault.

        drop: close the connection without running the action; drop_after_accept: run it, then close
        without an answer; truncate: run it, then send only part of a 200 answer.
        """
        fault = Fault(code, status, count, probability, latency, drop, drop_after_accept, action, truncate)
        with self._lock:
            self._faults.add(fault)

    def seed(self, seed: int | None) -> None:
        with self._lock:
            self._faults.seed(seed)
            self.model.reseed(seed)

    def reset_faults(self) -> None:
        with self._lock:
            self._faults.reset()

    def clear_records(self) -> None:
        """Forget received calls and submitted URLs (quota, tasks and nonces stay): a fresh start for a benchmark run."""
        with self._lock:
            self.received.clear()
            self.pushed_urls.clear()
            self.refreshed_urls.clear()

    # ------------------------------------------------------------ quotas

    def set_quota(
        self, quota: int | None = None, remain: int | None = None, *, used: int | None = None, kind: str = PRELOAD
    ) -> None:
        """Change a daily quota (prefetch by default, or kind="file" for URL refresh), and/or what is
        used or left of it today on the double's clock."""
        if kind not in (PRELOAD, REFRESH):
            raise ValueError(f"kind must be {PRELOAD} or {REFRESH}")
        with self._lock:
            if quota is not None:
                self.model.quotas[kind] = int(quota)
            if remain is not None:
                self.model.set_used(kind, self.model.quotas[kind] - int(remain))
            if used is not None:
                self.model.set_used(kind, used)

    def set_push_quota_code(self, code: str) -> None:
        with self._lock:
            self.push_quota_code = _push_quota_code(code)

    def quota_remaining(self, kind: str = PRELOAD) -> int:
        with self._lock:
            return self.model.remain(kind)

    def quota_counters(self) -> dict:
        """Both daily counters on the double's clock: {"preload": {...}, "refresh": {...}}."""
        with self._lock:
            model = self.model
            return {
                name: {"quota": model.quotas[kind], "used": model.used(kind), "remain": model.remain(kind)}
                for name, kind in (("preload", PRELOAD), ("refresh", REFRESH))
            }

    # ------------------------------------------------------------ the CDN: clock, origin, cache, tasks

    def set_clock(self, now: float) -> None:
        """Pin the double's clock at `now` (epoch seconds); due tasks settle first, on the old time."""
        with self._lock:
            self.model.settle()
            self.clock.set(now)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.model.settle()
            self.clock.advance(seconds)

    def follow_real_time(self) -> None:
        with self._lock:
            self.model.settle()
            self.clock.follow_base()

    def set_origin(self, url: str, version: str) -> None:
        """An upload or overwrite at the origin; http and https URLs name one object."""
        with self._lock:
            self.model.put_origin(url, version)

    def delete_origin(self, url: str) -> None:
        with self._lock:
            self.model.delete_origin(url)

    def set_open_origin(self, open_origin: bool) -> None:
        """Open (default): objects never set or deleted exist, as version "origin"; closed: only those set."""
        with self._lock:
            self.model.set_open_origin(open_origin)

    def origin(self) -> dict[str, str]:
        with self._lock:
            return dict(self.model.origin)

    def cached(self, url: str) -> str | None:
        """The version the edge holds for `url`, or None."""
        with self._lock:
            return self.model.cached(url)

    def cache(self) -> dict[str, str]:
        """The whole edge cache: URL without scheme -> version."""
        with self._lock:
            return self.model.cache_view()

    def viewer_get(self, url: str) -> str | None:
        """A viewer's request through the edge: a miss fills the cache from the origin."""
        with self._lock:
            return self.model.viewer_get(url)

    def set_task_timing(self, preload_seconds: float | None = None, refresh_seconds: float | None = None) -> None:
        """How long new tasks take on the double's clock (0: complete at once)."""
        with self._lock:
            if preload_seconds is not None:
                self.model.preload_seconds = float(preload_seconds)
            if refresh_seconds is not None:
                self.model.refresh_seconds = float(refresh_seconds)

    def fail_tasks(
        self,
        urls: Iterable[str] | None = None,
        *,
        fraction: float | None = None,
        kind: str | None = None,
        reason: str = "origin timeout",
    ) -> None:
        """Make new tasks for these URLs (or a seeded fraction of new tasks) end Failed with `reason`."""
        if urls is None and fraction is None:
            raise ValueError("fail_tasks needs urls or a fraction")
        if fraction is not None and not 0.0 <= fraction <= 1.0:
            raise ValueError("fraction must be within [0, 1]")
        if kind not in (None, PRELOAD, REFRESH):
            raise ValueError(f"kind must be {PRELOAD} or {REFRESH}")
        keys = None if urls is None else frozenset(object_key(u) for u in urls)
        with self._lock:
            self.model.fail_tasks(TaskFault(reason, keys, fraction, kind))

    def reset_task_faults(self) -> None:
        with self._lock:
            self.model.reset_task_faults()

    def task_records(self) -> list[dict]:
        """Every task entry ever created, with its completion time: more than the task APIs show."""
        with self._lock:
            return self.model.records()

    def snapshot(self) -> dict:
        """Everything a separate process may want to check, as JSON-ready data."""
        with self._lock:
            counters = self.quota_counters()
            return {
                "pushed_urls": list(self.pushed_urls),
                "refreshed_urls": list(self.refreshed_urls),
                "received": [vars(r).copy() for r in self.received],
                "quota": {"quota": counters["preload"]["quota"], "remain": counters["preload"]["remain"]},
                "quotas": counters,
                "faults": [f.as_dict() for f in self._faults.pending],
                "clock": self.clock.as_dict(),
            }

    # ------------------------------------------------------------ one RPC call

    def handle(self, request: Incoming) -> Answer:
        """Authenticate, apply faults and throttling, run the action; the server writes the answer."""
        decision = self._admit(request)
        fault = decision.fault
        if fault is not None and fault.latency:
            time.sleep(fault.latency)  # outside the lock: other calls go on meanwhile
        if decision.error is None and fault is not None and fault.drop:
            return Answer.dropped()  # never reaches the action: nothing submitted
        answer = self._conclude(decision)
        if fault is not None and fault.drop_after_accept:
            return Answer.dropped()  # the action ran; only its answer is lost
        if fault is not None and fault.truncate:
            answer.truncate = True  # the action ran; the answer breaks off halfway
        return answer

    def _conclude(self, decision: _Decision) -> Answer:
        record = decision.record
        with self._lock:
            try:
                if decision.error is not None:
                    raise decision.error
                body = {"RequestId": record.request_id, **self._run(record)}
            except ApiError as error:
                record.error, record.status = error.code, error.status
                payload, content_type = render(error_body(error, record.request_id), "Error", decision.as_json)
                return Answer(error.status, payload, content_type, record.request_id)
            record.accepted, record.status = True, 200
        payload, content_type = render(body, f"{record.action}Response", decision.as_json)
        return Answer(200, payload, content_type, record.request_id)

    def _admit(self, request: Incoming) -> _Decision:
        params = request.params
        action = params.get("Action") or request.headers.get("x-acs-action")
        version = params.get("Version") or request.headers.get("x-acs-version")
        record = Received(action, params, urls_of(action, params), signature_version(request), new_request_id(), version)
        decision = _Decision(record, wants_json(params, request.headers))
        with self._lock:
            record.at = self.clock()
            self.received.append(record)
            try:
                verify(request, self._creds, self._nonces, self.auth_clock(), self.max_skew)
            except ApiError as error:
                decision.error = error
                return decision
            decision.fault = self._faults.pick(action)
            if decision.fault is not None:
                record.fault = decision.fault.kind
                if decision.fault.code is not None:
                    decision.error = ApiError(decision.fault.code, decision.fault.status)
        return decision

    def _run(self, record: Received) -> dict:
        self._throttle(self.auth_clock())
        if not record.version:
            raise ApiError("MissingParameter", name="Version")
        if record.version not in VERSIONS:
            raise ApiError("InvalidVersion")
        if not record.action:
            raise ApiError("MissingParameter", name="Action")
        action = ACTIONS.get(record.action)
        if action is None:
            raise ApiError("InvalidAction.NotFound")
        return action(self, record, self.clock())

    def _throttle(self, now: float) -> None:
        """At most calls_per_second admitted calls in any one-second window of the base clock."""
        while self._window and self._window[0] <= now - 1.0:
            self._window.popleft()
        if len(self._window) >= self.calls_per_second:
            raise ApiError("Throttling")
        self._window.append(now)


def _push_quota_code(code: str) -> str:
    if code not in PUSH_QUOTA_CODES:
        raise ValueError(f"push_quota_code must be one of {PUSH_QUOTA_CODES}")
    return code


def _task_ids(mode: str) -> str:
    if mode not in ("per_url", "per_domain"):
        raise ValueError("task_ids must be per_url or per_domain")
    return mode


# ---------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handler.local.cdn_double", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--key", required=True, help="the AccessKeyId callers must use")
    parser.add_argument("--secret", required=True, help="the AccessKeySecret callers must sign with")
    parser.add_argument("--domains", required=True, help="comma-separated CDN domains of the account (*.x for wildcard)")
    parser.add_argument("--quota", type=int, default=1000, help="daily prefetch quota (URLs)")
    parser.add_argument("--refresh-quota", type=int, default=10000, help="daily URL refresh quota")
    parser.add_argument("--task-seconds", type=float, default=180.0, help="simulated seconds a prefetch task takes")
    parser.add_argument("--refresh-seconds", type=float, default=300.0, help="simulated seconds a refresh task takes")
    parser.add_argument("--cap", type=int, default=100, help="URLs per PushObjectCache call")
    parser.add_argument("--calls-per-second", type=int, default=50, help="calls per second before Throttling")
    parser.add_argument("--token", default=None, help="require this STS security token")
    parser.add_argument("--seed", type=int, default=None, help="seed for probabilistic faults")
    parser.add_argument("--verbose", action="store_true", help="log each request to stderr")
    args = parser.parse_args(argv)

    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    double = CdnDouble(
        args.key, args.secret, [d for d in args.domains.split(",") if d.strip()],
        quota=args.quota, cap=args.cap, calls_per_second=args.calls_per_second, refresh_quota=args.refresh_quota,
        task_seconds=args.task_seconds, refresh_seconds=args.refresh_seconds,
        security_token=args.token, port=args.port, seed=args.seed, verbose=args.verbose,
    )
    print(double.start(), flush=True)  # the first line: callers read the base URL from it
    try:
        while not stopping.wait(0.2):
            pass
    finally:
        double.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
