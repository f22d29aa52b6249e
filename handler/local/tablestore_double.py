"""A loopback Tablestore service that the unmodified `tablestore.OTSClient` talks to over HTTP.

It checks each request as the service does (content MD5, x-ots-date within 15 minutes, V2
signature with the configured secret, instance name, STS token), answers protobuf bodies with
PlainBuffer rows, signed so the SDK accepts them, and models the operations in
tablestore_double_operations.OPERATIONS: tables, single-row reads and writes with row-existence
and column conditions, UpdateRow PUT / DELETE / DELETE_ALL / INCREMENT, BatchGetRow,
BatchWriteRow with per-row results, and GetRange both ways with the service's paging
(page size configurable: `page_rows`, `page_bytes`). Anything else is refused clearly.

    double = TablestoreDouble(instance="prewarm", access_key_id="AK", access_key_secret="SK")
    double.start(); client = OTSClient(double.endpoint, "AK", "SK", "prewarm")
    python -m handler.local.tablestore_double --port 8801 --instance prewarm --key AK --secret SK

Faults (see tablestore_double_faults.Fault): double.inject(operation="PutRow", code="OTSServerBusy",
count=2), inject(probability=0.2, code=...), inject(latency=0.5), inject(drop=True),
inject(applied=True, code="OTSTimeout") or inject(applied=True, drop=True); and a table-not-ready
window after CreateTable: `table_not_ready_seconds`.

Admin paths (unsigned, loopback callers only), JSON in and out:
    GET    /_double/calls      {"calls": [{"operation", "outcome", "fault", "request"}...], "counts": {op: n}}
    DELETE /_double/calls      forget received calls
    POST   /_double/faults     a Fault's fields; or {"seed": n}; or {"reset": true}
    DELETE /_double/faults     reset faults
    POST   /_double/settings   {"page_rows", "page_bytes", "table_not_ready_seconds"}
"""

from __future__ import annotations

import argparse
import collections
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from tablestore.protobuf import table_store_pb2 as pb
from tablestore.protocol import OTSProtocol

from .tablestore_double_auth import Credentials, answer_headers, verify_request
from .tablestore_double_errors import ServiceError, invalid
from .tablestore_double_faults import Fault, FaultPlan
from .tablestore_double_operations import PAGE_BYTES, PAGE_ROWS, Instance
from .tablestore_double_requests import describe_request
from .tablestore_double_server import Answer, DoubleServer

# Every API name the SDK can send: the rest of these are refused as not modelled, not unknown.
KNOWN_APIS = frozenset(OTSProtocol.api_list)


@dataclass
class Received:
    """One request as the double saw it: its operation, the outcome code ("OK"), the fault if any,
    and what it asked for (tablestore_double_requests.describe_request: keys, conditions, columns)."""

    operation: str
    outcome: str
    fault: str | None = None
    request: dict[str, Any] = field(default_factory=dict)


