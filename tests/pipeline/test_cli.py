"""The product through its command line, against the local CDN API double over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

from eventdata import oss_event

EVENTS = Path(__file__).resolve().parents[2] / "events"


def _write(tmp_path: Path, name: str, payload: dict | list) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    return str(path)


def _keys_payload(keys: list[str], bucket: str = "my-bucket") -> dict:
    return {"events": [oss_event(bucket, key)["events"][0] for key in keys]}


def test_sample_uploads_are_pushed_once_with_canonical_urls(deploy):
    d = deploy()
    files = [str(p) for p in sorted(EVENTS.glob("*.json")) if "delete" not in p.name]
    d.cli("ingest", *files)
    again = d.cli("ingest", *files, "--json")  # FC delivers at least once: a replay adds nothing
    assert json.loads(again.stdout)["added"] == 0

    report = d.cli_json("flush", "--all")
    pushed = d.double.pushed_urls
    assert report["pushed"] == len(pushed) > 0
    assert report["calls"] == 1
    assert len(set(pushed)) == len(pushed)
    assert len(report["task_ids"]) >= 1
    for url in pushed:
        assert url.startswith(("https://cdn.example.com/", "https://img.example.com/"))
        assert not any(ch.isspace() for ch in url)
    # The CJK-and-space sample: UTF-8 percent-encoded, %20 for spaces, never '+'.
    assert any("%E8%A7%86%E9%A2%91/" in url and "%20" in url for url in pushed)


def test_windows_close_on_time_and_status_reports(deploy, tmp_path):
    d = deploy()
    events = _write(tmp_path, "e.json", _keys_payload(["a.css", "b.css", "c.css"]))
    d.cli("ingest", "--now", "2026-11-23T10:00:05Z", events)

    still_open = d.cli_json("flush", "--now", "2026-11-23T10:00:59Z")
    assert still_open["pushed"] == 0 and still_open["calls"] == 0

    status = d.cli_json("status", "--now", "2026-11-23T10:00:59Z")
    assert status["pending"] == 3 and status["quota_used"] == 0 and status["quota_remaining"] == 1000
    assert status["quota_day"] == "2026-11-23" and status["dead"] == 0

    closed = d.cli_json("flush", "--now", "2026-11-23T10:01:00Z")
    assert closed["pushed"] == 3 and closed["calls"] == 1 and closed["deferred"] == 0 and closed["dead"] == 0
    status = d.cli_json("status", "--now", "2026-11-23T10:01:01Z")
    assert status["pending"] == 0 and status["quota_used"] == 3 and status["quota_remaining"] == 997
    assert sorted(d.double.pushed_urls) == [f"https://cdn.example.com/{k}.css" for k in "abc"]


def test_quota_day_turns_at_midnight_utc_plus_8(deploy, tmp_path):
    d = deploy(cdn={"daily_quota": 150}, double={"quota": 100000})
    keys = [f"img/{i:03d}.jpg" for i in range(250)]
    d.cli("ingest", "--now", "2026-11-23T15:50:00Z", _write(tmp_path, "e.json", _keys_payload(keys)))

    before = d.cli_json("flush", "--now", "2026-11-23T15:55:00Z")  # 23:55 in UTC+8
    assert before["pushed"] == 150 and before["deferred"] == 100 and before["quota_day"] == "2026-11-23"
    status = d.cli_json("status", "--now", "2026-11-23T15:59:59Z")
    assert status["quota_used"] == 150 and status["quota_remaining"] == 0
    assert status["pending"] == 100 and status["deferred"] == 100

    last_second = d.cli_json("flush", "--now", "2026-11-23T15:59:59Z")
    assert last_second["pushed"] == 0 and last_second["calls"] == 0

    after = d.cli_json("flush", "--now", "2026-11-23T16:00:00Z")  # 00:00 in UTC+8: a new quota day
    assert after["quota_day"] == "2026-11-24" and after["pushed"] == 100
    assert d.cli_json("status", "--now", "2026-11-23T16:00:01Z")["quota_used"] == 100
    assert sorted(d.double.pushed_urls) == sorted(f"https://cdn.example.com/{k}" for k in keys)


def test_bad_urls_are_dead_lettered_and_the_rest_pushed(deploy, tmp_path):
    d = deploy(rules=[{"bucket": "my-bucket", "domains": ["cdn.example.com", "gone.example.net"]}])
    d.cli("ingest", "--now", "2026-11-23T10:00:00Z", _write(tmp_path, "e.json", _keys_payload(["x.js", "y.js"])))
    report = d.cli_json("flush", "--all", "--now", "2026-11-23T10:00:01Z")
    assert report["pushed"] == 2 and report["dead"] == 2
    assert sorted(d.double.pushed_urls) == ["https://cdn.example.com/x.js", "https://cdn.example.com/y.js"]
    letters = json.loads(d.cli("dead-letters", "--json").stdout)
    assert {(l["url"], l["reason"].split(":")[0]) for l in letters} == {
        ("https://gone.example.net/x.js", "InvalidDomain.NotFound"),
        ("https://gone.example.net/y.js", "InvalidDomain.NotFound"),
    }
    assert d.cli_json("status", "--now", "2026-11-23T10:00:02Z")["dead"] == 2


def test_stdin_and_duplicate_records(deploy):
    d = deploy()
    payload = json.dumps(_keys_payload(["same.png"] * 5)).encode()
    result = d.cli("ingest", "-", "--json", stdin=payload)
    assert json.loads(result.stdout)["added"] == 1


def test_bad_config_and_unreadable_input_give_one_line(deploy, tmp_path):
    d = deploy()
    missing = d.cli("ingest", str(tmp_path / "missing.json"), check=False)
    assert missing.returncode == 2
    assert missing.stderr.decode().count("\n") == 1 and "missing.json" in missing.stderr.decode()
    assert b"Traceback" not in missing.stderr

    d.config_path.write_text(json.dumps({"rules": [{"bucket": "b", "domains": ["*.example.com"]}]}))
    bad = d.cli("status", check=False)
    assert bad.returncode == 2 and b"Traceback" not in bad.stderr
    assert bad.stderr.decode().strip() == "error: rules[0].domains[0]: wildcard domain '*.example.com' is not supported by PushObjectCache"

    bad_now = d.cli("status", "--now", "yesterday", check=False)
    assert bad_now.returncode == 2 and b"Traceback" not in bad_now.stderr


def test_garbage_events_are_refused_without_failing_the_good_ones(deploy, tmp_path):
    d = deploy()
    good = _write(tmp_path, "good.json", _keys_payload(["ok.txt"]))
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"\xff\xfe not json")
    result = d.cli("ingest", str(garbage), good, "--json", check=False)
    assert result.returncode == 2  # bad input, said after the good file was ingested
    totals = json.loads(result.stdout)
    assert totals["added"] == 1 and totals["files"] == 1 and totals["bad_files"] == 1
    assert b"garbage.json: not ingested" in result.stderr


def test_fatal_api_errors_stop_the_flush_and_keep_every_url(deploy, tmp_path):
    d = deploy()
    d.cli("ingest", "--now", "2026-11-23T10:00:00Z", _write(tmp_path, "e.json", _keys_payload(["k1", "k2"])))
    d.double.inject("NoPermission", 403, count=10)
    stopped = d.cli("flush", "--all", "--json", "--now", "2026-11-23T10:00:01Z", check=False)
    assert stopped.returncode == 1
    report = json.loads(stopped.stdout)
    assert report["pushed"] == 0 and report["deferred"] == 2 and "NoPermission" in report["error"]
    d.double.reset_faults()
    resumed = d.cli_json("flush", "--all", "--now", "2026-11-23T10:00:02Z")
    assert resumed["pushed"] == 2


def test_the_account_refusing_quota_mid_flush_defers_the_rest_to_the_next_day(deploy, tmp_path):
    d = deploy(double={"quota": 250})
    keys = [f"v/{i:03d}.mp4" for i in range(500)]
    d.cli("ingest", "--now", "2026-11-23T10:00:00Z", _write(tmp_path, "e.json", _keys_payload(keys)))
    # PreloadRemain unreadable: our own limit (1,000) lets the flush go on until the account refuses.
    d.double.inject("ServiceUnavailable", 503, count=5, action="DescribeRefreshQuota")
    report = d.cli_json("flush", "--all", "--now", "2026-11-23T10:00:01Z")
    assert report["pushed"] == 200 and report["deferred"] == 300 and report["dead"] == 0
    assert report["error"] is None  # running out of quota is routine, not a failure
    status = d.cli_json("status", "--now", "2026-11-23T10:00:02Z")
    assert status["pending"] == status["deferred"] == 300 and status["quota_remaining"] == 0

    d.double.set_quota(quota=1000, remain=1000)  # the account's day turns too
    after = d.cli_json("flush", "--now", "2026-11-23T16:00:00Z")
    assert after["pushed"] == 300 and after["quota_day"] == "2026-11-24"
    assert sorted(d.double.pushed_urls) == sorted(f"https://cdn.example.com/{k}" for k in keys)


def test_status_tells_the_accounts_quota_the_next_reset_and_the_oldest_wait(deploy, tmp_path):
    d = deploy(double={"quota": 500})
    d.double.set_quota(remain=120)
    d.double.set_quota(remain=7000, kind="file")
    d.cli("ingest", "--now", "2026-11-23T10:00:05Z", _write(tmp_path, "e.json", _keys_payload(["a.css", "b.css"])))
    status = d.cli_json("status", "--now", "2026-11-23T10:30:00Z")
    assert status["account_preload_remaining"] == 120 == d.double.quota_remaining()
    assert status["account_refresh_remaining"] == 7000
    assert status["next_reset"] == "2026-11-23T16:00:00+00:00"  # 00:00 UTC+8
    assert status["oldest_pending_seconds"] == 1800  # queued in the window that opened at 10:00:00
    assert status["backlog_days"] == 0.0 and status["pending"] == 2
    offline = d.cli_json("status", "--offline", "--now", "2026-11-23T10:30:00Z")
    assert offline["account_preload_remaining"] is None and offline["account_refresh_remaining"] is None

    d.cli("flush", "--now", "2026-11-23T10:31:00Z")
    after = d.cli_json("status", "--offline", "--now", "2026-11-23T10:31:01Z")
    assert after["oldest_pending_seconds"] is None and after["pushed"] == 2
    assert sorted(after["last_task_ids"]) == sorted({r["TaskId"] for r in d.double.model.records()})


def test_an_upload_without_an_etag_is_still_pushed(deploy, tmp_path):
    d = deploy()
    event = _keys_payload(["no-etag.js"])
    del event["events"][0]["oss"]["object"]["eTag"]
    path = _write(tmp_path, "e.json", event)
    d.cli("ingest", "--now", "2026-11-23T10:00:05Z", path)
    d.cli("ingest", "--now", "2026-11-23T10:00:06Z", path)  # a redelivery: the same event
    report = d.cli_json("flush", "--now", "2026-11-23T10:01:00Z")
    assert report["pushed"] == 1 and d.double.pushed_urls == ["https://cdn.example.com/no-etag.js"]


def test_an_idle_flush_makes_no_api_call(deploy):
    d = deploy()
    for minute in range(3):
        report = d.cli_json("flush", "--now", f"2026-11-23T10:0{minute}:00Z")
        assert report["calls"] == report["refresh_calls"] == 0
    assert d.double.received == []  # not even DescribeRefreshQuota


def test_higher_priority_rules_win_when_quota_is_short(deploy, tmp_path):
    d = deploy(
        cdn={"daily_quota": 2},
        rules=[{"bucket": "my-bucket", "domains": ["cdn.example.com"], "prefix": "bulk/"},
               {"bucket": "my-bucket", "domains": ["cdn.example.com"], "prefix": "hot/", "priority": 10}],
    )
    d.cli("ingest", "--now", "2026-11-23T10:00:05Z", _write(tmp_path, "a.json", _keys_payload(["bulk/1.js", "bulk/2.js"])))
    d.cli("ingest", "--now", "2026-11-23T10:01:05Z", _write(tmp_path, "b.json", _keys_payload(["hot/1.js", "hot/2.js"])))
    report = d.cli_json("flush", "--now", "2026-11-23T10:02:00Z")
    assert report["pushed"] == 2 and report["deferred_to_next_day"] == 2
    assert sorted(d.double.pushed_urls) == ["https://cdn.example.com/hot/1.js", "https://cdn.example.com/hot/2.js"]


def test_a_backlog_that_outgrows_the_quota_logs_one_error_line_per_flush(deploy, tmp_path):
    d = deploy(cdn={"daily_quota": 2})
    keys = [f"k/{i}.js" for i in range(5)]
    d.cli("ingest", "--now", "2026-11-23T10:00:05Z", _write(tmp_path, "e.json", _keys_payload(keys)))
    result = d.cli("flush", "--now", "2026-11-23T10:01:00Z")
    alerts = [line for line in result.stderr.decode().splitlines() if "backlog:" in line]
    assert len(alerts) == 1 and "3 URLs wait for the next quota day" in alerts[0]
    assert "the daily limit is 2 URLs" in alerts[0]
    quiet = d.cli("flush", "--now", "2026-11-23T10:02:00Z")  # nothing due: the deferred wait for tomorrow
    assert b"backlog:" not in quiet.stderr
