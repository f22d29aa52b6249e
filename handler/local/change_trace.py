"""A seeded trace of object changes over days: new uploads, identical re-uploads, overwrites and deletes.

Shared by the acceptance test (tests/pipeline/test_trace.py) and the overwrite/delete benchmark
(bench/staleness.py), so that both replay the very same events. Not deployed (handler/local).

    ops = make_trace(seed=20261126)          # 5,000 events over 3 days from START
    payload(op)                              # the native OSS trigger payload of one event
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

START = 1795449600.0  # 2026-11-23T16:00:00Z = 00:00 UTC+8: a quota day begins
DAY = 86400
EVENTS = 5000
BUCKET, DOMAIN = "my-bucket", "cdn.example.com"
NAMES = ("app.js", "index.html", "图片 1.png", "a+b.css")


@dataclass(frozen=True)
class Op:
    at: float
    kind: str  # "write" | "delete"
    key: str
    version: str | None
    why: str  # "new" | "repeat" | "overwrite" | "delete"


def make_trace(seed: int, events: int = EVENTS, *, days: float = 3, start: float = START) -> list[Op]:
    """`events` events over `days`: 55% new objects, 30% identical re-uploads or redeliveries, 10% overwrites,
    5% deletes (some of the object just written, inside its upload's window)."""
    rng = random.Random(seed)
    times = sorted(start + rng.uniform(0, days * DAY) for _ in range(events))
    live: dict[str, str] = {}
    last_written: str | None = None
    ops: list[Op] = []
    for n, at in enumerate(times):
        roll = rng.random()
        if not live or roll < 0.55:
            key = f"site/{n:05d}/{rng.choice(list(NAMES))}"
            ops.append(Op(at, "write", key, f"E{n:05d}", "new"))
        elif roll < 0.85:
            key = rng.choice(sorted(live))
            ops.append(Op(at, "write", key, live[key], "repeat"))
        elif roll < 0.95:
            key = rng.choice(sorted(live))
            ops.append(Op(at, "write", key, f"E{n:05d}", "overwrite"))
        else:
            key = last_written if last_written in live and rng.random() < 0.4 else rng.choice(sorted(live))
            ops.append(Op(at, "delete", key, None, "delete"))
        op = ops[-1]
        if op.kind == "write":
            live[op.key] = op.version
            last_written = op.key
        else:
            live.pop(op.key)
    return ops


def url_of(key: str, domain: str = DOMAIN) -> str:
    from handler.urls import encode_path

    return f"https://{domain}/{encode_path(key)}"


def final_state(ops: list[Op]) -> tuple[dict[str, str], set[str]]:
    """(live key -> version, keys deleted and not written again) once every event has happened."""
    live: dict[str, str] = {}
    for op in ops:
        if op.kind == "write":
            live[op.key] = op.version
        else:
            live.pop(op.key, None)
    deleted = {op.key for op in ops if op.kind == "delete"} - set(live)
    return live, deleted


def payload(op: Op, bucket: str = BUCKET) -> bytes:
    """The native OSS trigger payload of one event: ObjectCreated:PutObject with the version as its ETag,
    or ObjectRemoved:DeleteObject (which carries no ETag)."""
    if op.kind == "delete":
        return oss_payload(bucket, op.key, event_name="ObjectRemoved:DeleteObject")
    return oss_payload(bucket, op.key, etag=op.version)


def oss_payload(
    bucket: str, key: str, *, event_name: str = "ObjectCreated:PutObject", etag: str | None = None,
    event_time: str = "2026-11-23T08:30:15.000Z", size: int = 1024,
) -> bytes:
    """A native OSS trigger payload with one record, as FC hands it over."""
    obj: dict = {"deltaSize": size, "key": key, "size": size}
    if etag is not None:
        obj["eTag"] = etag
    record = {
        "eventName": event_name,
        "eventSource": "acs:oss",
        "eventTime": event_time,
        "eventVersion": "1.0",
        "oss": {
            "bucket": {"arn": f"acs:oss:cn-hangzhou:1237050315505682:{bucket}", "name": bucket,
                       "ownerIdentity": "1237050315505682", "virtualBucket": ""},
            "object": obj,
            "ossSchemaVersion": "1.0",
            "ruleId": "9adac8e253828f4f7c0466d941fa3db81161e853",
        },
        "region": "cn-hangzhou",
        "requestParameters": {"sourceIPAddress": "140.205.11.2"},
        "responseElements": {"requestId": "6569A14B5E1C7A3037D4B5F2"},
        "userIdentity": {"principalId": "203659937326178364"},
    }
    return json.dumps({"events": [record]}, ensure_ascii=False).encode("utf-8")
