"""Storage event payloads → ObjectWritten and ObjectRemoved records, in payload order.

Sources: the FC native OSS trigger, OSS through Alibaba EventBridge (CloudEvents),
AWS S3 notifications, S3 through Amazon EventBridge, and S3 notifications carried
in SQS message bodies.

Object keys are decoded here and nowhere else, each source as its documentation
says: OSS keys (native and through EventBridge) are raw object names; S3
notification keys (direct or inside an SQS body) are URL-encoded with `+` for a
space and are decoded exactly once; Amazon EventBridge documents no encoding for
`detail.object.key`, so it is taken as it is.

`parse_event` never raises: every record it does not use is reported as a
`Skipped` with the reason, and one bad record never costs its neighbours.
"""

from __future__ import annotations

import json
from urllib.parse import unquote_plus

from .values import ValueType

TYPE_CHECKING = False  # typing is for type checkers only: see handler/values.py
if TYPE_CHECKING:
    from typing import Any, Callable

OBJECT_CREATED = "ObjectCreated:"
OBJECT_REMOVED = "ObjectRemoved:"
APPEND_OBJECT = "ObjectCreated:AppendObject"
# An aborted multipart upload never produced an object: there is nothing to refresh.
ABORT_MULTIPART_UPLOAD = "ObjectRemoved:AbortMultipartUpload"
OSS_CLOUDEVENT_SOURCE = "acs.oss"
S3_EVENTBRIDGE_SOURCE = "aws.s3"
SQS_EVENT_SOURCE = "aws:sqs"
S3_TEST_EVENT = "s3:TestEvent"
# Amazon EventBridge names S3 events by detail-type; mapped onto the notification names' prefixes.
S3_EVENTBRIDGE_DETAIL_TYPES = {"Object Created": "ObjectCreated", "Object Deleted": "ObjectRemoved"}


class MalformedEvent(ValueError):
    """A payload or a record lacks what a storage event must have; the message says what."""


class ObjectWritten(ValueType):
    """An object that was created or overwritten; `key` is the exact object name, already decoded."""

    bucket: str
    key: str
    event_name: str  # without a source prefix: "ObjectCreated:PutObject", "ObjectCreated:Put"
    source: str  # "oss" | "eventbridge" | "s3" | "s3-eventbridge" | "s3-sqs"
    event_time: str | None = None
    etag: str | None = None  # without surrounding double quotes
    size: int | None = None
    version_id: str | None = None  # S3 only, with versioning on
    sequencer: str | None = None  # S3 only: orders the events of one key

    @property
    def version(self) -> str | None:
        """What tells this write of the key from another: the version id where there is one, else the ETag."""
        return self.version_id or self.etag


class ObjectRemoved(ValueType):
    """An object that was deleted (or hidden by a delete marker); `key` is the exact object name."""

    bucket: str
    key: str
    event_name: str  # without a source prefix: "ObjectRemoved:DeleteObject", "ObjectRemoved:Delete"
    source: str
    event_time: str | None = None
    version_id: str | None = None
    sequencer: str | None = None


ObjectRecord = ObjectWritten | ObjectRemoved


class Skipped(ValueType):
    """A record (or, with index None, the whole payload) that was not used, and why."""

    index: int | None  # position in the payload's record list; None: the payload as a whole
    reason: str


class ParsedEvents:
    """What `parse_event` made of a payload: the records to use, and the ones skipped with a reason."""

    __slots__ = ("records", "skipped")

    def __init__(self, records: list[ObjectRecord] | None = None, skipped: list[Skipped] | None = None) -> None:
        self.records: list[ObjectRecord] = [] if records is None else records
        self.skipped: list[Skipped] = [] if skipped is None else skipped

    def __repr__(self) -> str:
        return f"ParsedEvents(records={self.records!r}, skipped={self.skipped!r})"


class _NotUsed(Exception):
    """A well-formed record that is deliberately not used (another event kind, a directory, ...)."""


