"""DynamoDB store: the Store port on one table (keys `pk`, `sk`, both strings), shared by every invocation.

Rows and keys are those of `keys.py`. The URL record (`url#H`) holds the URL's lifecycle state
as flat attributes (`lifecycle.UrlState.to_fields`), its tokens `ref` and `rev`, `dead_at` (µs)
and, once settled, `expires_at` for DynamoDB's TTL.

Every write is conditional (a ConditionExpression); a failed condition is control flow.
The order of writes, and so crash safety, is `keyvalue.KeyValueStore`'s; this module
says how each read and conditional write is done with boto3.
"""

from __future__ import annotations

import re
import time
from decimal import Decimal
from typing import Any, Iterator, Mapping
from urllib.parse import parse_qs, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ..lifecycle import ACTIVE
from ..ports import StoreError
from ..settings import check_endpoint
from . import keys
from .keys import DEAD_PK, NO_SORT_KEY
from .keyvalue import KeyValueStore, PendingRow, StoredRecord, record_from_fields

TRANSIENT_CODES = frozenset({
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "InternalServerError", "ServiceUnavailable", "LimitExceededException",
    "TransactionConflictException",
})
CONDITION_FAILED = "ConditionalCheckFailedException"


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


def _fields(item: Mapping[str, dict]) -> dict[str, Any]:
    """An item's attributes as plain values: strings as str, numbers as int or float."""
    fields: dict[str, Any] = {}
    for name, value in item.items():
        if "S" in value:
            fields[name] = value["S"]
        elif "N" in value:
            text = value["N"]
            fields[name] = float(text) if any(c in text for c in ".eE") else int(text)
    return fields


def _key(pk: str, sk: str = NO_SORT_KEY) -> dict:
    return {"pk": _s(pk), "sk": _s(sk)}


def _expires_at(keep_until: float) -> int:
    """When DynamoDB's TTL may drop a settled record: a while after its dedupe horizon."""
    return int(keep_until) + keys.RETAIN_AFTER_KEEP_SECONDS


def _record_item(url: str, fields: Mapping[str, Any]) -> dict:
    """The URL record as an item; a settled one (not active) also gets its TTL."""
    item = {**_key(keys.url_pk(url)), **{name: _s(v) if isinstance(v, str) else _n(v) for name, v in fields.items()}}
    if fields["phase"] not in ACTIVE:
        item["expires_at"] = _n(_expires_at(fields.get("keep_until", 0)))
    return item


