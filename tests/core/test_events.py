"""Payload → ObjectWritten / ObjectRemoved records: every source, keys decoded exactly once, never raises."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventdata import (
    eventbridge_event,
    load_event,
    oss_batch,
    oss_event,
    oss_record,
    s3_event,
    s3_eventbridge_event,
    s3_record,
    sqs_event,
    timer_event,
)
from handler.events import ObjectRemoved, ObjectWritten, is_timer_event, parse_event

TRICKY_KEYS = [
    "视频/第1集.mp4",
    "docs/read me.pdf",
    "C++/a+b.txt",
    "100%/done%.txt",
    "literal%20not-a-space.txt",
    "mixed/夏天 的+海%2B 😀.mp4",
    "q?a#b~c&d=e.html",
    "tab\tnew\nline\x00nul.bin",
]


SOURCES = ["oss", "eventbridge", "s3", "s3-eventbridge", "s3-sqs"]


def _payload(source: str, key: str, event_name: str | None = None) -> bytes:
    """A payload from `source` naming `key`, encoded the way that source encodes keys."""
    if source == "oss":
        body = oss_event("b", key, event_name or "ObjectCreated:PutObject")
    elif source == "eventbridge":
        body = eventbridge_event("b", key, event_name or "ObjectCreated:PutObject")
    elif source == "s3":
        body = s3_event("b", key, event_name or "ObjectCreated:Put")
    elif source == "s3-eventbridge":
        kind, _, reason = (event_name or "ObjectCreated:PutObject").partition(":")
        detail_type = {"ObjectCreated": "Object Created", "ObjectRemoved": "Object Deleted"}.get(kind, kind)
        body = s3_eventbridge_event("b", key, detail_type, reason)
    else:
        body = sqs_event(s3_event("b", key, event_name or "ObjectCreated:Put"))
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def _keys(parsed) -> list[str]:
    return [r.key for r in parsed.records]


# --- the sample payloads in events/ ------------------------------------------------------------


def test_oss_put_sample():
    parsed = parse_event(load_event("oss-put"))
    assert parsed.skipped == []
    assert parsed.records == [
        ObjectWritten(
            bucket="my-bucket",
            key="static/css/site.css",
            event_name="ObjectCreated:PutObject",
            source="oss",
            event_time="2026-11-23T08:30:15.000Z",
            etag="5B3C1A1E2D8F4E7A9C0B6D3F2A1E4C8B",
            size=20480,
        )
    ]


def test_oss_cjk_space_sample_key_is_taken_raw():
    parsed = parse_event(load_event("oss-cjk-space"))
    assert _keys(parsed) == ["视频/夏天 的 海.mp4"]


def test_oss_batch_sample_keeps_uploads_and_the_removal_in_order_and_says_why_the_directory_was_skipped():
    parsed = parse_event(load_event("oss-batch"))
    assert [(type(r), r.key) for r in parsed.records] == [
        (ObjectWritten, "static/js/app.9f3c2b.js"),
        (ObjectWritten, "images/logo+v2.png"),
        (ObjectWritten, "downloads/setup 100%.zip"),
        (ObjectRemoved, "static/js/app.1a2b3c.js"),
    ]
    assert [r.event_name for r in parsed.records] == [
        "ObjectCreated:PutObject",
        "ObjectCreated:PostObject",
        "ObjectCreated:CompleteMultipartUpload",
        "ObjectRemoved:DeleteObject",
    ]
    assert [s.index for s in parsed.skipped] == [4]
    assert "directory" in parsed.skipped[0].reason


def test_eventbridge_single_sample():
    parsed = parse_event(load_event("eventbridge-single"))
    assert parsed.skipped == []
    (record,) = parsed.records
    assert (record.bucket, record.key, record.source) == ("my-bucket", "docs/报告 2026 #1.pdf", "eventbridge")
    assert record.event_name == "ObjectCreated:PutObject"


def test_eventbridge_batch_sample():
    parsed = parse_event(load_event("eventbridge-batch"))
    assert parsed.skipped == []
    assert [type(r) for r in parsed.records] == [ObjectWritten, ObjectWritten, ObjectRemoved]
    assert parsed.records[1].event_name == "ObjectCreated:CopyObject"
    assert parsed.records[1].key == "img/banner~wide 😀.webp"
    assert (parsed.records[2].key, parsed.records[2].event_name) == ("static/old.css", "ObjectRemoved:DeleteObject")


def test_s3_sample_key_is_decoded_once():
    parsed = parse_event(load_event("s3-put"))
    assert parsed.skipped == []
    (record,) = parsed.records
    assert (record.bucket, record.key, record.source) == ("my-s3-bucket", "photos/summer trip/C++ 中文 (1).jpg", "s3")
    assert record.size == 254117


def test_timer_sample_is_a_timer_and_not_an_upload():
    payload = load_event("timer")
    assert is_timer_event(payload)
    parsed = parse_event(payload)
    assert parsed.records == []
    assert len(parsed.skipped) == 1 and "Timer" in parsed.skipped[0].reason


@pytest.mark.parametrize("name", ["oss-put", "oss-batch", "eventbridge-single", "eventbridge-batch", "s3-put"])
def test_upload_samples_are_not_timer_events(name):
    assert not is_timer_event(load_event(name))


# --- the removal and AWS-delivery samples in events/ ----------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("oss-delete", [(ObjectRemoved, "my-bucket", "static/旧 logo+1.png", None, "oss")]),
        (
            "oss-delete-batch",
            [
                (ObjectRemoved, "my-bucket", "static/js/app.9f3c2b.js", None, "oss"),
                (ObjectRemoved, "my-bucket", "downloads/setup 100%.zip", None, "oss"),
            ],
        ),
        ("eventbridge-delete", [(ObjectRemoved, "my-bucket", "视频/第2集 预告.mp4", None, "eventbridge")]),
        (
            "s3-delete",
            [
                (ObjectRemoved, "my-s3-bucket", "archive/2025 Q4/report (final).pdf", None, "s3"),
                (ObjectRemoved, "my-s3-bucket", "photos/a+b.jpg", "Rb_l2T8UHDkFEwCgJjhlgPOZC0qJ.vpD", "s3"),
            ],
        ),
        (
            "s3-eventbridge-created",
            [(ObjectWritten, "my-s3-bucket", "videos/夏天 海+浪 100%.mp4", "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
              "s3-eventbridge")],
        ),
        (
            "s3-eventbridge-deleted",
            [(ObjectRemoved, "my-s3-bucket", "docs/old report (v1).pdf", "1e1c8a6b.9Rz3Hn0gVz2oB5mQxY7wZpD",
              "s3-eventbridge")],
        ),
        (
            "s3-sqs",
            [(ObjectWritten, "my-s3-bucket", "照片/summer trip/C++ 100%.jpg", "Y2mXaBt3.Qv0ZtW7c8nLk1pRrS4uVwXy",
              "s3-sqs")],
        ),
    ],
)
def test_sample_parses_to_the_exact_objects(name, expected):
    parsed = parse_event(load_event(name))
    assert [(type(r), r.bucket, r.key, r.version_id, r.source) for r in parsed.records] == expected


def test_oss_delete_batch_sample_skips_the_directory_between_two_removals():
    parsed = parse_event(load_event("oss-delete-batch"))
    assert [r.event_name for r in parsed.records] == ["ObjectRemoved:DeleteObjects"] * 2
    assert [s.index for s in parsed.skipped] == [1] and "directory" in parsed.skipped[0].reason


def test_s3_delete_sample_keeps_both_removal_kinds():
    parsed = parse_event(load_event("s3-delete"))
    assert [r.event_name for r in parsed.records] == ["ObjectRemoved:Delete", "ObjectRemoved:DeleteMarkerCreated"]
    assert [r.sequencer for r in parsed.records] == ["0068A1C0D1E2F3A401", "0068A1C0D1E2F3A402"]


def test_s3_eventbridge_created_sample_fields():
    (record,) = parse_event(load_event("s3-eventbridge-created")).records
    assert record == ObjectWritten(
        bucket="my-s3-bucket",
        key="videos/夏天 海+浪 100%.mp4",
        event_name="ObjectCreated:CompleteMultipartUpload",
        source="s3-eventbridge",
        event_time="2026-11-23T08:30:15Z",
        etag="2f4b8c8e1a4d5e6f7a8b9c0d1e2f3a4b-2",
        size=7340032,
        version_id="3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
        sequencer="0068A1B2C3D4E5F601",
    )
    assert record.version == "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"


def test_s3_sqs_sample_skips_the_test_event_without_calling_it_malformed():
    parsed = parse_event(load_event("s3-sqs"))
    assert _keys(parsed) == ["照片/summer trip/C++ 100%.jpg"]
    (skipped,) = parsed.skipped
    assert skipped.index == 1 and "s3:TestEvent" in skipped.reason and "malformed" not in skipped.reason


@pytest.mark.parametrize(
    "name", ["oss-delete", "oss-delete-batch", "eventbridge-delete", "s3-delete", "s3-eventbridge-created",
             "s3-eventbridge-deleted", "s3-sqs"]
)
def test_removal_and_aws_samples_are_not_timer_events(name):
    assert not is_timer_event(load_event(name))


# --- each source's key encoding, as AWS documents it ----------------------------------------------


def test_s3_notification_key_is_url_decoded_with_plus_for_space():
    """Amazon S3 User Guide, "Event message structure": the s3 key's object key name value is URL-encoded;
    "red flower.jpg" becomes "red+flower.jpg". So `+` is a space and `%2B` a plus, decoded once."""
    parsed = parse_event(s3_event("b", "red+flower%2B%E8%8A%B1%2525.jpg", encoded=True))
    assert _keys(parsed) == ["red flower+花%25.jpg"]


def test_s3_through_sqs_key_is_decoded_like_a_direct_s3_notification():
    """Amazon S3 User Guide, "Event message structure": with an SQS destination the message is that same
    notification (JSON text in the SQS record's `body`, per the Lambda Developer Guide, "Using Lambda with
    Amazon SQS"), so its key is URL-encoded with `+` for a space and is decoded exactly once; the body's JSON
    escaping is undone by the JSON parser, which is not a second URL decoding."""
    parsed = parse_event(sqs_event(s3_event("b", "a%2Bb+c%25%E4%B8%AD.txt", encoded=True)))
    assert _keys(parsed) == ["a+b c%中.txt"]
    assert parsed.records[0].source == "s3-sqs"


def test_s3_through_amazon_eventbridge_key_is_taken_as_it_is():
    """Amazon S3 User Guide, "EventBridge event message structure": `detail.object.key` is the object key;
    unlike the "Event message structure" page for notifications, it documents no URL encoding. So nothing is
    decoded: a `+` stays a plus and `%2B` stays three characters."""
    parsed = parse_event(s3_eventbridge_event("b", "red+flower%2B 花.jpg"))
    assert _keys(parsed) == ["red+flower%2B 花.jpg"]
    assert parsed.records[0].source == "s3-eventbridge"


# --- S3 through SQS and Amazon EventBridge ---------------------------------------------------------


def test_one_bad_sqs_body_never_costs_its_neighbours():
    bodies = [
        s3_event("b", "first.js"),
        "not json {",
        {"Records": "nope"},
        {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"},
        {"Records": [s3_record("b", "a.js"), {"s3": {}}, s3_record("b", "b.js")]},
        {"Records": []},
        s3_event("b", "last.js"),
    ]
    parsed = parse_event(sqs_event(*bodies))
    assert _keys(parsed) == ["first.js", "a.js", "b.js", "last.js"]
    assert [s.index for s in parsed.skipped] == [1, 2, 3, 4, 5]
    reasons = [s.reason for s in parsed.skipped]
    assert reasons[0].startswith("malformed record: SQS body is not JSON")
    assert reasons[1].startswith("malformed record: ") and "Records must be an array" in reasons[1]
    assert not reasons[2].startswith("malformed") and "s3:TestEvent" in reasons[2]
    assert reasons[3].startswith("malformed record: SQS body record 1: ")
    assert "no S3 records" in reasons[4]


def test_sqs_and_s3_records_are_told_apart_record_by_record():
    # Not a shape AWS sends, but deciding per record means no record is misread because of its neighbour.
    payload = {"Records": [sqs_event(s3_event("b", "a b.js"))["Records"][0], s3_record("b", "c d.js")]}
    parsed = parse_event(payload)
    assert [(r.key, r.source) for r in parsed.records] == [("a b.js", "s3-sqs"), ("c d.js", "s3")]


def test_sqs_body_with_a_sqs_message_inside_is_not_unwrapped_again():
    inner = sqs_event(s3_event("b", "a.js"))
    parsed = parse_event(sqs_event(inner))
    assert parsed.records == [] and "malformed record: SQS body record 0: " in parsed.skipped[0].reason


@pytest.mark.parametrize("body", [None, 5, "", "[1]", '"text"', "[" * 100_000 + "]" * 100_000])
def test_sqs_body_that_is_not_a_notification_is_malformed_not_raised(body):
    parsed = parse_event({"Records": [{**sqs_event({})["Records"][0], "body": body}]})
    assert parsed.records == []
    (skipped,) = parsed.skipped
    assert skipped.index == 0 and skipped.reason.startswith("malformed record: ")
    assert len(skipped.reason) < 300


def test_an_array_of_s3_eventbridge_events_is_parsed_one_by_one():
    batch = [s3_eventbridge_event("b", "1.js"), {"detail-type": "Object Created", "source": "aws.s3"},
             s3_eventbridge_event("b", "2.js", "Object Deleted", "DeleteObject"), eventbridge_event("b", "3.js")]
    parsed = parse_event(json.dumps(batch, ensure_ascii=False))
    assert [(type(r), r.key) for r in parsed.records] == [(ObjectWritten, "1.js"), (ObjectRemoved, "2.js"),
                                                        (ObjectWritten, "3.js")]
    assert [s.index for s in parsed.skipped] == [1] and "detail must be an object" in parsed.skipped[0].reason


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"source": "aws.ec2"}, "not an S3 event from Amazon EventBridge"),
        ({"detail-type": "Object Restore Completed"}, "not an Object Created or Object Deleted event"),
        ({"detail-type": 7}, "malformed record: detail-type must be a string"),
    ],
)
def test_other_amazon_eventbridge_events_are_skipped_with_a_reason(change, reason):
    parsed = parse_event({**s3_eventbridge_event("b", "a.js"), **change})
    assert parsed.records == [] and reason in parsed.skipped[0].reason


def test_s3_eventbridge_deletion_without_version_or_reason():
    event = s3_eventbridge_event("b", "a.js", "Object Deleted", "DeleteObject", version_id=None, size=None)
    del event["detail"]["reason"]
    (record,) = parse_event(event).records
    assert (type(record), record.event_name, record.version_id) == (ObjectRemoved, "ObjectRemoved:", None)


# --- versions and ETags -----------------------------------------------------------------------------


def test_version_is_the_version_id_where_there_is_one_else_the_etag():
    (versioned,) = parse_event(s3_event("b", "a.js", version_id="3sL4kqtJlcpXroDTDmJ")).records
    (unversioned,) = parse_event(s3_event("b", "a.js")).records
    assert versioned.version == "3sL4kqtJlcpXroDTDmJ"
    assert unversioned.version_id is None and unversioned.version == "d41d8cd98f00b204e9800998ecf8427e"


@pytest.mark.parametrize("source", ["s3", "s3-sqs"])
def test_version_id_null_means_no_version(source):
    body = s3_event("b", "a.js", version_id="null")
    payload = sqs_event(body) if source == "s3-sqs" else body
    (record,) = parse_event(payload).records
    assert record.version_id is None and record.version == "d41d8cd98f00b204e9800998ecf8427e"


@pytest.mark.parametrize("raw, etag", [('"5B3C1A1E"', "5B3C1A1E"), ("5B3C1A1E", "5B3C1A1E"), ('""', None),
                                       ('"', '"'), ('"ab"c"', 'ab"c')])
def test_etag_loses_its_surrounding_quotes_only(raw, etag):
    record = oss_record("b", "a.js")
    record["oss"]["object"]["eTag"] = raw
    (parsed,) = parse_event({"events": [record]}).records
    assert parsed.etag == etag


def test_removal_records_carry_no_etag_or_size():
    (record,) = parse_event(_payload("oss", "a.js", "ObjectRemoved:DeleteObject")).records
    assert not hasattr(record, "etag") and not hasattr(record, "size")


# --- tricky keys, per source: what was uploaded is what comes out ---------------------------------


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("key", TRICKY_KEYS)
def test_tricky_key_comes_out_as_uploaded(source, key):
    parsed = parse_event(_payload(source, key))
    assert parsed.skipped == []
    assert _keys(parsed) == [key]
    assert parsed.records[0].source == source


@pytest.mark.parametrize(
    "encoded, key",
    [
        ("my+file%E4%B8%AD.txt", "my file中.txt"),
        ("a%2Bb.txt", "a+b.txt"),
        ("100%25.txt", "100%.txt"),
        ("literal%2520.txt", "literal%20.txt"),  # decoded once, not twice
        ("photos/2026/a+b+c.jpg", "photos/2026/a b c.jpg"),
    ],
)
def test_s3_key_is_url_decoded_exactly_once(encoded, key):
    parsed = parse_event(s3_event("b", encoded, encoded=True))
    assert _keys(parsed) == [key]


@pytest.mark.parametrize("source", ["oss", "eventbridge"])
def test_oss_keys_are_never_url_decoded(source):
    parsed = parse_event(_payload(source, "my+file%E4%B8%AD.txt"))
    assert _keys(parsed) == ["my+file%E4%B8%AD.txt"]


def test_s3_key_that_is_not_utf8_after_decoding_is_skipped_not_mangled():
    parsed = parse_event(s3_event("b", "bad%FF.txt", encoded=True))
    assert parsed.records == []
    assert "does not decode to UTF-8" in parsed.skipped[0].reason


def test_key_with_lone_surrogate_is_still_a_record():
    # The URL layer refuses it with a reason; dropping it here would hide it.
    parsed = parse_event('{"events": [%s]}' % json.dumps(oss_record("b", "x\udc80.txt")))
    assert _keys(parsed) == ["x\udc80.txt"]


# --- which events count ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event_name",
    [
        "ObjectCreated:PutObject",
        "ObjectCreated:PostObject",
        "ObjectCreated:CopyObject",
        "ObjectCreated:CompleteMultipartUpload",
        "ObjectCreated:PutSymlink",
        "ObjectCreated:InitiateMultipartUpload",  # any other ObjectCreated:* counts
    ],
)
@pytest.mark.parametrize("source", ["oss", "eventbridge"])
def test_oss_object_created_events_are_used(source, event_name):
    parsed = parse_event(_payload(source, "a.js", event_name))
    assert [r.event_name for r in parsed.records] == [event_name]


@pytest.mark.parametrize("event_name", ["ObjectCreated:Put", "ObjectCreated:Post", "ObjectCreated:Copy",
                                        "ObjectCreated:CompleteMultipartUpload"])
@pytest.mark.parametrize("prefix", ["", "s3:"])
def test_s3_object_created_events_are_used_with_or_without_prefix(prefix, event_name):
    parsed = parse_event(s3_event("b", "a.js", prefix + event_name))
    assert [r.event_name for r in parsed.records] == [event_name]


@pytest.mark.parametrize("source", ["oss", "eventbridge"])
def test_append_object_only_when_enabled(source):
    payload = _payload(source, "log.txt", "ObjectCreated:AppendObject")
    off = parse_event(payload)
    assert off.records == [] and "AppendObject" in off.skipped[0].reason
    assert _keys(parse_event(payload, include_append=True)) == ["log.txt"]


@pytest.mark.parametrize(
    "source, event_name",
    [
        ("oss", "ObjectReplication:ObjectCreated"),
        ("eventbridge", "ObjectModified:UpdateObjectMeta"),
        ("s3", "s3:ObjectRestore:Completed"),
        ("s3-sqs", "s3:ObjectTagging:Put"),
    ],
)
def test_other_events_are_skipped_with_their_name(source, event_name):
    parsed = parse_event(_payload(source, "a.js", event_name))
    assert parsed.records == []
    (skipped,) = parsed.skipped
    assert skipped.index == 0 and "neither ObjectCreated nor ObjectRemoved" in skipped.reason
    assert event_name.removeprefix("s3:") in skipped.reason


@pytest.mark.parametrize(
    "source, event_name",
    [
        ("oss", "ObjectRemoved:DeleteObject"),
        ("oss", "ObjectRemoved:DeleteObjects"),
        ("eventbridge", "ObjectRemoved:DeleteObject"),
        ("eventbridge", "ObjectRemoved:DeleteObjects"),
        ("s3", "ObjectRemoved:Delete"),
        ("s3", "s3:ObjectRemoved:DeleteMarkerCreated"),
        ("s3", "ObjectRemoved:SomeFutureKind"),  # any other ObjectRemoved:* counts
        ("s3-sqs", "ObjectRemoved:Delete"),
        ("s3-eventbridge", "ObjectRemoved:DeleteObject"),
        ("s3-eventbridge", "ObjectRemoved:Lifecycle Expiration"),
    ],
)
def test_removals_are_object_removed_records(source, event_name):
    parsed = parse_event(_payload(source, "视频/a b+c.mp4", event_name))
    assert parsed.skipped == []
    (record,) = parsed.records
    assert type(record) is ObjectRemoved
    assert (record.bucket, record.key, record.source) == ("b", "视频/a b+c.mp4", source)
    assert record.event_name == event_name.removeprefix("s3:")


@pytest.mark.parametrize("source", ["oss", "eventbridge", "s3", "s3-sqs"])
def test_abort_multipart_upload_is_skipped_because_no_object_existed(source):
    parsed = parse_event(_payload(source, "big.bin", "ObjectRemoved:AbortMultipartUpload"))
    assert parsed.records == []
    (skipped,) = parsed.skipped
    assert skipped.index == 0 and "AbortMultipartUpload" in skipped.reason and "never made an object" in skipped.reason


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("removed", [False, True])
def test_directory_keys_are_skipped(source, removed):
    event_name = None
    if removed:
        event_name = {"oss": "ObjectRemoved:DeleteObject", "eventbridge": "ObjectRemoved:DeleteObject",
                      "s3-eventbridge": "ObjectRemoved:DeleteObject"}.get(source, "ObjectRemoved:Delete")
    parsed = parse_event(_payload(source, "images/2026/", event_name))
    assert parsed.records == [] and "directory" in parsed.skipped[0].reason


def test_eventbridge_event_from_another_source_is_skipped():
    event = eventbridge_event("b", "a.js")
    event["source"] = "acs.ecs"
    parsed = parse_event(event)
    assert parsed.records == [] and "not an OSS CloudEvent" in parsed.skipped[0].reason


def test_eventbridge_data_as_json_text_and_event_name_from_type():
    event = eventbridge_event("b", "a.js", "ObjectCreated:CopyObject")
    del event["data"]["eventName"], event["data"]["eventTime"]
    event["data"] = json.dumps(event["data"])
    (record,) = parse_event(event).records
    assert (record.key, record.event_name, record.event_time) == ("a.js", "ObjectCreated:CopyObject", event["time"])


# --- malformed input: never raises, never costs the neighbours ------------------------------------


@pytest.mark.parametrize(
    "bad_record, reason",
    [
        ("not an object", "record must be an object"),
        ({"eventName": "ObjectCreated:PutObject"}, "oss must be an object"),
        (oss_record("b", ""), "oss.object.key is empty"),
        (oss_record("", "a.js"), "oss.bucket.name is empty"),
        ({**oss_record("b", "a"), "eventName": None}, "eventName must be a string"),
        ({**oss_record("b", "a"), "oss": {"bucket": {"name": "b"}, "object": {"key": 42}}}, "key must be a string"),
    ],
)
def test_one_malformed_record_never_costs_its_neighbours(bad_record, reason):
    payload = {"events": [oss_record("b", "first.js"), bad_record, oss_record("b", "last.js")]}
    parsed = parse_event(json.dumps(payload).encode())
    assert _keys(parsed) == ["first.js", "last.js"]
    (skipped,) = parsed.skipped
    assert skipped.index == 1
    assert skipped.reason.startswith("malformed record: ") and reason in skipped.reason


def test_malformed_s3_record_among_good_ones():
    good = s3_event("b", "x y.js")["Records"][0]
    payload = {"Records": [good, {"s3": {"bucket": {"name": "b"}, "object": {}}}, good]}
    parsed = parse_event(payload)
    assert _keys(parsed) == ["x y.js", "x y.js"]
    assert [s.index for s in parsed.skipped] == [1]


def test_eventbridge_batch_with_a_broken_element():
    batch = [eventbridge_event("b", "1.js"), None, 7, {"source": "acs.oss"}, eventbridge_event("b", "2.js")]
    parsed = parse_event(json.dumps(batch))
    assert _keys(parsed) == ["1.js", "2.js"]
    assert [s.index for s in parsed.skipped] == [1, 2, 3]


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"\xff\xfe{}", "not UTF-8"),
        (b"", "empty"),
        (b"   ", "empty"),
        (b"{not json", "not JSON"),
        (b"42", "expected a JSON object or array"),
        (b"null", "expected a JSON object or array"),
        (b'"text"', "expected a JSON object or array"),
        (b"{}", "no 'events'"),
        (b'{"events": {"a": 1}}', "events must be an array"),
        (b'{"Records": null}', "Records must be an array"),
        (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
        (None, "not NoneType"),
        (3.5, "not float"),
    ],
)
def test_unusable_payload_gives_no_records_and_one_reason(payload, reason):
    parsed = parse_event(payload)
    assert parsed.records == []
    assert len(parsed.skipped) == 1
    assert parsed.skipped[0].index is None
    assert reason in parsed.skipped[0].reason


def test_payload_forms_bytes_text_dict_and_bom_agree():
    body = oss_event("b", "视频/a b.mp4")
    text = json.dumps(body, ensure_ascii=False)
    forms = [text.encode(), text, body, "\ufeff".encode() + text.encode(), bytearray(text.encode())]
    assert [_keys(parse_event(form)) for form in forms] == [["视频/a b.mp4"]] * len(forms)


def test_huge_integer_in_payload_is_refused_not_raised():
    # Refused as a whole where Python limits integer digits (3.10.7+), else as a record that is not an object.
    parsed = parse_event(b'{"events": [' + b"9" * 100_000 + b"]}")
    assert parsed.records == [] and len(parsed.skipped) == 1


def test_every_record_of_a_large_batch_is_used_in_order():
    keys = [f"k/{i}.js" for i in range(20_000)]
    parsed = parse_event(json.dumps(oss_batch("b", keys)).encode())
    assert _keys(parsed) == keys


def test_optional_fields_of_the_wrong_type_are_dropped_not_fatal():
    record = oss_record("b", "a.js")
    record["oss"]["object"].update(size="12", eTag=None)
    record["eventTime"] = 5
    (parsed,) = parse_event({"events": [record]}).records
    assert (parsed.size, parsed.etag, parsed.event_time) == (None, None, None)


@pytest.mark.parametrize(
    "payload, expected",
    [
        (timer_event("x"), True),
        (json.dumps(timer_event()).encode(), True),
        ({"triggerTime": 5, "triggerName": "t"}, False),
        (oss_event("b", "a"), False),
        (b"\xff", False),
        (b"[]", False),
        (None, False),
    ],
)
def test_is_timer_event(payload, expected):
    assert is_timer_event(payload) is expected


# --- properties -------------------------------------------------------------------------------------

FIELD_NAMES = st.sampled_from(
    ["events", "Records", "oss", "s3", "bucket", "object", "name", "key", "eventName", "size", "eTag",
     "source", "data", "type", "specversion", "time", "eventTime", "triggerTime", "triggerName",
     "detail-type", "detail", "reason", "etag", "version-id", "versionId", "sequencer", "eventSource", "body",
     "Event"]
)
LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20),
    st.sampled_from(["ObjectCreated:PutObject", "s3:ObjectCreated:Put", "ObjectCreated:AppendObject",
                     "acs.oss", "oss:ObjectCreated:PutObject", "a/", "%", "%FF", "+", "aws.s3", "aws:sqs",
                     "Object Created", "Object Deleted", "ObjectRemoved:DeleteObject", "s3:ObjectRemoved:Delete",
                     "ObjectRemoved:AbortMultipartUpload", "s3:TestEvent", "null", '"', '"e"']),
)
JSONISH = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(FIELD_NAMES | st.text(max_size=5), inner, max_size=6),
    max_leaves=40,
)


def _check_result(parsed, include_append: bool) -> None:
    for record in parsed.records:
        assert isinstance(record.bucket, str) and record.bucket
        assert isinstance(record.key, str) and record.key and not record.key.endswith("/")
        if isinstance(record, ObjectWritten):
            assert record.event_name.startswith("ObjectCreated:")
            assert include_append or record.event_name != "ObjectCreated:AppendObject"
            assert record.etag is None or (record.etag and not record.etag.startswith('"'))
        else:
            assert type(record) is ObjectRemoved
            assert record.event_name.startswith("ObjectRemoved:")
            assert record.event_name != "ObjectRemoved:AbortMultipartUpload"
        assert record.version_id != "null"
        assert record.source in SOURCES
    for skipped in parsed.skipped:
        assert isinstance(skipped.reason, str) and skipped.reason


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(payload):
    _check_result(parse_event(payload), False)
    is_timer_event(payload)


@settings(max_examples=500, deadline=None)
@given(JSONISH, st.booleans(), st.booleans())
def test_arbitrary_json_structures_never_raise(body, as_bytes, include_append):
    payload = json.dumps(body).encode() if as_bytes else body
    parsed = parse_event(payload, include_append=include_append)
    _check_result(parsed, include_append)
    is_timer_event(payload)


@settings(max_examples=300, deadline=None)
@given(st.lists(JSONISH, max_size=4), st.sampled_from(["oss", "s3", "cloudevent", "s3-eventbridge", "sqs"]))
def test_records_of_arbitrary_shape_in_a_valid_envelope_never_raise(items, envelope):
    good = {"oss": oss_record("b", "good.js"), "s3": s3_record("b", "good.js"),
            "cloudevent": eventbridge_event("b", "good.js"), "s3-eventbridge": s3_eventbridge_event("b", "good.js"),
            "sqs": sqs_event(s3_event("b", "good.js"))["Records"][0]}[envelope]
    if envelope == "sqs":  # arbitrary message bodies, as JSON text, between good messages
        items = [{**good, "body": json.dumps(item)} for item in items]
    records = [good, *items, good]
    payload = {"oss": {"events": records}, "s3": {"Records": records}, "cloudevent": records,
               "s3-eventbridge": records, "sqs": {"Records": records}}[envelope]
    parsed = parse_event(json.dumps(payload).encode())
    _check_result(parsed, False)
    assert _keys(parsed)[0] == "good.js" and _keys(parsed)[-1] == "good.js"
    assert all(0 < skipped.index < len(records) - 1 for skipped in parsed.skipped)
    if envelope == "sqs":  # one message body may hold several S3 records: each is used or skipped
        assert len(parsed.records) + len(parsed.skipped) >= len(records)
    else:
        assert len(parsed.records) + len(parsed.skipped) == len(records)


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1).filter(lambda k: not k.endswith("/")))
def test_any_s3_key_round_trips_through_s3_encoding(key):
    assert _keys(parse_event(s3_event("b", key))) == [key]