def parse_event(payload: Any, *, include_append: bool = False) -> ParsedEvents:
    """The object records of a payload (bytes, text or parsed JSON), with a reason for each one skipped."""
    result = ParsedEvents()
    try:
        body = _load(payload)
        kind, items = _records_of(body)
    except MalformedEvent as exc:
        result.skipped.append(Skipped(None, f"malformed payload: {exc}"))
        return result
    except _NotUsed as exc:
        result.skipped.append(Skipped(None, str(exc)))
        return result
    for index, item in enumerate(items):
        if kind == "records" and isinstance(item, dict) and item.get("eventSource") == SQS_EVENT_SOURCE:
            _collect_sqs_message(item, index, include_append, result)
        else:
            _collect(_PARSERS[kind], item, index, include_append, result)
    return result


def is_timer_event(payload: Any) -> bool:
    """True for an FC Timer trigger event: {"triggerTime": ..., "triggerName": ..., "payload": ...}."""
    try:
        body = _load(payload)
    except MalformedEvent:
        return False
    return isinstance(body, dict) and isinstance(body.get("triggerTime"), str) and "triggerName" in body


def _load(payload: Any) -> Any:
    """The JSON value of a payload; bytes must be UTF-8 (a BOM is allowed)."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        try:
            payload = bytes(payload).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise MalformedEvent(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if isinstance(payload, str):
        if not payload.strip():
            raise MalformedEvent("empty")
        try:
            return json.loads(payload)
        except RecursionError:
            raise MalformedEvent("JSON nested too deeply") from None
        except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
            raise MalformedEvent(f"not JSON ({exc})") from None
    if isinstance(payload, (dict, list)):
        return payload
    raise MalformedEvent(f"a payload must be bytes, text or JSON, not {type(payload).__name__}")


def _records_of(body: Any) -> tuple[str, list]:
    """Which envelope the payload comes in and its list of records."""
    if isinstance(body, list):
        return "bus", body  # EventBridge with batching: an array of events
    if not isinstance(body, dict):
        raise MalformedEvent(f"expected a JSON object or array, got {_type(body)}")
    if "events" in body:
        return "oss", _list(body["events"], "events")
    if "Records" in body:
        # S3 notification records or SQS messages: told apart record by record by eventSource.
        return "records", _list(body["Records"], "Records")
    if "specversion" in body or "data" in body or "detail-type" in body or "detail" in body:
        return "bus", [body]
    if "triggerTime" in body:
        raise _NotUsed("a Timer trigger event, not an upload")
    raise MalformedEvent(
        "no 'events' (OSS), 'Records' (S3, SQS), CloudEvent 'data' (EventBridge) or 'detail' (Amazon EventBridge)"
    )


def _collect(parse: Callable[[Any], dict], item: Any, index: int, include_append: bool, result: ParsedEvents,
             where: str = "") -> None:
    """Parse one record into `result`: a record, or a Skipped saying why not (`where` locates it inside the item)."""
    try:
        record = _record(parse(item), include_append)
    except MalformedEvent as exc:
        result.skipped.append(Skipped(index, f"malformed record: {where}{exc}"))
    except _NotUsed as exc:
        result.skipped.append(Skipped(index, f"{where}{exc}"))
    else:
        result.records.append(record)


def _collect_sqs_message(message: dict, index: int, include_append: bool, result: ParsedEvents) -> None:
    """The S3 records in one SQS message's body; a bad body costs only its own message."""
    try:
        records = _sqs_body_records(message)
    except MalformedEvent as exc:
        result.skipped.append(Skipped(index, f"malformed record: {exc}"))
        return
    except _NotUsed as exc:
        result.skipped.append(Skipped(index, str(exc)))
        return
    if not records:
        result.skipped.append(Skipped(index, "SQS message body has no S3 records"))
    for position, record in enumerate(records):
        _collect(_parse_s3_in_sqs, record, index, include_append, result, where=f"SQS body record {position}: ")


