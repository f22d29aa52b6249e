"""Tablestore store: the Store port on one Tablestore table (primary key `pk` STRING, `sk` STRING).

Rows and keys are those of `keys.py`; the columns of the URL record (`url#H`) are its
lifecycle state (`lifecycle.UrlState.to_fields`: a column absent means its default), its
tokens `ref` and `rev`, and `dead_at` (µs), with times as DOUBLE and counts as INTEGER.

Writes that decide anything carry a Condition: a row existence expectation plus column
conditions built with `pass_if_missing=False` (the SDK's default is True, which would let a
row without the column pass). A URL record is written on condition that its `rev` is the one
read (compare-and-set), and so is the quota counter's `used`. Two writes are deliberately
unconditioned (RowExistenceExpectation.IGNORE): re-putting a due row and touching the windows
index, both idempotent, keyed by hash, and checked by `ref`/`touch`.

The order of writes, and so crash safety, is `keyvalue.KeyValueStore`'s.

Every client the store uses, built here or passed in, gets `BoundedRetries`: the SDK's own
default retries a busy service 20 times with sleeps up to 3 s each, longer than a function
runs; a store call should rather fail fast as StoreError and let the invocation be retried.
"""

from __future__ import annotations

import logging
import struct
import time
from typing import TYPE_CHECKING, Any, Iterator, Mapping
from urllib.parse import parse_qs, urlsplit

import tablestore
import urllib3.exceptions
from tablestore import (
    INF_MAX,
    INF_MIN,
    CapacityUnit,
    ComparatorType,
    CompositeColumnCondition,
    Condition,
    Direction,
    LogicalOperator,
    OTSClientError,
    OTSServiceError,
    ReservedThroughput,
    Row,
    RowExistenceExpectation,
    SingleColumnCondition,
    TableMeta,
    TableOptions,
)

from ..ports import StoreError
from ..settings import check_endpoint
from . import keys
from .keys import DEAD_PK, NO_SORT_KEY
from .keyvalue import KeyValueStore, PendingRow, StoredRecord, record_from_fields

if TYPE_CHECKING:
    from ..credentials import Credentials

# One call's worst case: (1 + MAX_RETRIES) answers of up to SOCKET_TIMEOUT, plus at most
# MAX_RETRIES * MAX_RETRY_DELAY of sleep: 4 * 3 + 3 = 15 s, well inside a function's timeout.
SOCKET_TIMEOUT = 3.0
MAX_RETRIES = 3
MAX_RETRY_DELAY = 1.0
READY_TIMEOUT = 120.0  # how long create_schema waits for a new table to answer
READY_POLL = 1.0

TRANSIENT_CODES = frozenset({
    "OTSServerBusy", "OTSTimeout", "OTSServerUnavailable", "OTSInternalServerError",
    "OTSNotEnoughCapacityUnit", "OTSPartitionUnavailable", "OTSTableNotReady",
    "OTSRowOperationConflict", "OTSOperationThrottled", "OTSQuotaExhausted",
})
CONDITION_FAILED = "OTSConditionCheckFail"
# The SDK logs every failed condition as an ERROR and, at DEBUG, request headers with the
# security token: its logger is ours, and silenced; errors reach callers as StoreError.
SDK_LOGGER = "handler.stores.tablestore.sdk"

EXIST = RowExistenceExpectation.EXPECT_EXIST
NOT_EXIST = RowExistenceExpectation.EXPECT_NOT_EXIST
IGNORE = RowExistenceExpectation.IGNORE
# A key no row ever has: create_schema reads it until the new table answers.
READY_PROBE_PK = "schema#ready-probe"
# Column types of the URL record: a column keeps one type across writes, so reads compare alike.
_DOUBLE_COLUMNS = frozenset({"not_before", "lease_until", "keep_until", "updated_at", "task_at", "failing_since"})


class _ConditionFailed(Exception):
    """A write's condition did not hold: control flow, never an error."""


def _columns(row: Row | None) -> dict[str, Any]:
    return {} if row is None else {c[0]: c[1] for c in row.attribute_columns or []}


