"""DynamoDB store: the Store port on one table (keys `pk`, `sk`, both strings), shared by every invocation.

Rows and keys are those of `keys.py`. The URL record (`url#H`) is the authority on a URL:

    url, state (pending|pushed|dead), win, not_before, lease_owner, lease_until, attempts,
    ref, reason, task_id, keep_until, updated_at, dead_at (µs), expires_at (TTL)

`ref` is a fresh token each time a URL becomes pending; its pending row carries the same
token. A pending row whose ref differs from its record's (or whose record is no longer
pending) is stale and is deleted by `claim`, never pushed.

Every write is conditional (a ConditionExpression); a failed condition is control flow.
Crash safety: add_pending writes the record, then the pending row, then touches the
windows index. A crash in between leaves a pending record without its row; the retried
invocation finds the record pending and re-puts its row and index entry (idempotent).
`claim` deletes an index entry only if the shard has no rows and nobody touched the entry
since it was read, so an entry can never vanish under a row written after the read.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterator, Mapping, Sequence
from urllib.parse import parse_qs, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ..ports import ClaimedUrl, DeadLetter, StoreCounts, StoreError
from ..settings import check_endpoint
from . import keys
from .keys import DEAD_PK, NO_SORT_KEY, STATE_DEAD, STATE_PENDING, STATE_PUSHED

TRANSIENT_CODES = frozenset({
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "InternalServerError", "ServiceUnavailable", "LimitExceededException",
    "TransactionConflictException",
})
CONDITION_FAILED = "ConditionalCheckFailedException"
MAX_CAS_ROUNDS = 64  # a compare-and-set that loses this often is contended beyond reason


@dataclass(frozen=True)
class _Record:
    url: str
    state: str
    win: int
    not_before: float
    lease_until: float
    attempts: int
    ref: str
    keep_until: float
    reason: str
    updated_at: float
    dead_at: int


def _s(value: str) -> dict:
    return {"S": value}


def _n(value: float | int) -> dict:
    # Plain decimal notation: never an exponent, whatever the float.
    text = str(value) if isinstance(value, int) else format(Decimal(repr(float(value))), "f")
    return {"N": text}


def _num(item: Mapping[str, dict], name: str, default: float = 0) -> float:
    return float(item[name]["N"]) if name in item else default


def _str(item: Mapping[str, dict], name: str, default: str = "") -> str:
    return item[name]["S"] if name in item else default


def _record(item: Mapping[str, dict] | None) -> _Record | None:
    if not item:
        return None
    return _Record(
        url=_str(item, "url"), state=_str(item, "state"), win=int(_num(item, "win")),
        not_before=_num(item, "not_before"), lease_until=_num(item, "lease_until"),
        attempts=int(_num(item, "attempts")), ref=_str(item, "ref"), keep_until=_num(item, "keep_until"),
        reason=_str(item, "reason"), updated_at=_num(item, "updated_at"), dead_at=int(_num(item, "dead_at")),
    )


def _key(pk: str, sk: str = NO_SORT_KEY) -> dict:
    return {"pk": _s(pk), "sk": _s(sk)}


class DynamoDbStore:
    """The Store port on one DynamoDB table; see the module docstring for the layout."""

    def __init__(
        self,
        table: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        client: Any = None,
    ) -> None:
        self.table = table
        if client is None:
            config = Config(
                retries={"max_attempts": 4, "mode": "standard"}, connect_timeout=3, read_timeout=10
            )
            # A session of our own: the default session is shared, and not thread-safe to create clients from.
            client = boto3.session.Session().client(
                "dynamodb", region_name=region, endpoint_url=endpoint_url, config=config
            )
        self._client = client

    @classmethod
    def from_url(cls, url: str) -> "DynamoDbStore":
        """`dynamodb://TABLE?region=cn-hangzhou&endpoint_url=https://...` (both parameters optional)."""
        parts = urlsplit(url)
        table = parts.netloc
        if parts.scheme != "dynamodb" or not table or parts.path not in ("", "/"):
            raise ValueError(f"DynamoDB store URL must look like dynamodb://TABLE?region=REGION, not {url!r}")
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        unknown = sorted(set(params) - {"region", "endpoint_url"})
        if unknown:
            raise ValueError(f"DynamoDB store URL: unknown parameter {unknown[0]!r} (known: region, endpoint_url)")
        endpoint_url = params.get("endpoint_url") or None
        if endpoint_url is not None:
            check_endpoint(endpoint_url, "store endpoint_url")
        return cls(table, region=params.get("region") or None, endpoint_url=endpoint_url)

    # -- the SDK boundary ---------------------------------------------------------------------

    def _call(self, operation: str, **params: Any) -> dict:
        """One SDK call; every SDK error leaves as StoreError, by code, without its message text."""
        try:
            return getattr(self._client, operation)(**params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "Unknown")
            if code == CONDITION_FAILED:
                raise
            if code in TRANSIENT_CODES:
                raise StoreError(f"DynamoDB {operation}: {code} (throttled or unavailable; retry)") from exc
            if code == "ResourceNotFoundException":
                raise StoreError(f"DynamoDB {operation}: table {self.table!r} not found (run init-store)") from exc
            detail = ""
            if code == "ValidationException":  # our own request was refused: the text says what to fix
                detail = ": " + str(exc.response.get("Error", {}).get("Message", ""))[:300]
            raise StoreError(f"DynamoDB {operation} failed: {code}{detail}") from exc
        except BotoCoreError as exc:  # endpoint unreachable, timeouts, no credentials
            raise StoreError(f"DynamoDB {operation} failed: {type(exc).__name__}") from exc

    def _write(self, operation: str, condition: str, values: Mapping[str, dict] | None = None, **params) -> dict | None:
        """A conditional write: the response, or None when the condition did not hold."""
        if "UpdateExpression" in params:
            (condition, params["UpdateExpression"]), names = _named(condition, params["UpdateExpression"])
        else:
            (condition,), names = _named(condition)
        params["ExpressionAttributeNames"] = names
        if values:
            params["ExpressionAttributeValues"] = dict(values)
        try:
            return self._call(operation, TableName=self.table, ConditionExpression=condition, **params)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == CONDITION_FAILED:
                return None
            raise  # pragma: no cover - _call translates every other code

    def _get(self, key: dict) -> dict | None:
        return self._call("get_item", TableName=self.table, Key=key, ConsistentRead=True).get("Item")

    def _query(self, pk: str, *, sk_at_most: str | None = None, **params: Any) -> Iterator[dict]:
        """Every page of a consistent query of one partition."""
        condition = "pk = :pk" + (" AND sk <= :top" if sk_at_most is not None else "")
        values = {":pk": _s(pk), **({":top": _s(sk_at_most)} if sk_at_most is not None else {})}
        values.update(params.pop("ExpressionAttributeValues", {}))
        if "FilterExpression" in params:
            (condition, params["FilterExpression"]), names = _named(condition, params["FilterExpression"])
        else:
            (condition,), names = _named(condition)
        request = dict(
            TableName=self.table, KeyConditionExpression=condition, ExpressionAttributeValues=values,
            ExpressionAttributeNames=names, ConsistentRead=True, **params,
        )
        while True:
            page = self._call("query", **request)
            yield page
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _record_of(self, url: str) -> _Record | None:
        return _record(self._get(_key(keys.url_pk(url))))

    # -- adding -------------------------------------------------------------------------------

    def add_pending(self, window: int, urls: Sequence[str], now: float) -> list[str]:
        added: list[str] = []
        rows: list[tuple[str, int, str, float]] = []  # url, window, ref, not_before hint
        for url in dict.fromkeys(urls):
            ref = uuid.uuid4().hex
            item = {
                **_key(keys.url_pk(url)), "url": _s(url), "state": _s(STATE_PENDING), "win": _n(window),
                "not_before": _n(0), "lease_until": _n(0), "attempts": _n(0), "ref": _s(ref),
                "keep_until": _n(0), "updated_at": _n(now),
            }
            existing = self._put_unless_known(url, item, now)
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
            item = {
                **_key(keys.url_pk(url)), "url": _s(url), "state": _s(STATE_DEAD), "win": _n(window),
                "not_before": _n(0), "lease_until": _n(0), "attempts": _n(0), "reason": _s(reason),
                "keep_until": _n(keep_until), "updated_at": _n(now), "dead_at": _n(at),
                "expires_at": _n(int(keep_until) + keys.RETAIN_AFTER_KEEP_SECONDS),
            }
            if self._put_unless_known(url, item, now) is not None:
                self._delete_dead_entry(url, at)

    def _put_unless_known(self, url: str, item: dict, now: float) -> _Record | None:
        """Write the URL record unless it is pending or inside its dedupe horizon; None if written, else the record."""
        for _ in range(MAX_CAS_ROUNDS):
            written = self._write(
                "put_item",
                "attribute_not_exists(pk) OR (state <> :pending AND keep_until <= :now)",
                {":pending": _s(STATE_PENDING), ":now": _n(now)},
                Item=item,
            )
            if written is not None:
                return None
            record = self._record_of(url)
            if record is not None and not keys.may_requeue(record.state, record.keep_until, now):
                return record
            # It changed between the write and the read (expired, or removed by TTL): try again.
        raise StoreError(f"DynamoDB: URL record kept changing under add ({keys.url_hash(url)})")

    def _put_pending_rows(self, rows: list[tuple[str, int, str, float]]) -> None:
        touched: set[tuple[int, int]] = set()
        for url, window, ref, not_before in rows:
            shard = keys.shard_of(url)
            item = {
                **_key(keys.pending_pk(window, shard), keys.url_hash(url)), "url": _s(url), "win": _n(window),
                "ref": _s(ref), "not_before": _n(not_before),
            }
            # The only other URL that could own this key is a SHA-1 collision: never overwrite it.
            if self._write("put_item", "attribute_not_exists(pk) OR url = :url", {":url": _s(url)}, Item=item) is None:
                raise StoreError(f"DynamoDB: pending row key collision for {keys.url_hash(url)}")
            touched.add((window, shard))
        # After the rows: a claim that read the index before these rows appeared sees a new touch.
        for window, shard in sorted(touched):
            self._write(
                "update_item",
                "attribute_not_exists(pk) OR win = :win",
                {":win": _n(window), ":touch": _s(uuid.uuid4().hex)},
                Key=_key(keys.windows_pk(shard), keys.window_key(window)),
                UpdateExpression="SET win = :win, touch = :touch",
            )

    # -- claiming -----------------------------------------------------------------------------

    def claim(
        self, *, max_window: int | None, now: float, limit: int, owner: str, lease_seconds: float
    ) -> list[ClaimedUrl]:
        claims: list[ClaimedUrl] = []
        if limit <= 0:
            return claims
        for window, shard, touch in self._indexed_windows(max_window):
            scanned = 0
            for page in self._query(
                keys.pending_pk(window, shard),
                FilterExpression="not_before <= :now",
                ExpressionAttributeValues={":now": _n(now)},
                Limit=max(2 * limit, 25),
            ):
                scanned += page.get("ScannedCount", 0)
                for row in page.get("Items", []):
                    claimed = self._lease(row, now=now, owner=owner, lease_seconds=lease_seconds)
                    if claimed is not None:
                        claims.append(claimed)
                        if len(claims) >= limit:
                            return claims
            if scanned == 0:
                self._write(
                    "delete_item", "touch = :touch", {":touch": _s(touch)},
                    Key=_key(keys.windows_pk(shard), keys.window_key(window)),
                )
        return claims

    def _indexed_windows(self, max_window: int | None) -> list[tuple[int, int, str]]:
        """(window, shard, touch) of every index entry up to max_window, oldest window first."""
        top = keys.window_key(max_window) if max_window is not None else None
        if max_window is not None and max_window < 0:
            return []
        found = []
        for shard in range(keys.SHARDS):
            for page in self._query(keys.windows_pk(shard), sk_at_most=top):
                found.extend((int(_num(i, "win")), shard, _str(i, "touch")) for i in page.get("Items", []))
        return sorted(found)

    def _lease(self, row: dict, *, now: float, owner: str, lease_seconds: float) -> ClaimedUrl | None:
        url, ref = _str(row, "url"), _str(row, "ref")
        answer = self._write(
            "update_item",
            "state = :pending AND ref = :ref AND lease_until <= :now AND not_before <= :now",
            {":pending": _s(STATE_PENDING), ":ref": _s(ref), ":now": _n(now),
             ":owner": _s(owner), ":until": _n(now + lease_seconds)},
            Key=_key(keys.url_pk(url)),
            UpdateExpression="SET lease_owner = :owner, lease_until = :until, updated_at = :now",
            ReturnValues="ALL_NEW",
        )
        if answer is not None:
            record = _record(answer["Attributes"])
            return ClaimedUrl(url=url, window=record.win, attempts=record.attempts)
        record = self._record_of(url)
        if record is None or record.state != STATE_PENDING or record.ref != ref:
            # Stale: the URL was pushed, dead-lettered or re-queued since this row was written.
            self._write("delete_item", "ref = :ref", {":ref": _s(ref)}, Key=_key(row["pk"]["S"], row["sk"]["S"]))
        return None  # else leased to someone else, or not due yet

    # -- settling claimed URLs ----------------------------------------------------------------

    def mark_pushed(self, task_ids: Mapping[str, str], *, now: float, keep_until: float) -> None:
        for url, task_id in task_ids.items():
            answer = self._write(
                "update_item",
                "attribute_exists(pk)",
                {":pushed": _s(STATE_PUSHED), ":task": _s(task_id), ":keep": _n(keep_until), ":zero": _n(0),
                 ":now": _n(now), ":expires": _n(int(keep_until) + keys.RETAIN_AFTER_KEEP_SECONDS)},
                Key=_key(keys.url_pk(url)),
                UpdateExpression="SET state = :pushed, task_id = :task, keep_until = :keep, lease_until = :zero,"
                " updated_at = :now, expires_at = :expires REMOVE lease_owner, reason",
                ReturnValues="ALL_OLD",
            )
            if answer is not None:
                self._delete_pending_row(url, _record(answer["Attributes"]))

    def mark_dead(self, owner: str, reasons: Mapping[str, str], *, now: float, keep_until: float) -> None:
        at = keys.micros(now)
        for url, reason in reasons.items():
            self._put_dead_entry(url, at)
            answer = self._write(
                "update_item",
                "state = :pending AND lease_owner = :owner",
                {":pending": _s(STATE_PENDING), ":owner": _s(owner), ":dead": _s(STATE_DEAD), ":reason": _s(reason),
                 ":keep": _n(keep_until), ":zero": _n(0), ":now": _n(now), ":at": _n(at),
                 ":expires": _n(int(keep_until) + keys.RETAIN_AFTER_KEEP_SECONDS)},
                Key=_key(keys.url_pk(url)),
                UpdateExpression="SET state = :dead, reason = :reason, keep_until = :keep, lease_until = :zero,"
                " updated_at = :now, dead_at = :at, expires_at = :expires REMOVE lease_owner",
                ReturnValues="ALL_OLD",
            )
            if answer is None:
                self._delete_dead_entry(url, at)  # not ours to kill
            else:
                self._delete_pending_row(url, _record(answer["Attributes"]))

    def defer(
        self, owner: str, urls: Sequence[str], *, not_before: float, reason: str, count_attempt: bool
    ) -> None:
        for url in dict.fromkeys(urls):
            answer = self._write(
                "update_item",
                "state = :pending AND lease_owner = :owner",
                {":pending": _s(STATE_PENDING), ":owner": _s(owner), ":nb": _n(not_before), ":reason": _s(reason),
                 ":zero": _n(0), ":add": _n(int(count_attempt))},
                Key=_key(keys.url_pk(url)),
                UpdateExpression="SET not_before = :nb, reason = :reason, lease_until = :zero,"
                " attempts = attempts + :add REMOVE lease_owner",
                ReturnValues="ALL_NEW",
            )
            if answer is None:
                continue
            record = _record(answer["Attributes"])
            # The row's copy of not_before lets claim skip deferred rows without reading their records.
            self._write(
                "update_item", "ref = :ref", {":ref": _s(record.ref), ":nb": _n(not_before)},
                Key=_key(keys.pending_pk(record.win, keys.shard_of(url)), keys.url_hash(url)),
                UpdateExpression="SET not_before = :nb",
            )

    def _delete_pending_row(self, url: str, old: _Record) -> None:
        if old.state == STATE_PENDING and old.ref:
            self._write(
                "delete_item", "ref = :ref", {":ref": _s(old.ref)},
                Key=_key(keys.pending_pk(old.win, keys.shard_of(url)), keys.url_hash(url)),
            )

    def _put_dead_entry(self, url: str, at: int) -> None:
        self._write(
            "put_item", "attribute_not_exists(pk)", None,
            Item={**_key(DEAD_PK, keys.dead_sk(at, url)), "url": _s(url), "at": _n(at)},
        )

    def _delete_dead_entry(self, url: str, at: int) -> None:
        self._write("delete_item", "attribute_exists(pk)", None, Key=_key(DEAD_PK, keys.dead_sk(at, url)))

    # -- quota --------------------------------------------------------------------------------

    def reserve_quota(self, day: str, wanted: int, limit: int) -> int:
        if wanted <= 0:
            return 0
        key = _key(keys.quota_pk(day))
        if wanted <= limit:  # the common case, in one write: all of it fits
            if self._write(
                "update_item", "attribute_not_exists(used) OR used <= :room",
                {":room": _n(limit - wanted), ":wanted": _n(wanted), ":zero": _n(0)},
                Key=key, UpdateExpression="SET used = if_not_exists(used, :zero) + :wanted",
            ) is not None:
                return wanted
        for round_ in range(MAX_CAS_ROUNDS):  # grant what is left: compare-and-set on the value read
            used, exists = self._used(day)
            granted = max(0, min(wanted, limit - used))
            if granted == 0:
                return 0
            if self._set_used(key, used, exists, used + granted):
                return granted
            _backoff(round_)
        raise StoreError(f"DynamoDB: quota counter {day} too contended")

    def release_quota(self, day: str, amount: int) -> None:
        if amount <= 0:
            return
        key = _key(keys.quota_pk(day))
        for round_ in range(MAX_CAS_ROUNDS):
            used, exists = self._used(day)
            if not exists or used == 0:
                return
            if self._set_used(key, used, exists, max(0, used - amount)):
                return
            _backoff(round_)
        raise StoreError(f"DynamoDB: quota counter {day} too contended")

    def _used(self, day: str) -> tuple[int, bool]:
        item = self._get(_key(keys.quota_pk(day)))
        return (int(_num(item, "used")), True) if item and "used" in item else (0, False)

    def _set_used(self, key: dict, old: int, exists: bool, new: int) -> bool:
        condition = "used = :old" if exists else "attribute_not_exists(used)"
        values = {":new": _n(new), **({":old": _n(old)} if exists else {})}
        return self._write("update_item", condition, values, Key=key, UpdateExpression="SET used = :new") is not None

    def quota_used(self, day: str) -> int:
        return self._used(day)[0]

    # -- flush-on-full and reports ------------------------------------------------------------

    def request_flush(self, window: int) -> bool:
        # expires_at is housekeeping for TTL only, so the wall clock is good enough here.
        item = {**_key(keys.flush_pk(window)), "expires_at": _n(int(time.time()) + keys.RETAIN_AFTER_KEEP_SECONDS)}
        return self._write("put_item", "attribute_not_exists(pk)", None, Item=item) is not None

    def pending_in_window(self, window: int) -> int:
        return sum(
            page.get("Count", 0)
            for shard in range(keys.SHARDS)
            for page in self._query(keys.pending_pk(window, shard), Select="COUNT")
        )

    def counts(self, now: float) -> StoreCounts:
        pending = deferred = pushed = dead = 0
        (filter_, projection), names = _named("begins_with(pk, :prefix)", "state, not_before, keep_until")
        request: dict[str, Any] = dict(
            TableName=self.table, FilterExpression=filter_, ProjectionExpression=projection,
            ExpressionAttributeNames=names, ExpressionAttributeValues={":prefix": _s(keys.URL_PREFIX)},
            ConsistentRead=True,
        )
        while True:
            page = self._call("scan", **request)
            for item in page.get("Items", []):
                state = _str(item, "state")
                if state == STATE_PENDING:
                    pending += 1
                    deferred += _num(item, "not_before") > now
                elif state == STATE_PUSHED and _num(item, "keep_until") > now:
                    pushed += 1
                elif state == STATE_DEAD and _num(item, "keep_until") > now:
                    dead += 1
            if "LastEvaluatedKey" not in page:
                return StoreCounts(pending=pending, deferred=int(deferred), pushed=pushed, dead=dead)
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        letters: list[DeadLetter] = []
        if limit <= 0:
            return letters
        for page in self._query(DEAD_PK, ScanIndexForward=False, Limit=max(limit, 25)):
            for entry in page.get("Items", []):
                at = int(_num(entry, "at"))
                if len(letters) >= limit and keys.micros(letters[-1].at) != at:
                    return _newest_first(letters)[:limit]
                record = self._record_of(_str(entry, "url"))
                if record is not None and record.state == STATE_DEAD and record.dead_at == at:
                    letters.append(DeadLetter(record.url, record.reason, record.win, record.updated_at))
        return _newest_first(letters)[:limit]

    # -- set-up -------------------------------------------------------------------------------

    def create_schema(self) -> None:
        """Create the table (on-demand capacity) if it is missing, wait until it is active, enable TTL."""
        try:
            self._call(
                "create_table", TableName=self.table, BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                      {"AttributeName": "sk", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            )
        except StoreError as exc:
            if not isinstance(exc.__cause__, ClientError) or _code(exc.__cause__) != "ResourceInUseException":
                raise
        deadline = time.monotonic() + 120
        while self._call("describe_table", TableName=self.table)["Table"]["TableStatus"] != "ACTIVE":
            if time.monotonic() > deadline:
                raise StoreError(f"DynamoDB table {self.table!r} did not become active")
            time.sleep(1)
        try:  # expires_at lets DynamoDB drop settled records past their horizon; not all emulators know TTL
            self._call(
                "update_time_to_live", TableName=self.table,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
            )
        except StoreError as exc:
            if not isinstance(exc.__cause__, ClientError) or _code(exc.__cause__) not in (
                "ValidationException", "UnknownOperationException",  # already enabled; emulator without TTL
            ):
                raise

    def close(self) -> None:
        self._client.close()


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


_EXPRESSION_WORDS = frozenset({
    "AND", "OR", "NOT", "BETWEEN", "IN", "SET", "REMOVE", "ADD", "DELETE", "attribute_exists",
    "attribute_not_exists", "attribute_type", "begins_with", "contains", "size", "if_not_exists", "list_append",
})
_IDENTIFIER = re.compile(r"(?<![:#\w])([A-Za-z_][A-Za-z0-9_]*)")


def _named(*expressions: str) -> tuple[list[str], dict[str, str]]:
    """Expressions with every attribute written as #name, so no attribute ever trips DynamoDB's long
    list of reserved words (state, url, touch, ...), and the #name -> name map they need."""
    names: dict[str, str] = {}

    def placeholder(match: re.Match) -> str:
        word = match.group(1)
        if word in _EXPRESSION_WORDS:
            return word
        names[f"#{word}"] = word
        return f"#{word}"

    return [_IDENTIFIER.sub(placeholder, e) for e in expressions], names


def _newest_first(letters: list[DeadLetter]) -> list[DeadLetter]:
    return sorted(letters, key=lambda d: (-d.at, d.url))


def _backoff(round_: int) -> None:
    """A short jittered pause between lost compare-and-set rounds, so racing callers spread out."""
    time.sleep(random.uniform(0, min(0.05, 0.002 * (round_ + 1))))
