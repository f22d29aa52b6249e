"""The FC entry points as Function Compute calls them: event bytes and a context."""

from __future__ import annotations

import json
import math
import random
import time
from types import SimpleNamespace

import pytest

from eventdata import eventbridge_event, oss_event
from fixtures.cdn_double import TEST_AK, TEST_SK
from handler import entry
from handler.ports import StoreError


def _context(**credentials):
    creds = SimpleNamespace(**credentials) if credentials else None
    return SimpleNamespace(request_id="req-1", credentials=creds, region="cn-hangzhou", account_id="123")


def test_upload_then_flush_through_the_entry_points(deploy):
    d = deploy(window_seconds=1)
    payload = json.dumps(oss_event("my-bucket", "docs/read me.pdf")).encode()
    report = json.loads(entry.upload(payload, _context()))
    assert report["added"] == 1

    time.sleep(1.05)  # let the one-second window close; the Timer payload flushes closed windows only
    timer = json.dumps({"triggerTime": "2026-11-23T07:49:00Z", "triggerName": "every-minute", "payload": ""})
    flushed = json.loads(entry.flush(timer.encode(), _context()))
    assert flushed["pushed"] == 1
    assert d.double.pushed_urls == ["https://cdn.example.com/docs/read%20me.pdf"]


def test_removals_are_parsed_but_not_yet_queued(deploy):
    # Until ingest acts on removals, a delete must not queue a prefetch of the URL it removed.
    deploy()
    payload = json.dumps({"events": [oss_event("my-bucket", "a.js", "ObjectRemoved:DeleteObject")["events"][0],
                                     oss_event("my-bucket", "b.js")["events"][0]]}).encode()
    report = json.loads(entry.upload(payload, _context()))
    assert report["added"] == 1 and report["unmatched"] == 0


def test_context_credentials_come_before_the_environment(deploy, monkeypatch):
    d = deploy()
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "a-wrong-secret")
    entry.upload(json.dumps(oss_event("my-bucket", "a.js")).encode(), _context())
    context = _context(access_key_id=TEST_AK, access_key_secret=TEST_SK, security_token=None)
    flushed = json.loads(entry.flush(b'{"all": true}', context))
    assert flushed["pushed"] == 1 and d.double.pushed_urls == ["https://cdn.example.com/a.js"]


@pytest.mark.parametrize("payload", [b"", b"not json", b"[1, 2, 3]", b'{"events": "nope"}', b"\xff\xfe\x00"])
def test_a_malformed_event_is_logged_and_dropped(deploy, payload, caplog):
    deploy()
    report = json.loads(entry.upload(payload, _context()))
    assert report["added"] == 0
    assert any("skipped" in record.getMessage() for record in caplog.records)


def test_a_store_failure_raises_so_fc_retries(deploy, tmp_path, monkeypatch):
    deploy()
    blocked = tmp_path / "a-directory"
    blocked.mkdir()
    monkeypatch.setenv("PREWARM_STORE", f"sqlite:///{blocked}")
    with pytest.raises(StoreError):
        entry.upload(json.dumps(oss_event("my-bucket", "x.css")).encode(), _context())


def test_a_burst_with_duplicates_needs_exactly_the_minimum_of_calls(deploy):
    d = deploy(cdn={"daily_quota": 100000}, double={"quota": 100000})
    rng = random.Random(7)
    unique = [f"assets/{i:05d}/图 {i}.png" for i in range(7000)]
    keys = unique + [rng.choice(unique) for _ in range(3000)]  # 30% duplicates
    rng.shuffle(keys)
    for start in range(0, len(keys), 100):  # EventBridge delivers batches of CloudEvents
        batch = [eventbridge_event("my-bucket", key) for key in keys[start:start + 100]]
        entry.upload(json.dumps(batch).encode(), _context())

    report = json.loads(entry.flush(b'{"all": true}', _context()))
    assert report["pushed"] == 7000
    assert report["calls"] == math.ceil(7000 / 100) == d.double.calls("PushObjectCache")
    assert len(d.double.pushed_urls) == len(set(d.double.pushed_urls)) == 7000


def test_a_flush_stops_starting_batches_before_the_function_times_out(deploy):
    d = deploy(cdn={"daily_quota": 100000}, double={"quota": 100000})
    keys = [f"big/{i}.bin" for i in range(3000)]
    for start in range(0, len(keys), 500):
        entry.upload(json.dumps({"events": [oss_event("my-bucket", k)["events"][0] for k in keys[start:start + 500]]}).encode())
    d.double.inject(None, latency=0.3, probability=1.0, action="PushObjectCache")
    context = _context()
    context.function = SimpleNamespace(timeout=entry.FLUSH_MARGIN_SECONDS + 1)  # one second to start batches in

    started = time.monotonic()
    first = json.loads(entry.flush(b'{"all": true}', context))
    assert time.monotonic() - started < 5
    assert 0 < first["pushed"] < 3000 and first["error"] is None

    d.double.reset_faults()
    second = json.loads(entry.flush(b'{"all": true}', _context()))
    assert first["pushed"] + second["pushed"] == 3000
    assert sorted(d.double.pushed_urls) == sorted(f"https://cdn.example.com/{k}" for k in keys)
