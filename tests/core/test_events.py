"""Payload → ObjectWritten records: every source, tricky keys decoded exactly once, nothing ever raises."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventdata import eventbridge_event, load_event, oss_batch, oss_event, oss_record, s3_event, timer_event
from handler.events import ObjectWritten, is_timer_event, parse_event

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


def _payload(source: str, key: str, event_name: str | None = None) -> bytes:
    if source == "oss":
        body = oss_event("b", key, event_name or "ObjectCreated:PutObject")
    elif source == "eventbridge":
        body = eventbridge_event("b", key, event_name or "ObjectCreated:PutObject")
    else:
        body = s3_event("b", key, event_name or "ObjectCreated:Put")
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


def test_oss_batch_sample_keeps_every_upload_and_says_why_the_others_were_skipped():
    parsed = parse_event(load_event("oss-batch"))
    assert _keys(parsed) == ["static/js/app.9f3c2b.js", "images/logo+v2.png", "downloads/setup 100%.zip"]
    assert [r.event_name for r in parsed.records] == [
        "ObjectCreated:PutObject",
        "ObjectCreated:PostObject",
        "ObjectCreated:CompleteMultipartUpload",
    ]
    assert [s.index for s in parsed.skipped] == [3, 4]
    assert "ObjectRemoved:DeleteObject" in parsed.skipped[0].reason
    assert "directory" in parsed.skipped[1].reason


def test_eventbridge_single_sample():
    parsed = parse_event(load_event("eventbridge-single"))
    assert parsed.skipped == []
    (record,) = parsed.records
    assert (record.bucket, record.key, record.source) == ("my-bucket", "docs/报告 2026 #1.pdf", "eventbridge")
    assert record.event_name == "ObjectCreated:PutObject"


def test_eventbridge_batch_sample():
    parsed = parse_event(load_event("eventbridge-batch"))
    assert _keys(parsed) == ["index.html", "img/banner~wide 😀.webp"]
    assert parsed.records[1].event_name == "ObjectCreated:CopyObject"
    assert [s.index for s in parsed.skipped] == [2]
    assert "ObjectRemoved" in parsed.skipped[0].reason


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


# --- tricky keys, per source: what was uploaded is what comes out ---------------------------------


@pytest.mark.parametrize("source", ["oss", "eventbridge", "s3"])
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
        ("oss", "ObjectRemoved:DeleteObject"),
        ("oss", "ObjectRemoved:DeleteObjects"),
        ("oss", "ObjectReplication:ObjectCreated"),
        ("eventbridge", "ObjectRemoved:DeleteObject"),
        ("eventbridge", "ObjectModified:UpdateObjectMeta"),
        ("s3", "ObjectRemoved:Delete"),
        ("s3", "s3:ObjectRestore:Completed"),
    ],
)
def test_other_events_are_skipped_with_their_name(source, event_name):
    parsed = parse_event(_payload(source, "a.js", event_name))
    assert parsed.records == []
    (skipped,) = parsed.skipped
    assert skipped.index == 0 and "not an ObjectCreated event" in skipped.reason


@pytest.mark.parametrize("source", ["oss", "eventbridge", "s3"])
def test_directory_keys_are_skipped(source):
    parsed = parse_event(_payload(source, "images/2026/"))
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
     "source", "data", "type", "specversion", "time", "eventTime", "triggerTime", "triggerName"]
)
LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20),
    st.sampled_from(["ObjectCreated:PutObject", "s3:ObjectCreated:Put", "ObjectCreated:AppendObject",
                     "acs.oss", "oss:ObjectCreated:PutObject", "a/", "%", "%FF", "+"]),
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
        assert record.event_name.startswith("ObjectCreated:")
        assert include_append or record.event_name != "ObjectCreated:AppendObject"
        assert record.source in ("oss", "eventbridge", "s3")
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
@given(st.lists(JSONISH, max_size=4), st.sampled_from(["oss", "s3", "cloudevent"]))
def test_records_of_arbitrary_shape_in_a_valid_envelope_never_raise(items, envelope):
    good = {"oss": oss_record("b", "good.js"), "s3": s3_event("b", "good.js")["Records"][0],
            "cloudevent": eventbridge_event("b", "good.js")}[envelope]
    records = [good, *items, good]
    payload = {"oss": {"events": records}, "s3": {"Records": records}, "cloudevent": records}[envelope]
    parsed = parse_event(json.dumps(payload).encode())
    _check_result(parsed, False)
    assert _keys(parsed)[0] == "good.js" and _keys(parsed)[-1] == "good.js"
    assert len(parsed.records) + len(parsed.skipped) == len(records)


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1).filter(lambda k: not k.endswith("/")))
def test_any_s3_key_round_trips_through_s3_encoding(key):
    assert _keys(parse_event(s3_event("b", key))) == [key]
