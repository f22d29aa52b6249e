"""Upload payloads (FC native OSS trigger, EventBridge CloudEvents, AWS S3) → ObjectWritten records.

Object keys are decoded here and nowhere else: OSS and EventBridge keys are raw
object names and are taken as they are; S3 keys are URL-encoded (`+` for a space)
and are decoded exactly once. `parse_event` never raises: every record it does not
use is reported as a `Skipped` with the reason, and one bad record never costs
its neighbours.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Callable
from urllib.parse import unquote_plus

OBJECT_CREATED = "ObjectCreated:"
APPEND_OBJECT = "ObjectCreated:AppendObject"
OSS_CLOUDEVENT_SOURCE = "acs.oss"


class MalformedEvent(ValueError):
    """A payload or a record lacks what an upload event must have; the message says what."""


@dataclass(frozen=True)
class ObjectWritten:
    """An object that was created or overwritten; `key` is the exact object name, already decoded."""

    bucket: str
    key: str
    event_name: str  # without a source prefix: "ObjectCreated:PutObject", "ObjectCreated:Put"
    source: str  # "oss" | "eventbridge" | "s3"
    event_time: str | None = None
    etag: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class Skipped:
    """A record (or, with index None, the whole payload) that was not used, and why."""

    index: int | None  # position in the payload's record list; None: the payload as a whole
    reason: str


@dataclass
class ParsedEvents:
    records: list[ObjectWritten] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


class _NotAnUpload(Exception):
    """A well-formed record that is deliberately not used (not ObjectCreated, a directory, ...)."""


def parse_event(payload: Any, *, include_append: bool = False) -> ParsedEvents:
    """The ObjectCreated records of a payload (bytes, text or parsed JSON), with a reason for each one skipped."""
    result = ParsedEvents()
    try:
        body = _load(payload)
        kind, items = _records_of(body)
    except MalformedEvent as exc:
        result.skipped.append(Skipped(None, f"malformed payload: {exc}"))
        return result
    except _NotAnUpload as exc:
        result.skipped.append(Skipped(None, str(exc)))
        return result
    parse_one = _PARSERS[kind]
    for index, item in enumerate(items):
        try:
            record = parse_one(item)
            _check_wanted(record, include_append)
        except MalformedEvent as exc:
            result.skipped.append(Skipped(index, f"malformed record: {exc}"))
        except _NotAnUpload as exc:
            result.skipped.append(Skipped(index, str(exc)))
        else:
            result.records.append(record)
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
    """Which source the payload comes from and its list of records."""
    if isinstance(body, list):
        return "cloudevent", body  # EventBridge with batching: an array of CloudEvents
    if not isinstance(body, dict):
        raise MalformedEvent(f"expected a JSON object or array, got {_type(body)}")
    if "events" in body:
        return "oss", _list(body["events"], "events")
    if "Records" in body:
        return "s3", _list(body["Records"], "Records")
    if "specversion" in body or "data" in body:
        return "cloudevent", [body]
    if "triggerTime" in body:
        raise _NotAnUpload("a Timer trigger event, not an upload")
    raise MalformedEvent("no 'events' (OSS), 'Records' (S3) or CloudEvent 'data' (EventBridge)")


def _parse_oss(record: Any, source: str = "oss") -> ObjectWritten:
    """One OSS notification record; the key is the raw object name."""
    record = _dict(record, "record")
    oss = _dict(record.get("oss"), "oss")
    obj = _dict(oss.get("object"), "oss.object")
    return ObjectWritten(
        bucket=_text(_dict(oss.get("bucket"), "oss.bucket").get("name"), "oss.bucket.name"),
        key=_text(obj.get("key"), "oss.object.key"),
        event_name=_event_name(record.get("eventName"), "oss:"),
        source=source,
        event_time=_optional_text(record.get("eventTime")),
        etag=_optional_text(obj.get("eTag")),
        size=_optional_size(obj.get("size")),
    )


def _parse_cloudevent(event: Any) -> ObjectWritten:
    """One EventBridge CloudEvent from OSS: `data` is one OSS record, not wrapped in `events`."""
    event = _dict(event, "CloudEvent")
    source = event.get("source")
    if source != OSS_CLOUDEVENT_SOURCE:
        raise _NotAnUpload(f"not an OSS CloudEvent (source {_short(source)})")
    data = event.get("data")
    if isinstance(data, str):  # some deliveries carry data as JSON text
        try:
            data = json.loads(data)
        except (ValueError, RecursionError):
            raise MalformedEvent("data is text but not JSON") from None
    data = _dict(data, "data")
    if "eventName" not in data and isinstance(event.get("type"), str):
        data = {**data, "eventName": event["type"]}
    record = _parse_oss(data, source="eventbridge")
    if record.event_time is None and isinstance(event.get("time"), str):
        record = replace(record, event_time=event["time"])
    return record


def _parse_s3(record: Any) -> ObjectWritten:
    """One S3 notification record; the key arrives URL-encoded with `+` for a space and is decoded once."""
    record = _dict(record, "record")
    s3 = _dict(record.get("s3"), "s3")
    obj = _dict(s3.get("object"), "s3.object")
    encoded = _text(obj.get("key"), "s3.object.key")
    try:
        key = unquote_plus(encoded, errors="strict")
    except UnicodeDecodeError:
        raise MalformedEvent(f"s3.object.key {_short(encoded)} does not decode to UTF-8") from None
    return ObjectWritten(
        bucket=_text(_dict(s3.get("bucket"), "s3.bucket").get("name"), "s3.bucket.name"),
        key=_text(key, "s3.object.key (decoded)"),
        event_name=_event_name(record.get("eventName"), "s3:"),
        source="s3",
        event_time=_optional_text(record.get("eventTime")),
        etag=_optional_text(obj.get("eTag")),
        size=_optional_size(obj.get("size")),
    )


_PARSERS: dict[str, Callable[[Any], ObjectWritten]] = {
    "oss": _parse_oss,
    "cloudevent": _parse_cloudevent,
    "s3": _parse_s3,
}


def _check_wanted(record: ObjectWritten, include_append: bool) -> None:
    """Refuse what is not a new object that can be prefetched."""
    if not record.event_name.startswith(OBJECT_CREATED):
        raise _NotAnUpload(f"not an ObjectCreated event: {_short(record.event_name)}")
    if record.event_name == APPEND_OBJECT and not include_append:
        raise _NotAnUpload("AppendObject ignored (include_append is off)")
    if record.key.endswith("/"):
        raise _NotAnUpload(f"directory key {_short(record.key)}: directories cannot be prefetched")


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


def _optional_size(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _type(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _short(value: Any, limit: int = 120) -> str:
    """A bounded repr for reasons, so a huge key cannot flood the logs."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}...({len(text)} chars)"
