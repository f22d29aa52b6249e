"""FC async-failure destination records give back the event they carry; anything else passes through."""

from __future__ import annotations

import json

from eventdata import load_event, oss_event

from handler.destination import is_destination_record, original_event
from handler.events import parse_event


def _record(request_payload) -> bytes:
    return json.dumps({
        "timestamp": "2026-11-23T09:13:02.000Z",
        "requestContext": {"requestId": "r-1", "functionArn": "acs:fc:cn-hangzhou:1:functions/up",
                           "condition": "UnhandledInvocationError", "approximateInvokeCount": 4},
        "requestPayload": request_payload,
        "responseContext": {"statusCode": 200, "functionError": "UnhandledInvocationError"},
        "responsePayload": "",
    }).encode()


def test_the_sample_failure_record_carries_an_oss_upload():
    payload = load_event("fc-async-failure-destination")
    assert is_destination_record(json.loads(payload))
    parsed = parse_event(original_event(payload))
    assert parsed.skipped == []
    assert [(r.bucket, r.key) for r in parsed.records] == [("my-bucket", "static/js/vendor.4be1c0.js")]


def test_the_request_payload_text_comes_back_byte_for_byte():
    event_text = json.dumps(oss_event("b", "视频/夏天 的 海.mp4"), ensure_ascii=False)
    assert original_event(_record(event_text)) == event_text.encode("utf-8")


def test_a_payload_given_as_an_object_is_serialised_back():
    event = oss_event("b", "a.css")
    assert json.loads(original_event(_record(event))) == event


def test_every_other_payload_is_left_alone():
    for name in ("oss-put", "eventbridge-batch", "s3-put", "timer"):
        payload = load_event(name)
        assert original_event(payload) is payload
    for payload in (b"", b"not json", b"[]", b'{"requestPayload": "x"}', b'{"requestContext": {}}'):
        assert original_event(payload) is payload
