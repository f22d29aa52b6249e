"""A local stand-in for the Alibaba Cloud CDN RPC API, on loopback, for tests, the demo and benchmarks.

It verifies V2 and V3 signatures, enforces the per-call cap, the daily prefetch quota
(refilled at 00:00 UTC+8), the per-second call limit and the domain allow-list, and
answers in the API's XML or JSON. Faults (errors, latency, lost connections) can be
injected from Python or, for a separate process, over the unsigned /_double/ paths.

    python -m handler.local.cdn_double --port 8080 --key AK --secret SK --domains cdn.example.com

Admin paths (unsigned, loopback callers only):
    GET    /_double/received   pushed URLs, received calls, quota, pending faults (JSON)
    DELETE /_double/received   forget received calls and pushed URLs
    POST   /_double/faults     {"code", "status", "count", "probability", "latency", "drop",
                                "drop_after_accept", "action"} as for inject(); {"seed": n}; {"reset": true}
    DELETE /_double/faults     reset_faults()
    POST   /_double/quota      {"quota": n, "remain": n} as for set_quota()
"""

from __future__ import annotations

import argparse
import collections
import signal
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable

from .cdn_double_auth import Credentials, Incoming, NonceBook, signature_version, verify
from .cdn_double_faults import Fault, FaultPlan
from .cdn_double_rules import (
    ApiError,
    Domains,
    check_area,
    check_urls,
    check_with_header,
    error_body,
    new_request_id,
    quota_day,
    render,
    split_object_path,
    wants_json,
)
from .cdn_double_server import Answer, DoubleServer

VERSIONS = ("2014-11-11", "2018-05-10")
FIRST_TASK_ID = 17_000_000_000
# Fixed values for the refresh quotas this project never uses (the real account defaults).
OTHER_QUOTAS = {"Url": 10000, "Dir": 100, "Block": 100, "Regex": 20}


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