class DynamoDbStore(KeyValueStore):
    """The Store port on one DynamoDB table; see the module docstring for the layout."""

    NAME = "DynamoDB"

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

    def _read_record(self, url: str) -> StoredRecord | None:
        item = self._get(_key(keys.url_pk(url)))
        return record_from_fields(_fields(item)) if item else None

    # -- the primitives of KeyValueStore ------------------------------------------------------

    def _put_record(self, url: str, fields: Mapping[str, Any], rev: str | None) -> bool:
        condition, values = ("attribute_not_exists(pk)", None) if rev is None else ("rev = :rev", {":rev": _s(rev)})
        return self._write("put_item", condition, values, Item=_record_item(url, fields)) is not None

    def _delete_record(self, url: str, rev: str) -> bool:
        return self._write("delete_item", "rev = :rev", {":rev": _s(rev)}, Key=_key(keys.url_pk(url))) is not None

    def _put_pending_row(self, url: str, window: int, ref: str, not_before: float) -> None:
        item = {
            **_key(*keys.pending_key(window, url, ref)), "url": _s(url), "win": _n(window),
            "ref": _s(ref), "not_before": _n(not_before),
        }
        # The only other URL that could own this key is a SHA-1 collision: never overwrite it.
        if self._write("put_item", "attribute_not_exists(pk) OR url = :url", {":url": _s(url)}, Item=item) is None:
            raise StoreError(f"DynamoDB: pending row key collision for {keys.url_hash(url)}")

    def _delete_pending_row(self, url: str, window: int, ref: str) -> None:
        self._write("delete_item", "ref = :ref", {":ref": _s(ref)}, Key=_key(*keys.pending_key(window, url, ref)))

    def _touch_window_entry(self, window: int, shard: int, touch: str) -> None:
        self._write(
            "update_item",
            "attribute_not_exists(pk) OR win = :win",
            {":win": _n(window), ":touch": _s(touch)},
            Key=_key(*keys.window_entry_key(window, shard)),
            UpdateExpression="SET win = :win, touch = :touch",
        )

    def _window_entries(self, shard: int, max_window: int | None) -> Iterator[tuple[int, str]]:
        top = keys.window_key(max_window) if max_window is not None else None
        for page in self._query(keys.windows_pk(shard), sk_at_most=top):
            for item in page.get("Items", []):
                yield int(_num(item, "win")), _str(item, "touch")

    def _delete_window_entry(self, window: int, shard: int, touch: str) -> None:
        key = _key(*keys.window_entry_key(window, shard))
        self._write("delete_item", "touch = :touch", {":touch": _s(touch)}, Key=key)

    def _due_rows(self, window: int, shard: int, *, now: float, page_size: int) -> Iterator[PendingRow | None]:
        scanned = 0  # rows read before the filter: zero means the shard is empty
        for page in self._query(
            keys.pending_pk(window, shard),
            FilterExpression="not_before <= :now",
            ExpressionAttributeValues={":now": _n(now)},
            Limit=page_size,
        ):
            scanned += page.get("ScannedCount", 0)
            for item in page.get("Items", []):
                yield PendingRow(url=_str(item, "url"), window=window, ref=_str(item, "ref"))
        if scanned == 0:
            yield None

    def _put_dead_entry(self, url: str, at: int) -> None:
        self._write(
            "put_item", "attribute_not_exists(pk)", None,
            Item={**_key(DEAD_PK, keys.dead_sk(at, url)), "url": _s(url), "at": _n(at)},
        )

    def _delete_dead_entry(self, url: str, at: int) -> None:
        self._write("delete_item", "attribute_exists(pk)", None, Key=_key(DEAD_PK, keys.dead_sk(at, url)))

    def _dead_entries(self, *, page_size: int) -> Iterator[tuple[str, int]]:
        for page in self._query(DEAD_PK, ScanIndexForward=False, Limit=page_size):
            for entry in page.get("Items", []):
                yield _str(entry, "url"), int(_num(entry, "at"))

    def _record_fields(self) -> Iterator[dict[str, Any]]:
        (filter_,), names = _named("begins_with(pk, :prefix)")
        request: dict[str, Any] = dict(
            TableName=self.table, FilterExpression=filter_, ExpressionAttributeNames=names,
            ExpressionAttributeValues={":prefix": _s(keys.URL_PREFIX)}, ConsistentRead=True,
        )
        while True:
            page = self._call("scan", **request)
            for item in page.get("Items", []):
                yield _fields(item)
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _count_pending(self, window: int, shard: int) -> int:
        return sum(page.get("Count", 0) for page in self._query(keys.pending_pk(window, shard), Select="COUNT"))

    def _used(self, name: str) -> tuple[int, bool]:
        item = self._get(_key(name))
        return (int(_num(item, "used")), True) if item and "used" in item else (0, False)

    def _set_used(self, name: str, old: int, exists: bool, new: int) -> bool:
        condition = "used = :old" if exists else "attribute_not_exists(used)"
        values = {":new": _n(new), **({":old": _n(old)} if exists else {})}
        return self._write(
            "update_item", condition, values, Key=_key(name), UpdateExpression="SET used = :new",
        ) is not None

    def _reserve_in_one_write(self, name: str, wanted: int, limit: int) -> bool:
        return self._write(
            "update_item", "attribute_not_exists(used) OR used <= :room",
            {":room": _n(limit - wanted), ":wanted": _n(wanted), ":zero": _n(0)},
            Key=_key(name), UpdateExpression="SET used = if_not_exists(used, :zero) + :wanted",
        ) is not None

    # -- flush-on-full ------------------------------------------------------------------------

    def request_flush(self, window: int) -> bool:
        # expires_at is housekeeping for TTL only, so the wall clock is good enough here.
        item = {**_key(keys.flush_pk(window)), "expires_at": _n(int(time.time()) + keys.RETAIN_AFTER_KEEP_SECONDS)}
        return self._write("put_item", "attribute_not_exists(pk)", None, Item=item) is not None

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