def _sqs_body_records(message: dict) -> list:
    """The `Records` of the S3 notification that an SQS message carries as JSON text in `body`."""
    text = _text(message.get("body"), "SQS body")
    try:
        notification = json.loads(text)
    except RecursionError:
        raise MalformedEvent("SQS body: JSON nested too deeply") from None
    except ValueError:
        raise MalformedEvent(f"SQS body is not JSON: {_short(text)}") from None
    notification = _dict(notification, "SQS body")
    if notification.get("Event") == S3_TEST_EVENT:
        # S3 sends this once when a notification configuration is saved; it names no object.
        raise _NotUsed("an S3 test event (s3:TestEvent), not an upload")
    return _list(notification.get("Records"), "SQS body Records")


def _parse_oss(record: Any, source: str = "oss") -> dict:
    """One OSS notification record; the key is the raw object name. OSS has no version id or sequencer."""
    record = _dict(record, "record")
    oss = _dict(record.get("oss"), "oss")
    obj = _dict(oss.get("object"), "oss.object")
    return dict(
        bucket=_text(_dict(oss.get("bucket"), "oss.bucket").get("name"), "oss.bucket.name"),
        key=_text(obj.get("key"), "oss.object.key"),
        event_name=_event_name(record.get("eventName"), "oss:"),
        source=source,
        event_time=_optional_text(record.get("eventTime")),
        etag=_etag(obj.get("eTag")),
        size=_optional_size(obj.get("size")),
    )


def _parse_bus_event(event: Any) -> dict:
    """One event from an event bus: S3 through Amazon EventBridge, or else OSS through Alibaba EventBridge."""
    if isinstance(event, dict) and ("detail-type" in event or "detail" in event):
        return _parse_s3_eventbridge(event)
    return _parse_cloudevent(event)


def _parse_cloudevent(event: Any) -> dict:
    """One EventBridge CloudEvent from OSS: `data` is one OSS record, not wrapped in `events`."""
    event = _dict(event, "CloudEvent")
    source = event.get("source")
    if source != OSS_CLOUDEVENT_SOURCE:
        raise _NotUsed(f"not an OSS CloudEvent (source {_short(source)})")
    data = event.get("data")
    if isinstance(data, str):  # some deliveries carry data as JSON text
        try:
            data = json.loads(data)
        except (ValueError, RecursionError):
            raise MalformedEvent("data is text but not JSON") from None
    data = _dict(data, "data")
    if "eventName" not in data and isinstance(event.get("type"), str):
        data = {**data, "eventName": event["type"]}
    fields = _parse_oss(data, source="eventbridge")
    if fields["event_time"] is None and isinstance(event.get("time"), str):
        fields["event_time"] = event["time"]
    return fields


def _parse_s3_eventbridge(event: dict) -> dict:
    """One S3 event through Amazon EventBridge. The key is taken as it is: AWS documents no encoding for it.

    The event name is built from detail-type and reason: "Object Created" with reason
    "PutObject" becomes "ObjectCreated:PutObject", "Object Deleted" with "DeleteObject"
    becomes "ObjectRemoved:DeleteObject" (or "ObjectRemoved:Lifecycle Expiration").
    """
    source = event.get("source")
    if source != S3_EVENTBRIDGE_SOURCE:
        raise _NotUsed(f"not an S3 event from Amazon EventBridge (source {_short(source)})")
    detail_type = _text(event.get("detail-type"), "detail-type")
    kind = S3_EVENTBRIDGE_DETAIL_TYPES.get(detail_type)
    if kind is None:
        raise _NotUsed(f"not an Object Created or Object Deleted event: {_short(detail_type)}")
    detail = _dict(event.get("detail"), "detail")
    obj = _dict(detail.get("object"), "detail.object")
    reason = detail.get("reason")
    return dict(
        bucket=_text(_dict(detail.get("bucket"), "detail.bucket").get("name"), "detail.bucket.name"),
        key=_text(obj.get("key"), "detail.object.key"),
        event_name=f"{kind}:{reason}" if isinstance(reason, str) and reason else f"{kind}:",
        source="s3-eventbridge",
        event_time=_optional_text(event.get("time")),
        etag=_etag(obj.get("etag")),
        size=_optional_size(obj.get("size")),
        version_id=_version_id(obj.get("version-id")),
        sequencer=_optional_text(obj.get("sequencer")),
    )


