"""Sample upload payloads: `load_event(name)` reads events/NAME; the builders make variations as dicts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

EVENTS = Path(__file__).resolve().parents[1] / "events"
REGION = "cn-hangzhou"
ACCOUNT = "1237050315505682"


def load_event(name: str) -> bytes:
    """The bytes of events/NAME (".json" may be left off), as Function Compute hands them over."""
    return (EVENTS / (name if name.endswith(".json") else f"{name}.json")).read_bytes()


def oss_record(
    bucket: str,
    key: str,
    event_name: str = "ObjectCreated:PutObject",
    *,
    size: int = 1024,
    etag: str = "0A9F4C3E8D6B2E1F7A5C3B9D1E8F2A4C",
    event_time: str = "2026-11-23T08:30:15.000Z",
) -> dict[str, Any]:
    """One OSS notification record, as the native trigger lists it and as EventBridge carries it in `data`."""
    return {
        "eventName": event_name,
        "eventSource": "acs:oss",
        "eventTime": event_time,
        "eventVersion": "1.0",
        "oss": {
            "bucket": {
                "arn": f"acs:oss:{REGION}:{ACCOUNT}:{bucket}",
                "name": bucket,
                "ownerIdentity": ACCOUNT,
                "virtualBucket": "",
            },
            "object": {"deltaSize": size, "eTag": etag, "key": key, "size": size},
            "ossSchemaVersion": "1.0",
            "ruleId": "9adac8e253828f4f7c0466d941fa3db81161e853",
        },
        "region": REGION,
        "requestParameters": {"sourceIPAddress": "140.205.11.2"},
        "responseElements": {"requestId": "6569A14B5E1C7A3037D4B5F2"},
        "userIdentity": {"principalId": "203659937326178364"},
    }


def oss_event(bucket: str, key: str, event_name: str = "ObjectCreated:PutObject", **fields: Any) -> dict[str, Any]:
    """A native OSS trigger payload with one record: {"events": [record]}."""
    return {"events": [oss_record(bucket, key, event_name, **fields)]}


def oss_batch(bucket: str, keys: list[str], event_name: str = "ObjectCreated:PutObject") -> dict[str, Any]:
    """A native OSS trigger payload with one record per key."""
    return {"events": [oss_record(bucket, key, event_name) for key in keys]}


def eventbridge_event(
    bucket: str, key: str, event_name: str = "ObjectCreated:PutObject", *, event_id: str | None = None
) -> dict[str, Any]:
    """An EventBridge CloudEvent from OSS: `data` is one OSS record; a batch is a JSON array of these."""
    record = oss_record(bucket, key, event_name)
    return {
        "id": event_id or "a1b2c3d4-7c35-447a-bd93-fab0a1c2d3e4",
        "source": "acs.oss",
        "specversion": "1.0",
        "type": f"oss:{event_name}",
        "datacontenttype": "application/json;charset=utf-8",
        "dataschema": "",
        "subject": f"acs:oss:{REGION}:{ACCOUNT}:{bucket}/{key}",
        "time": record["eventTime"],
        "aliyunaccountid": ACCOUNT,
        "aliyunpublishtime": "2026-11-23T08:30:15.262Z",
        "aliyuneventbusname": "default",
        "aliyunregionid": REGION,
        "aliyunpublishaddr": "100.68.172.45",
        "data": record,
    }


def s3_event(
    bucket: str,
    key: str,
    event_name: str = "ObjectCreated:Put",
    *,
    encoded: bool = False,
    size: int = 1024,
    version_id: str | None = None,
) -> dict[str, Any]:
    """An S3 notification with one record; the key is URL-encoded the way S3 does it unless `encoded` says it already is."""
    return {"Records": [s3_record(bucket, key, event_name, encoded=encoded, size=size, version_id=version_id)]}


def s3_record(
    bucket: str,
    key: str,
    event_name: str = "ObjectCreated:Put",
    *,
    encoded: bool = False,
    size: int = 1024,
    version_id: str | None = None,
) -> dict[str, Any]:
    """One S3 notification record (see `s3_event`); `versionId` only when given, as with versioning off."""
    obj: dict[str, Any] = {
        "key": key if encoded else quote_plus(key, safe="/"),
        "size": size,
        "eTag": "d41d8cd98f00b204e9800998ecf8427e",
        "sequencer": "0055AED6DCD90281E5",
    }
    if version_id is not None:
        obj["versionId"] = version_id
    return {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2026-11-23T08:30:15.000Z",
                "eventName": event_name,
                "userIdentity": {"principalId": "AWS:AIDAJDPLRKLG7UEXAMPLE"},
                "requestParameters": {"sourceIPAddress": "203.0.113.10"},
                "responseElements": {
                    "x-amz-request-id": "C3D13FE58DE4C810",
                    "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD",
                },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "cdn-prewarm",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": obj,
        },
    }


def sqs_message(body: Any, *, message_id: str = "059f36b4-87a3-44ab-83d2-661975830a7d") -> dict[str, Any]:
    """One SQS record as a queue trigger delivers it; a non-text `body` is JSON-encoded, as S3 writes it."""
    return {
        "messageId": message_id,
        "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a...",
        "body": body if isinstance(body, str) else json.dumps(body, ensure_ascii=False),
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1795422615000",
            "SenderId": "AIDAJHIPRHEMV73VRJEBU",
            "ApproximateFirstReceiveTimestamp": "1795422615012",
        },
        "messageAttributes": {},
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:111122223333:cdn-prewarm",
        "awsRegion": "us-east-1",
    }


def sqs_event(*bodies: Any) -> dict[str, Any]:
    """An SQS trigger payload: one message per body (an S3 notification dict, or raw text)."""
    messages = [sqs_message(body, message_id=f"059f36b4-87a3-44ab-83d2-66197583{i:04d}") for i, body in enumerate(bodies)]
    return {"Records": messages}


def s3_eventbridge_event(
    bucket: str,
    key: str,
    detail_type: str = "Object Created",
    reason: str = "PutObject",
    *,
    version_id: str | None = "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
    size: int | None = 1024,
) -> dict[str, Any]:
    """An S3 event as Amazon EventBridge delivers it; the key is written as it is (no encoding is documented)."""
    obj: dict[str, Any] = {"key": key}
    if size is not None:
        obj.update(size=size, etag="b1946ac92492d2347c6235b4d2611184")
    if version_id is not None:
        obj["version-id"] = version_id
    obj["sequencer"] = "617f08299329d189"
    detail: dict[str, Any] = {
        "version": "0",
        "bucket": {"name": bucket},
        "object": obj,
        "request-id": "N4N7GDK58NMKJ12R",
        "requester": "111122223333",
        "source-ip-address": "203.0.113.10",
        "reason": reason,
    }
    if detail_type == "Object Deleted":
        detail["deletion-type"] = "Permanently Deleted" if version_id is None else "Delete Marker Created"
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": detail_type,
        "source": "aws.s3",
        "account": "111122223333",
        "time": "2026-11-23T08:30:15Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": detail,
    }


def timer_event(payload: str = "") -> dict[str, Any]:
    """An FC Timer trigger event."""
    return {"triggerTime": "2026-11-23T08:31:00Z", "triggerName": "flush-every-minute", "payload": payload}
