"""Tablestore store: the Store port on one Tablestore table (primary key `pk` STRING, `sk` STRING).

Rows and keys are those of `keys.py`; the columns of the URL record (`url#H`) are

    url, state (pending|pushed|dead), win, not_before, lease_owner (absent: no lease),
    lease_until, attempts, ref, reason, task_id, keep_until, updated_at, dead_at (µs)

with times as DOUBLE and counts as INTEGER. `ref` is a fresh token each time a URL becomes
pending, copied onto its pending row; a row whose ref is not its record's is stale.

Writes that decide anything carry a Condition: a row existence expectation plus column
conditions built with `pass_if_missing=False` (the SDK's default is True, which would let a
row without the column pass). A check that needs a value first reads it, then writes on
condition that it is unchanged (compare-and-set), e.g. the quota counter. Two writes are
deliberately unconditioned (RowExistenceExpectation.IGNORE): re-putting a pending row and
touching the windows index, both idempotent, keyed by hash, and checked by `ref`/`touch`.

Crash safety is as in the DynamoDB store: record first, then pending row, then index; a
repeat of the add re-puts the row of a record found pending.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence
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

from ..ports import ClaimedUrl, DeadLetter, StoreCounts, StoreError
from ..settings import check_endpoint
from . import keys
from .keys import DEAD_PK, NO_SORT_KEY, STATE_DEAD, STATE_PENDING, STATE_PUSHED

if TYPE_CHECKING:
    from ..credentials import Credentials

TRANSIENT_CODES = frozenset({
    "OTSServerBusy", "OTSTimeout", "OTSServerUnavailable", "OTSInternalServerError",
    "OTSNotEnoughCapacityUnit", "OTSPartitionUnavailable", "OTSTableNotReady",
    "OTSRowOperationConflict", "OTSOperationThrottled", "OTSQuotaExhausted",
})
CONDITION_FAILED = "OTSConditionCheckFail"
MAX_CAS_ROUNDS = 64
# The SDK logs every failed condition as an ERROR and, at DEBUG, request headers with the
# security token: its logger is ours, and silenced; errors reach callers as StoreError.
SDK_LOGGER = "handler.stores.tablestore.sdk"

EXIST = RowExistenceExpectation.EXPECT_EXIST
NOT_EXIST = RowExistenceExpectation.EXPECT_NOT_EXIST
IGNORE = RowExistenceExpectation.IGNORE


class _ConditionFailed(Exception):
    """A write's condition did not hold: control flow, never an error."""


@dataclass(frozen=True)
class _Record:
    url: str
    state: str
    win: int
    not_before: float
    lease_owner: str | None
    lease_until: float
    attempts: int
    ref: str
    keep_until: float
    reason: str
    updated_at: float
    dead_at: int


def _columns(row: Row | None) -> dict[str, Any]:
    return {} if row is None else {c[0]: c[1] for c in row.attribute_columns or []}


def _record(row: Row | None) -> _Record | None:
    if row is None:
        return None
    c = _columns(row)
    return _Record(
        url=c.get("url", ""), state=c.get("state", ""), win=int(c.get("win", 0)),
        not_before=float(c.get("not_before", 0.0)), lease_owner=c.get("lease_owner"),
        lease_until=float(c.get("lease_until", 0.0)), attempts=int(c.get("attempts", 0)), ref=c.get("ref", ""),
        keep_until=float(c.get("keep_until", 0.0)), reason=c.get("reason", ""),
        updated_at=float(c.get("updated_at", 0.0)), dead_at=int(c.get("dead_at", 0)),
    )


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


def _when(expectation: str, *conditions: SingleColumnCondition) -> Condition:
    return Condition(expectation, _all(*conditions) if conditions else None)


