"""FC async-invocation destination records: the original event inside a failed invocation's record.

When an asynchronous invocation (OSS trigger, Timer) still fails after its retries, Function
Compute sends a record of it to the function's on-failure destination (here an MNS queue):

    {"timestamp": ..., "requestContext": {"requestId", "functionArn", "condition",
     "approximateInvokeCount"}, "requestPayload": "<the original event>",
     "responseContext": {"statusCode", "functionError"}, "responsePayload": ...}

`requestPayload` is the event exactly as the function received it (a JSON text); a record
whose payload was re-serialised as an object is accepted too.
"""

from __future__ import annotations

import json
from typing import Any


def is_destination_record(document: Any) -> bool:
    """True for an async-invocation destination record (a request context and the request's payload)."""
    return isinstance(document, dict) and isinstance(document.get("requestContext"), dict) and "requestPayload" in document


def original_event(payload: bytes) -> bytes:
    """The event a destination record carries; any other payload is returned unchanged."""
    try:
        document = json.loads(payload)
    except ValueError:  # not JSON at all: parse_event reports it
        return payload
    if not is_destination_record(document):
        return payload
    inner = document["requestPayload"]
    if isinstance(inner, str):
        return inner.encode("utf-8")
    return json.dumps(inner, ensure_ascii=False).encode("utf-8")