def _parse_s3(record: Any, source: str = "s3") -> dict:
    """One S3 notification record; the key arrives URL-encoded with `+` for a space and is decoded once."""
    record = _dict(record, "record")
    s3 = _dict(record.get("s3"), "s3")
    obj = _dict(s3.get("object"), "s3.object")
    encoded = _text(obj.get("key"), "s3.object.key")
    try:
        key = unquote_plus(encoded, errors="strict")
    except UnicodeDecodeError:
        raise MalformedEvent(f"s3.object.key {_short(encoded)} does not decode to UTF-8") from None
    return dict(
        bucket=_text(_dict(s3.get("bucket"), "s3.bucket").get("name"), "s3.bucket.name"),
        key=_text(key, "s3.object.key (decoded)"),
        event_name=_event_name(record.get("eventName"), "s3:"),
        source=source,
        event_time=_optional_text(record.get("eventTime")),
        etag=_etag(obj.get("eTag")),
        size=_optional_size(obj.get("size")),
        version_id=_version_id(obj.get("versionId")),
        sequencer=_optional_text(obj.get("sequencer")),
    )


def _parse_s3_in_sqs(record: Any) -> dict:
    """One S3 notification record from an SQS body: the same encoding as a direct notification."""
    return _parse_s3(record, source="s3-sqs")


_PARSERS: dict[str, Callable[[Any], dict]] = {
    "oss": _parse_oss,
    "bus": _parse_bus_event,
    "records": _parse_s3,
}


def _record(fields: dict, include_append: bool) -> ObjectRecord:
    """The record the parsed fields describe, or _NotUsed for what is neither a write nor a removal."""
    name = fields["event_name"]
    if name.startswith(OBJECT_CREATED):
        if name == APPEND_OBJECT and not include_append:
            raise _NotUsed("AppendObject ignored (include_append is off)")
        kind = ObjectWritten
    elif name.startswith(OBJECT_REMOVED):
        if name == ABORT_MULTIPART_UPLOAD:
            raise _NotUsed("ObjectRemoved:AbortMultipartUpload ignored: the upload never made an object")
        fields.pop("etag", None)
        fields.pop("size", None)
        kind = ObjectRemoved
    else:
        raise _NotUsed(f"neither ObjectCreated nor ObjectRemoved: {_short(name)}")
    if fields["key"].endswith("/"):
        raise _NotUsed(f"directory key {_short(fields['key'])}: the CDN serves objects, not directories")
    return kind(**fields)


def _event_name(value: Any, prefix: str) -> str:
    """The event name without its source prefix ("oss:", "s3:")."""
    name = _text(value, "eventName")
    return name[len(prefix):] if name.startswith(prefix) else name


def _dict(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise MalformedEvent(f"{what} must be an object, got {_type(value)}")
    return value


def _list(value: Any, what: str) -> list:
    if not isinstance(value, list):
        raise MalformedEvent(f"{what} must be an array, got {_type(value)}")
    return value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise MalformedEvent(f"{what} must be a string, got {_type(value)}")
    if not value:
        raise MalformedEvent(f"{what} is empty")
    return value


def _optional_text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _etag(value: Any) -> str | None:
    """The ETag without the double quotes that some deliveries keep around it."""
    text = _optional_text(value)
    if text and len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1]
    return text or None


def _version_id(value: Any) -> str | None:
    """An S3 version id; "null" (an object written while versioning was off) is no version."""
    text = _optional_text(value)
    return None if text == "null" else text


def _optional_size(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _type(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _short(value: Any, limit: int = 120) -> str:
    """A bounded repr for reasons, so a huge key cannot flood the logs."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}...({len(text)} chars)"