def _record_columns(fields: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The URL record as attribute columns: times as DOUBLE, other numbers as INTEGER."""
    return [
        (name, float(v) if name in _DOUBLE_COLUMNS else int(v) if isinstance(v, (int, float)) else v)
        for name, v in fields.items()
    ]


def _pk(pk: str, sk: str = NO_SORT_KEY) -> list[tuple[str, str]]:
    return [("pk", pk), ("sk", sk)]


def _is(column: str, value: Any, comparator: int = ComparatorType.EQUAL) -> SingleColumnCondition:
    """A column condition that fails when the column is missing (the SDK's default passes)."""
    return SingleColumnCondition(column, value, comparator, pass_if_missing=False, latest_version_only=True)


def _all(*conditions: SingleColumnCondition) -> Any:
    if len(conditions) == 1:
        return conditions[0]
    combined = CompositeColumnCondition(LogicalOperator.AND)
    for condition in conditions:
        combined.add_sub_condition(condition)
    return combined


def _filter_columns(condition: Any) -> list[str]:
    """The columns a column condition or filter looks at."""
    if isinstance(condition, CompositeColumnCondition):
        return [name for sub in condition.sub_conditions for name in _filter_columns(sub)]
    return [condition.column_name] if condition is not None else []


def _columns_to_get(columns: list[str] | None, column_filter: Any) -> list[str] | None:
    """`columns` plus the filter's own: the service filters only on the columns a read asks for, so a
    filter on a column left out finds it missing on every row (None: every column, the filter's too)."""
    if columns is None or column_filter is None:
        return columns
    return list(dict.fromkeys([*columns, *_filter_columns(column_filter)]))


def _when(expectation: str, *conditions: SingleColumnCondition) -> Condition:
    return Condition(expectation, _all(*conditions) if conditions else None)


class TablestoreStore(KeyValueStore):
    """The Store port on one Tablestore table; see the module docstring for the layout."""

    NAME = "Tablestore"

    def __init__(
        self,
        instance: str,
        table: str,
        *,
        endpoint: str | None = None,
        credentials: "Credentials | None" = None,
        client: Any = None,
        socket_timeout: float = SOCKET_TIMEOUT,
        max_retries: int = MAX_RETRIES,
        max_retry_delay: float = MAX_RETRY_DELAY,
        ready_timeout: float = READY_TIMEOUT,
        ready_poll: float = READY_POLL,
    ) -> None:
        self.instance = instance
        self.table = table
        self.endpoint = endpoint
        self.socket_timeout = socket_timeout  # applies to a client built here; one passed in keeps its own
        self.retry_policy = BoundedRetries(max_retries, max_retry_delay)
        self.ready_timeout = ready_timeout
        self.ready_poll = ready_poll
        self._credentials = credentials
        self._client = client
        if client is not None:
            client.retry_policy = self.retry_policy

    @classmethod
    def from_url(cls, url: str, *, credentials: "Credentials | None" = None, **options: Any) -> "TablestoreStore":
        """`tablestore://INSTANCE/TABLE?endpoint=https://INSTANCE.REGION.ots.aliyuncs.com`.

        `options` are the constructor's keyword options (socket_timeout, max_retries, ...), for tests.
        """
        parts = urlsplit(url)
        instance, table = parts.netloc, parts.path.strip("/")
        if parts.scheme != "tablestore" or not instance or not table or "/" in table:
            raise ValueError(f"Tablestore store URL must look like tablestore://INSTANCE/TABLE?endpoint=..., not {url!r}")
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        unknown = sorted(set(params) - {"endpoint"})
        if unknown:
            raise ValueError(f"Tablestore store URL: unknown parameter {unknown[0]!r} (known: endpoint)")
        endpoint = params.get("endpoint") or ""
        if not endpoint:
            raise ValueError(f"Tablestore store URL needs ?endpoint=https://{instance}.REGION.ots.aliyuncs.com")
        check_endpoint(endpoint, "store endpoint")
        return cls(instance, table, endpoint=endpoint, credentials=credentials, **options)

    @property
    def client(self) -> Any:
        """The SDK client, built on first use (credentials are resolved only then)."""
        if self._client is None:
            from ..credentials import resolve_credentials

            credentials = resolve_credentials(self._credentials)
            logging.getLogger(SDK_LOGGER).setLevel(logging.CRITICAL)
            self._client = tablestore.OTSClient(
                self.endpoint, credentials.access_key_id, credentials.access_key_secret, self.instance,
                sts_token=credentials.security_token, socket_timeout=self.socket_timeout, logger_name=SDK_LOGGER,
                retry_policy=self.retry_policy,
            )
        return self._client

    # -- the SDK boundary ---------------------------------------------------------------------

    def _call(self, operation: str, *args: Any, **kwargs: Any) -> Any:
        """One SDK call; a failed condition raises _ConditionFailed, any other failure StoreError."""
        try:
            return getattr(self.client, operation)(*args, **kwargs)
        except OTSServiceError as exc:
            code = exc.get_error_code()
            if code == CONDITION_FAILED:
                raise _ConditionFailed() from None
            status = exc.get_http_status()
            if code in TRANSIENT_CODES:
                raise StoreError(f"Tablestore {operation}: {code} (HTTP {status}; throttled or unavailable, retry)") from exc
            if code == "OTSObjectNotExist":
                raise StoreError(f"Tablestore {operation}: table {self.table!r} not found (run init-store)") from exc
            detail = f": {str(exc.get_error_message())[:300]}" if code == "OTSParameterInvalid" else ""
            raise StoreError(f"Tablestore {operation} failed: {code} (HTTP {status}){detail}") from exc
        except OTSClientError as exc:  # the SDK's own checks, unreadable answers
            raise StoreError(f"Tablestore {operation} failed: client error (HTTP {exc.get_http_status()})") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:  # the SDK lets network errors through raw
            raise StoreError(f"Tablestore {operation} failed: {type(exc).__name__} (network)") from exc
        except (struct.error, OverflowError) as exc:  # the SDK's encoder packs ints as int64 and lets this through
            raise StoreError(f"Tablestore {operation} failed: a value does not fit its column type ({exc})") from exc

    def _write(self, operation: str, *args: Any) -> bool:
        """A conditional write: True if it happened, False if its condition did not hold."""
        try:
            self._call(operation, self.table, *args)
            return True
        except _ConditionFailed:
            return False

    def _get(self, pk: list, columns: list[str] | None = None) -> Row | None:
        _, row, _ = self._call("get_row", self.table, pk, columns, None, 1)
        return row

    def _range(
        self, start: list, end: list, *, columns: list[str] | None = None, direction: str = Direction.FORWARD,
        column_filter: Any = None, page: int | None = None,
    ) -> Iterator[Row]:
        """Every row of a key range, following the next start key from page to page."""
        columns = _columns_to_get(columns, column_filter)
        while start is not None:
            _, start, rows, _ = self._call(
                "get_range", self.table, direction, start, end, columns, page, column_filter, 1,
            )
            yield from rows

    def _partition(self, pk: str, **kwargs: Any) -> Iterator[Row]:
        return self._range(_pk(pk, INF_MIN), _pk(pk, INF_MAX), **kwargs)

    def _read_record(self, url: str) -> StoredRecord | None:
        row = self._get(_pk(keys.url_pk(url)))
        return record_from_fields(_columns(row)) if row is not None else None

    # -- the primitives of KeyValueStore ------------------------------------------------------

    def _put_record(self, url: str, fields: Mapping[str, Any], rev: str | None) -> bool:
        row = Row(_pk(keys.url_pk(url)), _record_columns(fields))
        return self._write("put_row", row, _when(NOT_EXIST) if rev is None else _when(EXIST, _is("rev", rev)))

    def _delete_record(self, url: str, rev: str) -> bool:
        return self._write("delete_row", Row(_pk(keys.url_pk(url))), _when(EXIST, _is("rev", rev)))

    def _put_pending_row(self, url: str, window: int, ref: str, not_before: float) -> None:
        columns = [("url", url), ("win", int(window)), ("ref", ref), ("not_before", float(not_before))]
        self._write("put_row", Row(_pk(*keys.pending_key(window, url, ref)), columns), _when(IGNORE))

    def _delete_pending_row(self, url: str, window: int, ref: str) -> None:
        self._write("delete_row", Row(_pk(*keys.pending_key(window, url, ref))), _when(EXIST, _is("ref", ref)))

    def _touch_window_entry(self, window: int, shard: int, touch: str) -> None:
        update = {"PUT": [("win", int(window)), ("touch", touch)]}
        self._write("update_row", Row(_pk(*keys.window_entry_key(window, shard)), update), _when(IGNORE))

    def _window_entries(self, shard: int, max_window: int | None) -> Iterator[tuple[int, str]]:
        for row in self._partition(keys.windows_pk(shard), columns=["win", "touch"]):
            c = _columns(row)
            if max_window is None or c["win"] <= max_window:
                yield int(c["win"]), c["touch"]

    def _delete_window_entry(self, window: int, shard: int, touch: str) -> None:
        self._write("delete_row", Row(_pk(*keys.window_entry_key(window, shard))), _when(EXIST, _is("touch", touch)))

    def _due_rows(self, window: int, shard: int, *, now: float, page_size: int) -> Iterator[PendingRow | None]:
        pk = keys.pending_pk(window, shard)
        seen = False
        due = _is("not_before", float(now), ComparatorType.LESS_EQUAL)
        for row in self._partition(pk, columns=["url", "ref"], column_filter=due, page=page_size):
            seen = True
            c = _columns(row)
            yield PendingRow(url=c["url"], window=window, ref=c["ref"])
        # The filter hides rows not due yet: the shard is empty only if an unfiltered read finds nothing.
        if not seen and next(self._partition(pk, columns=["ref"], page=1), None) is None:
            yield None

    def _put_dead_entry(self, url: str, at: int) -> None:
        self._write("put_row", Row(_pk(DEAD_PK, keys.dead_sk(at, url)), [("url", url), ("at", at)]), _when(NOT_EXIST))

    def _delete_dead_entry(self, url: str, at: int) -> None:
        self._write("delete_row", Row(_pk(DEAD_PK, keys.dead_sk(at, url))), _when(EXIST))

    def _dead_entries(self, *, page_size: int) -> Iterator[tuple[str, int]]:
        entries = self._range(
            _pk(DEAD_PK, INF_MAX), _pk(DEAD_PK, INF_MIN), columns=["url", "at"], direction=Direction.BACKWARD,
            page=page_size,
        )
        for entry in entries:
            c = _columns(entry)
            yield c["url"], int(c["at"])

    def _record_fields(self) -> Iterator[dict[str, Any]]:
        # URL records are one contiguous key range: every pk from "url#" up to (not including) "url$".
        start, end = _pk(keys.URL_PREFIX, INF_MIN), _pk(keys.URL_PREFIX[:-1] + "$", INF_MIN)
        for row in self._range(start, end):
            yield _columns(row)

    def _count_pending(self, window: int, shard: int) -> int:
        return sum(1 for _ in self._partition(keys.pending_pk(window, shard), columns=["ref"]))

    def _used(self, name: str) -> tuple[int, bool]:
        columns = _columns(self._get(_pk(name), ["used"]))
        return (int(columns["used"]), True) if "used" in columns else (0, False)

    def _set_used(self, name: str, old: int, exists: bool, new: int) -> bool:
        pk = _pk(name)
        if not exists:
            return self._write("put_row", Row(pk, [("used", new)]), _when(NOT_EXIST))
        return self._write("update_row", Row(pk, {"PUT": [("used", new)]}), _when(EXIST, _is("used", old)))

    # -- flush-on-full ------------------------------------------------------------------------

    def request_flush(self, window: int) -> bool:
        return self._write("put_row", Row(_pk(keys.flush_pk(window)), [("win", int(window))]), _when(NOT_EXIST))

    # -- set-up -------------------------------------------------------------------------------

    def create_schema(self) -> None:
        """Create the table if it is missing: pk/sk strings, one version, no TTL, no reserved throughput.

        No TTL, because Tablestore's is per table and would also expire pending rows and quota
        counters that wait longer than it; settled records are small and cheap to keep.
        """
        meta = TableMeta(self.table, [("pk", "STRING"), ("sk", "STRING")])
        options = TableOptions(time_to_live=-1, max_version=1)
        try:
            self._call("create_table", meta, options, ReservedThroughput(CapacityUnit(0, 0)))
        except StoreError as exc:
            if _code_of(exc) != "OTSObjectAlreadyExist":
                raise
        # Also when it existed: another process may have created it a moment ago.
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        """Read a key that never exists until the table stops answering OTSTableNotReady.

        A new table refuses reads and writes for a while after CreateTable returns; the first
        writes of init-store (or of a function run right after it) would fail with it.
        """
        deadline = time.monotonic() + self.ready_timeout
        while True:
            try:
                self._get(_pk(READY_PROBE_PK))
                return
            except StoreError as exc:
                if _code_of(exc) != "OTSTableNotReady":
                    raise
            if time.monotonic() + self.ready_poll > deadline:
                raise StoreError(f"Tablestore table {self.table!r} still not ready after {self.ready_timeout:g} s")
            time.sleep(self.ready_poll)

    def close(self) -> None:
        self._client = None  # the SDK keeps a connection pool and has no close; let it go


def _code_of(error: StoreError) -> str | None:
    """The service's error code behind a StoreError, if a service error caused it."""
    cause = error.__cause__
    return cause.get_error_code() if isinstance(cause, OTSServiceError) else None


class BoundedRetries(tablestore.DefaultRetryPolicy):
    """The SDK's rules for what to retry (throttling on every operation, server errors on reads), with a
    budget that fits a function's timeout: `max_retries` retries sleeping at most `max_retry_delay` each."""

    def __init__(self, max_retries: int = 3, max_retry_delay: float = 1.0) -> None:
        self.max_retry_times = max_retries
        self.max_retry_delay = max_retry_delay