class TablestoreStore:
    """The Store port on one Tablestore table; see the module docstring for the layout."""

    def __init__(
        self,
        instance: str,
        table: str,
        *,
        endpoint: str | None = None,
        credentials: "Credentials | None" = None,
        client: Any = None,
    ) -> None:
        self.instance = instance
        self.table = table
        self.endpoint = endpoint
        self._credentials = credentials
        self._client = client

    @classmethod
    def from_url(cls, url: str, *, credentials: "Credentials | None" = None) -> "TablestoreStore":
        """`tablestore://INSTANCE/TABLE?endpoint=https://INSTANCE.REGION.ots.aliyuncs.com`."""
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
        return cls(instance, table, endpoint=endpoint, credentials=credentials)

    @property
    def client(self) -> Any:
        """The SDK client, built on first use (credentials are resolved only then)."""
        if self._client is None:
            from ..credentials import resolve_credentials

            credentials = resolve_credentials(self._credentials)
            logging.getLogger(SDK_LOGGER).setLevel(logging.CRITICAL)
            self._client = tablestore.OTSClient(
                self.endpoint, credentials.access_key_id, credentials.access_key_secret, self.instance,
                sts_token=credentials.security_token, socket_timeout=10, logger_name=SDK_LOGGER,
                retry_policy=_FewRetries(),
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
        while start is not None:
            _, start, rows, _ = self._call(
                "get_range", self.table, direction, start, end, columns, page, column_filter, 1,
            )
            yield from rows

    def _partition(self, pk: str, **kwargs: Any) -> Iterator[Row]:
        return self._range(_pk(pk, INF_MIN), _pk(pk, INF_MAX), **kwargs)

    def _record_of(self, url: str) -> _Record | None:
        return _record(self._get(_pk(keys.url_pk(url))))

    # -- adding -------------------------------------------------------------------------------

    def add_pending(self, window: int, urls: Sequence[str], now: float) -> list[str]:
        added: list[str] = []
        rows: list[tuple[str, int, str, float]] = []  # url, window, ref, not_before hint
        for url in dict.fromkeys(urls):
            ref = uuid.uuid4().hex
            columns = [
                ("url", url), ("state", STATE_PENDING), ("win", int(window)), ("not_before", 0.0),
                ("lease_until", 0.0), ("attempts", 0), ("ref", ref), ("keep_until", 0.0), ("updated_at", float(now)),
            ]
            existing = self._put_unless_known(url, columns, now)
            if existing is None:
                added.append(url)
                rows.append((url, window, ref, 0.0))
            elif existing.state == STATE_PENDING:
                # Already pending: its row may be missing if an earlier add crashed midway. Re-put it.
                rows.append((url, existing.win, existing.ref, existing.not_before))
        self._put_pending_rows(rows)
        return added

    def record_dead(self, window: int, reasons: Mapping[str, str], *, now: float, keep_until: float) -> None:
        at = keys.micros(now)
        for url, reason in reasons.items():
            self._put_dead_entry(url, at)  # first, so that a crash leaves only a stale pointer
            columns = [
                ("url", url), ("state", STATE_DEAD), ("win", int(window)), ("not_before", 0.0), ("lease_until", 0.0),
                ("attempts", 0), ("reason", reason), ("keep_until", float(keep_until)), ("updated_at", float(now)),
                ("dead_at", at),
            ]
            if self._put_unless_known(url, columns, now) is not None:
                self._delete_dead_entry(url, at)

    def _put_unless_known(self, url: str, columns: list, now: float) -> _Record | None:
        """Write the URL record unless it is pending or inside its dedupe horizon; None if written, else the record."""
        pk = _pk(keys.url_pk(url))
        for _ in range(MAX_CAS_ROUNDS):
            if self._write("put_row", Row(pk, columns), _when(NOT_EXIST)):
                return None
            record = self._record_of(url)
            if record is not None and not keys.may_requeue(record.state, record.keep_until, now):
                return record
            if record is not None and self._write("put_row", Row(pk, columns), _when(
                EXIST,
                _is("state", STATE_PENDING, ComparatorType.NOT_EQUAL),
                _is("keep_until", float(now), ComparatorType.LESS_EQUAL),
            )):
                return None
            # It changed between the write and the read: look again.
        raise StoreError(f"Tablestore: URL record kept changing under add ({keys.url_hash(url)})")

    def _put_pending_rows(self, rows: list[tuple[str, int, str, float]]) -> None:
        touched: set[tuple[int, int]] = set()
        for url, window, ref, not_before in rows:
            shard = keys.shard_of(url)
            columns = [("url", url), ("win", int(window)), ("ref", ref), ("not_before", float(not_before))]
            self._write("put_row", Row(_pk(keys.pending_pk(window, shard), keys.url_hash(url)), columns), _when(IGNORE))
            touched.add((window, shard))
        # After the rows: a claim that read the index before these rows appeared sees a new touch.
        for window, shard in sorted(touched):
            update = {"PUT": [("win", int(window)), ("touch", uuid.uuid4().hex)]}
            self._write("update_row", Row(_pk(keys.windows_pk(shard), keys.window_key(window)), update), _when(IGNORE))

    # -- claiming -----------------------------------------------------------------------------

    def claim(
        self, *, max_window: int | None, now: float, limit: int, owner: str, lease_seconds: float
    ) -> list[ClaimedUrl]:
        claims: list[ClaimedUrl] = []
        if limit <= 0:
            return claims
        due = _is("not_before", float(now), ComparatorType.LESS_EQUAL)
        for window, shard, touch in self._indexed_windows(max_window):
            pk = keys.pending_pk(window, shard)
            seen = False
            for row in self._partition(pk, column_filter=due, page=max(2 * limit, 25)):
                seen = True
                claimed = self._lease(row, now=now, owner=owner, lease_seconds=lease_seconds)
                if claimed is not None:
                    claims.append(claimed)
                    if len(claims) >= limit:
                        return claims
            if not seen and next(self._partition(pk, columns=["ref"], page=1), None) is None:
                self._write(
                    "delete_row", Row(_pk(keys.windows_pk(shard), keys.window_key(window))),
                    _when(EXIST, _is("touch", touch)),
                )
        return claims

    def _indexed_windows(self, max_window: int | None) -> list[tuple[int, int, str]]:
        """(window, shard, touch) of every index entry up to max_window, oldest window first."""
        found = []
        for shard in range(keys.SHARDS):
            for row in self._partition(keys.windows_pk(shard), columns=["win", "touch"]):
                c = _columns(row)
                if max_window is None or c["win"] <= max_window:
                    found.append((int(c["win"]), shard, c["touch"]))
        return sorted(found)

    def _lease(self, row: Row, *, now: float, owner: str, lease_seconds: float) -> ClaimedUrl | None:
        c = _columns(row)
        url, ref = c["url"], c["ref"]
        record = self._record_of(url)
        if record is None or record.state != STATE_PENDING or record.ref != ref:
            # Stale: the URL was pushed, dead-lettered or re-queued since this row was written.
            self._write("delete_row", Row(row.primary_key), _when(EXIST, _is("ref", ref)))
            return None
        if record.lease_until > now or record.not_before > now:
            return None  # leased to someone else, or not due yet
        update = {"PUT": [("lease_owner", owner), ("lease_until", float(now + lease_seconds)), ("updated_at", float(now))]}
        taken = self._write("update_row", Row(_pk(keys.url_pk(url)), update), _when(
            EXIST,
            _is("state", STATE_PENDING),
            _is("ref", ref),
            _is("lease_until", float(now), ComparatorType.LESS_EQUAL),
            _is("not_before", float(now), ComparatorType.LESS_EQUAL),
            _is("attempts", record.attempts),  # so the attempts we report are the ones we leased
        ))
        return ClaimedUrl(url=url, window=record.win, attempts=record.attempts) if taken else None

    # -- settling claimed URLs ----------------------------------------------------------------

    def mark_pushed(self, task_ids: Mapping[str, str], *, now: float, keep_until: float) -> None:
        update = {
            "PUT": [("state", STATE_PUSHED), ("keep_until", float(keep_until)), ("lease_until", 0.0),
                    ("updated_at", float(now))],
            "DELETE_ALL": ["lease_owner", "reason"],
        }
        for url, task_id in task_ids.items():
            for _ in range(MAX_CAS_ROUNDS):
                old = self._record_of(url)
                if old is None:
                    break
                # Conditioned on the generation read, so the pending row deleted below is this record's.
                same = (_is("ref", old.ref),) if old.ref else (_is("state", old.state), _is("updated_at", old.updated_at))
                change = Row(_pk(keys.url_pk(url)), {**update, "PUT": update["PUT"] + [("task_id", task_id)]})
                if self._write("update_row", change, _when(EXIST, *same)):
                    self._delete_pending_row(url, old)
                    break

    def mark_dead(self, owner: str, reasons: Mapping[str, str], *, now: float, keep_until: float) -> None:
        at = keys.micros(now)
        for url, reason in reasons.items():
            old = self._record_of(url)
            if old is None or old.state != STATE_PENDING or old.lease_owner != owner:
                continue  # not ours to kill
            self._put_dead_entry(url, at)
            update = {
                "PUT": [("state", STATE_DEAD), ("reason", reason), ("keep_until", float(keep_until)),
                        ("lease_until", 0.0), ("updated_at", float(now)), ("dead_at", at)],
                "DELETE_ALL": ["lease_owner"],
            }
            if self._write("update_row", Row(_pk(keys.url_pk(url)), update), _when(
                EXIST, _is("state", STATE_PENDING), _is("lease_owner", owner), _is("ref", old.ref),
            )):
                self._delete_pending_row(url, old)
            else:
                self._delete_dead_entry(url, at)

    def defer(
        self, owner: str, urls: Sequence[str], *, not_before: float, reason: str, count_attempt: bool
    ) -> None:
        for url in dict.fromkeys(urls):
            for _ in range(MAX_CAS_ROUNDS):
                old = self._record_of(url)
                if old is None or old.state != STATE_PENDING or old.lease_owner != owner:
                    break  # no longer ours
                update = {
                    "PUT": [("not_before", float(not_before)), ("reason", reason), ("lease_until", 0.0),
                            ("attempts", old.attempts + int(count_attempt))],
                    "DELETE_ALL": ["lease_owner"],
                }
                if self._write("update_row", Row(_pk(keys.url_pk(url)), update), _when(
                    EXIST, _is("state", STATE_PENDING), _is("lease_owner", owner), _is("ref", old.ref),
                    _is("attempts", old.attempts),
                )):
                    # The row's copy of not_before lets claim skip deferred rows without reading their records.
                    hint = Row(_pk(keys.pending_pk(old.win, keys.shard_of(url)), keys.url_hash(url)),
                               {"PUT": [("not_before", float(not_before))]})
                    self._write("update_row", hint, _when(EXIST, _is("ref", old.ref)))
                    break

    def _delete_pending_row(self, url: str, old: _Record) -> None:
        if old.state == STATE_PENDING and old.ref:
            pk = _pk(keys.pending_pk(old.win, keys.shard_of(url)), keys.url_hash(url))
            self._write("delete_row", Row(pk), _when(EXIST, _is("ref", old.ref)))

    def _put_dead_entry(self, url: str, at: int) -> None:
        self._write("put_row", Row(_pk(DEAD_PK, keys.dead_sk(at, url)), [("url", url), ("at", at)]), _when(NOT_EXIST))

    def _delete_dead_entry(self, url: str, at: int) -> None:
        self._write("delete_row", Row(_pk(DEAD_PK, keys.dead_sk(at, url))), _when(EXIST))

    # -- quota --------------------------------------------------------------------------------

    def reserve_quota(self, day: str, wanted: int, limit: int) -> int:
        if wanted <= 0:
            return 0
        for round_ in range(MAX_CAS_ROUNDS):
            used, exists = self._used(day)
            granted = max(0, min(wanted, limit - used))
            if granted == 0:
                return 0
            if self._set_used(day, used, exists, used + granted):
                return granted
            _backoff(round_)
        raise StoreError(f"Tablestore: quota counter {day} too contended")

    def release_quota(self, day: str, amount: int) -> None:
        if amount <= 0:
            return
        for round_ in range(MAX_CAS_ROUNDS):
            used, exists = self._used(day)
            if not exists or used == 0:
                return
            if self._set_used(day, used, exists, max(0, used - amount)):
                return
            _backoff(round_)
        raise StoreError(f"Tablestore: quota counter {day} too contended")

    def _used(self, day: str) -> tuple[int, bool]:
        columns = _columns(self._get(_pk(keys.quota_pk(day)), ["used"]))
        return (int(columns["used"]), True) if "used" in columns else (0, False)

    def _set_used(self, day: str, old: int, exists: bool, new: int) -> bool:
        """Compare-and-set: the counter becomes `new` only if it still is `old` (or still absent)."""
        pk = _pk(keys.quota_pk(day))
        if not exists:
            return self._write("put_row", Row(pk, [("used", new)]), _when(NOT_EXIST))
        return self._write("update_row", Row(pk, {"PUT": [("used", new)]}), _when(EXIST, _is("used", old)))

    def quota_used(self, day: str) -> int:
        return self._used(day)[0]

    # -- flush-on-full and reports ------------------------------------------------------------

    def request_flush(self, window: int) -> bool:
        return self._write("put_row", Row(_pk(keys.flush_pk(window)), [("win", int(window))]), _when(NOT_EXIST))

    def pending_in_window(self, window: int) -> int:
        return sum(
            1 for shard in range(keys.SHARDS) for _ in self._partition(keys.pending_pk(window, shard), columns=["ref"])
        )

    def counts(self, now: float) -> StoreCounts:
        pending = deferred = pushed = dead = 0
        # URL records are one contiguous key range: every pk from "url#" up to (not including) "url$".
        start, end = _pk(keys.URL_PREFIX, INF_MIN), _pk(keys.URL_PREFIX[:-1] + "$", INF_MIN)
        for row in self._range(start, end, columns=["state", "not_before", "keep_until"]):
            c = _columns(row)
            state = c.get("state")
            if state == STATE_PENDING:
                pending += 1
                deferred += c.get("not_before", 0.0) > now
            elif state == STATE_PUSHED and c.get("keep_until", 0.0) > now:
                pushed += 1
            elif state == STATE_DEAD and c.get("keep_until", 0.0) > now:
                dead += 1
        return StoreCounts(pending=pending, deferred=int(deferred), pushed=pushed, dead=dead)

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        letters: list[DeadLetter] = []
        if limit <= 0:
            return letters
        entries = self._range(
            _pk(DEAD_PK, INF_MAX), _pk(DEAD_PK, INF_MIN), columns=["url", "at"], direction=Direction.BACKWARD,
            page=max(limit, 25),
        )
        for entry in entries:
            c = _columns(entry)
            at = int(c["at"])
            if len(letters) >= limit and keys.micros(letters[-1].at) != at:
                break  # past the last time that may still tie
            record = self._record_of(c["url"])
            if record is not None and record.state == STATE_DEAD and record.dead_at == at:
                letters.append(DeadLetter(record.url, record.reason, record.win, record.updated_at))
        return sorted(letters, key=lambda d: (-d.at, d.url))[:limit]

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
            cause = exc.__cause__
            if not (isinstance(cause, OTSServiceError) and cause.get_error_code() == "OTSObjectAlreadyExist"):
                raise

    def close(self) -> None:
        self._client = None  # the SDK keeps a connection pool and has no close; let it go


class _FewRetries(tablestore.DefaultRetryPolicy):
    """The SDK's retry rules, with a budget that fits a function's timeout (the default allows 20 retries)."""

    max_retry_times = 3
    max_retry_delay = 1


def _backoff(round_: int) -> None:
    """A short jittered pause between lost compare-and-set rounds, so racing callers spread out."""
    time.sleep(random.uniform(0, min(0.05, 0.002 * (round_ + 1))))