@dataclass
class Task:
    task_id: str
    url: str
    created: float


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
        calls_per_second: int = 50,
        security_token: str | None = None,
        clock: Callable[[], float] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
        verbose: bool = False,
        task_seconds: float = 5.0,
        max_skew: float | None = 900.0,
    ) -> None:
        self.clock: Callable[[], float] = clock or time.time
        self.cap = cap
        self.calls_per_second = calls_per_second
        self.verbose = verbose
        self.task_seconds = task_seconds
        self.max_skew = max_skew  # None turns the timestamp check off (a test clock far from real time)
        self.received: list[Received] = []
        self.pushed_urls: list[str] = []
        self._creds = Credentials(access_key_id, access_key_secret, security_token)
        self._domains = Domains.of(domains)
        self._quota = quota
        self._used: dict[int, int] = collections.defaultdict(int)  # quota day -> URLs pushed
        self._tasks: dict[str, Task] = {}
        self._next_task_id = FIRST_TASK_ID
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

    # ------------------------------------------------------------ steering and inspection

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
        action: str | None = None,
    ) -> None:
        """Answer the next `count` calls (or each call with `probability`) with this fault."""
        fault = Fault(code, status, count, probability, latency, drop, drop_after_accept, action)
        with self._lock:
            self._faults.add(fault)

    def seed(self, seed: int | None) -> None:
        with self._lock:
            self._faults.seed(seed)

    def reset_faults(self) -> None:
        with self._lock:
            self._faults.reset()

    def set_quota(self, quota: int | None = None, remain: int | None = None) -> None:
        """Change the daily quota, and/or what is left of it today (by the double's clock)."""
        with self._lock:
            if quota is not None:
                self._quota = quota
            if remain is not None:
                self._used[quota_day(self.clock())] = self._quota - remain

    def clear_records(self) -> None:
        """Forget received calls and pushed URLs (quota, tasks and nonces stay): a fresh start for a benchmark run."""
        with self._lock:
            self.received.clear()
            self.pushed_urls.clear()

    def quota_remaining(self) -> int:
        with self._lock:
            return self._remain(self.clock())

    def snapshot(self) -> dict:
        """Everything a separate process may want to check, as JSON-ready data."""
        with self._lock:
            return {
                "pushed_urls": list(self.pushed_urls),
                "received": [vars(r).copy() for r in self.received],
                "quota": {"quota": self._quota, "remain": self._remain(self.clock())},
                "faults": [f.as_dict() for f in self._faults.pending],
            }

    # ------------------------------------------------------------ one RPC call

    def handle(self, request: Incoming) -> Answer:
        """Authenticate, apply faults and throttling, run the action; the server writes the answer."""
        decision = self._admit(request)
        fault = decision.fault
        if fault is not None and fault.latency:
            time.sleep(fault.latency)  # outside the lock: other calls go on meanwhile
        if decision.error is None and fault is not None and fault.drop:
            return Answer.dropped()  # never reaches the action: nothing pushed
        answer = self._conclude(decision)
        if fault is not None and fault.drop_after_accept:
            return Answer.dropped()  # the action ran; only its answer is lost
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
        urls = split_object_path(params["ObjectPath"]) if action == "PushObjectCache" and "ObjectPath" in params else []
        version = params.get("Version") or request.headers.get("x-acs-version")
        record = Received(action, params, urls, signature_version(request), new_request_id(), version)
        decision = _Decision(record, wants_json(params, request.headers))
        with self._lock:
            self.received.append(record)
            try:
                verify(request, self._creds, self._nonces, self.clock(), self.max_skew)
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
        now = self.clock()
        self._throttle(now)
        if not record.version:
            raise ApiError("MissingParameter", name="Version")
        if record.version not in VERSIONS:
            raise ApiError("InvalidVersion")
        if not record.action:
            raise ApiError("MissingParameter", name="Action")
        action = _ACTIONS.get(record.action)
        if action is None:
            raise ApiError("InvalidAction.NotFound")
        return action(self, record, now)

    def _throttle(self, now: float) -> None:
        """At most calls_per_second admitted calls in any one-second window of the double's clock."""
        while self._window and self._window[0] <= now - 1.0:
            self._window.popleft()
        if len(self._window) >= self.calls_per_second:
            raise ApiError("Throttling")
        self._window.append(now)

    def _remain(self, now: float) -> int:
        return max(0, self._quota - self._used[quota_day(now)])

    # ------------------------------------------------------------ actions

    def _push_object_cache(self, record: Received, now: float) -> dict:
        params = record.params
        if not params.get("ObjectPath"):
            raise ApiError("MissingParameter", name="ObjectPath")
        check_urls(record.urls, self._domains, self.cap)
        check_area(params.get("Area"))
        check_with_header(params.get("WithHeader"))
        if len(record.urls) > self._remain(now):
            raise ApiError("QuotaExceeded.Refresh")
        self._used[quota_day(now)] += len(record.urls)
        self.pushed_urls.extend(record.urls)
        task_ids = [self._new_task(url, now) for url in record.urls]
        return {"PushTaskId": ",".join(task_ids)}

    def _new_task(self, url: str, now: float) -> str:
        task_id = str(self._next_task_id)
        self._next_task_id += 1
        self._tasks[task_id] = Task(task_id, url, now)
        return task_id

    def _describe_refresh_quota(self, record: Received, now: float) -> dict:
        quotas = {"PreloadQuota": str(self._quota), "PreloadRemain": str(self._remain(now))}
        for name, value in OTHER_QUOTAS.items():
            quotas.update({f"{name}Quota": str(value), f"{name}Remain": str(value)})
        return quotas

    def _describe_refresh_task_by_id(self, record: Received, now: float) -> dict:
        ids = [part.strip() for part in record.params.get("TaskId", "").split(",") if part.strip()]
        if not ids:
            raise ApiError("MissingParameter", name="TaskId")
        if len(ids) > 10:
            raise ApiError("InvalidTaskId.ValueNotSupported")
        tasks = [self._task_view(self._tasks[i], now) for i in ids if i in self._tasks]
        return {"TotalCount": len(tasks), "Tasks": tasks}

    def _task_view(self, task: Task, now: float) -> dict:
        # A simple life: Pending for the first half of task_seconds, Refreshing, then Complete.
        age = now - task.created
        if age >= self.task_seconds:
            status, process = "Complete", "100%"
        elif age >= self.task_seconds / 2:
            status, process = "Refreshing", "50%"
        else:
            status, process = "Pending", "0%"
        created = datetime.fromtimestamp(task.created, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "TaskId": task.task_id,
            "ObjectPath": task.url,
            "ObjectType": "preload",
            "Status": status,
            "Process": process,
            "CreationTime": created,
            "Description": "",
        }


_ACTIONS: dict[str, Callable[[CdnDouble, Received, float], dict]] = {
    "PushObjectCache": CdnDouble._push_object_cache,
    "DescribeRefreshQuota": CdnDouble._describe_refresh_quota,
    "DescribeRefreshTaskById": CdnDouble._describe_refresh_task_by_id,
}


# ---------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handler.local.cdn_double", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--key", required=True, help="the AccessKeyId callers must use")
    parser.add_argument("--secret", required=True, help="the AccessKeySecret callers must sign with")
    parser.add_argument("--domains", required=True, help="comma-separated CDN domains of the account (*.x for wildcard)")
    parser.add_argument("--quota", type=int, default=1000, help="daily prefetch quota (URLs)")
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
        quota=args.quota, cap=args.cap, calls_per_second=args.calls_per_second,
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