class TablestoreDouble:
    """The double. Thread-safe: one lock guards tables, faults and the call log."""

    def __init__(
        self,
        *,
        instance: str = "prewarm-test",
        access_key_id: str = "test-ak",
        access_key_secret: str = "test-secret",
        security_token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        page_rows: int = PAGE_ROWS,
        page_bytes: int = PAGE_BYTES,
        table_not_ready_seconds: float = 0.0,
        seed: int | None = None,
        max_skew: float | None = 900.0,
        clock: Callable[[], float] = time.time,
        verbose: bool = False,
    ) -> None:
        self.credentials = Credentials(instance, access_key_id, access_key_secret, security_token)
        self.instance = Instance(page_rows=page_rows, page_bytes=page_bytes,
                                 table_not_ready_seconds=table_not_ready_seconds)
        self.max_skew = max_skew  # seconds; None turns the x-ots-date check off
        self.clock = clock
        self.verbose = verbose
        self.received: list[Received] = []
        self._faults = FaultPlan(seed)
        self._lock = threading.RLock()
        self._server = DoubleServer(self, host, port)

    # -- life cycle ---------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return self._server.endpoint

    def start(self) -> "TablestoreDouble":
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> "TablestoreDouble":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test controls ------------------------------------------------------------------------

    def inject(self, **fault: Any) -> Fault:
        """Add a fault (the fields of `Fault`); returns it."""
        injected = Fault(**fault)
        with self._lock:
            self._faults.add(injected)
        return injected

    def reset_faults(self) -> None:
        with self._lock:
            self._faults.reset()

    def seed(self, seed: int | None) -> None:
        with self._lock:
            self._faults.seed(seed)

    def calls(self, operation: str | None = None) -> int:
        """How many requests for `operation` (None: any) reached the double, whatever their outcome."""
        with self._lock:
            return sum(1 for r in self.received if operation is None or r.operation == operation)

    def requests(self, operation: str | None = None) -> list[Received]:
        """The requests for `operation` (None: any) received so far, oldest first (copies of the log)."""
        with self._lock:
            return [Received(r.operation, r.outcome, r.fault, dict(r.request))
                    for r in self.received if operation is None or r.operation == operation]

    def clear_calls(self) -> None:
        with self._lock:
            self.received.clear()

    def configure(self, *, page_rows: int | None = None, page_bytes: int | None = None,
                  table_not_ready_seconds: float | None = None) -> None:
        with self._lock:
            if page_rows is not None:
                if page_rows < 1:
                    raise ValueError("page_rows must be at least 1")
                self.instance.page_rows = page_rows
            if page_bytes is not None:
                if page_bytes < 1:
                    raise ValueError("page_bytes must be at least 1")
                self.instance.page_bytes = page_bytes
            if table_not_ready_seconds is not None:
                self.instance.table_not_ready_seconds = float(table_not_ready_seconds)

    def reset_settings(self) -> None:
        self.configure(page_rows=PAGE_ROWS, page_bytes=PAGE_BYTES, table_not_ready_seconds=0.0)

    # -- requests -----------------------------------------------------------------------------

    def handle(self, method: str, api: str, headers: dict[str, str], body: bytes) -> Answer:
        """One request: checks, fault, operation; the answer the HTTP side sends (or a drop)."""
        with self._lock:
            record = Received(api, "OK", request=describe_request(api, body))
            self.received.append(record)
            try:
                if method != "POST":
                    raise ServiceError("OTSMethodNotAllowed", "Only POST method for requests is supported.")
                if api not in KNOWN_APIS:
                    raise invalid(f"Unsupported operation: {api}.")
                verify_request(api, headers, body, self.credentials, self.clock(), self.max_skew)
            except ServiceError as exc:
                record.outcome = exc.code
                return self._error(api, exc)
            fault = self._faults.pick(api)
            if fault is not None:
                record.fault = "drop" if fault.drop else (fault.code or "latency")
                if fault.applied:
                    record.fault = f"applied then {record.fault}"
        if fault is not None and fault.latency:
            time.sleep(fault.latency)
        if fault is not None and not fault.applied and (fault.drop or fault.code):
            record.outcome = "dropped" if fault.drop else fault.code
            return Answer(0, drop=True) if fault.drop else self._error(api, ServiceError(fault.code, fault.message, fault.status))
        with self._lock:
            try:
                payload = self.instance.handle(api, body)
            except ServiceError as exc:
                record.outcome = exc.code
                return self._error(api, exc)
        if fault is not None and fault.applied:  # the operation happened; the caller will not learn it
            record.outcome = "dropped" if fault.drop else fault.code
            return Answer(0, drop=True) if fault.drop else self._error(api, ServiceError(fault.code, fault.message, fault.status))
        return Answer(200, payload, answer_headers(api, payload, self.credentials, self.clock()))

    def _error(self, api: str, error: ServiceError) -> Answer:
        message = pb.Error()
        message.code, message.message = error.code, error.message
        body = message.SerializeToString()
        # An OTSAuthFailed answer is not signed: the caller's key is what is in doubt (the SDK skips the check).
        headers = answer_headers(api, body, self.credentials, self.clock(), sign=error.code != "OTSAuthFailed")
        return Answer(error.status, body, headers)

    def refuse_too_large(self, api: str) -> Answer:
        with self._lock:
            self.received.append(Received(api, "OTSRequestBodyTooLarge"))
        return self._error(api, ServiceError("OTSRequestBodyTooLarge", "The size of POST data is too large."))

    def internal_error(self, api: str) -> Answer:
        return self._error(api, ServiceError("OTSInternalServerError", "The local Tablestore double failed."))

    # -- admin paths --------------------------------------------------------------------------

    def admin(self, method: str, route: str, data: dict) -> tuple[int, dict]:
        if route == "calls" and method == "GET":
            with self._lock:
                calls = [vars(r).copy() for r in self.received]
            return 200, {"calls": calls, "counts": dict(collections.Counter(c["operation"] for c in calls))}
        if route == "calls" and method == "DELETE":
            self.clear_calls()
        elif route == "faults" and method == "DELETE":
            self.reset_faults()
        elif route == "faults" and method == "POST":
            if data.pop("reset", False):
                self.reset_faults()
            if "seed" in data:
                self.seed(data.pop("seed"))
            if data:
                fault = Fault.from_json(data)
                with self._lock:
                    self._faults.add(fault)
        elif route == "settings" and method == "POST":
            unknown = sorted(set(data) - {"page_rows", "page_bytes", "table_not_ready_seconds"})
            if unknown:
                raise ValueError(f"unknown setting {unknown[0]!r}")
            self.configure(**data)
        else:
            return 404, {"error": f"no admin route {method} /_double/{route}"}
        with self._lock:
            return 200, {"faults": [f.as_dict() for f in self._faults.pending], "received": len(self.received)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the local Tablestore double on loopback.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--instance", default="prewarm-test")
    parser.add_argument("--key", default="test-ak")
    parser.add_argument("--secret", default="test-secret")
    parser.add_argument("--security-token")
    parser.add_argument("--page-rows", type=int, default=PAGE_ROWS)
    parser.add_argument("--page-bytes", type=int, default=PAGE_BYTES)
    parser.add_argument("--table-not-ready-seconds", type=float, default=0.0)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    double = TablestoreDouble(
        instance=args.instance, access_key_id=args.key, access_key_secret=args.secret,
        security_token=args.security_token, host=args.host, port=args.port, page_rows=args.page_rows,
        page_bytes=args.page_bytes, table_not_ready_seconds=args.table_not_ready_seconds, seed=args.seed,
        verbose=args.verbose,
    ).start()
    print(f"tablestore double on {double.endpoint} (instance {args.instance})", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    double.stop()


if __name__ == "__main__":
    main()
