"""Scenario: the daily quota runs out mid-flush, by our limit or by the account's; the rest waits for 00:00 UTC+8."""

from __future__ import annotations

import time
from collections import Counter

from handler.planning import parse_instant

from .support import cli, cli_json, config, keys_payload, urls_of, write_json

DOMAIN = ("cdn.example.com",)


class Clock:
    """The double's own clock, moved with --now so that its quota day turns when ours does."""

    def __init__(self, iso: str) -> None:
        self.t = parse_instant(iso)

    def set(self, iso: str) -> str:
        self.t = parse_instant(iso)
        return iso

    def __call__(self) -> float:
        return self.t


def _deploy(tmp_path, make_cdn_double, *, ours: int, account: int, keys: int, start: str):
    clock = Clock(start)
    # The double's clock stands still between flushes: its per-second call limit would never reset.
    double = make_cdn_double(quota=account, clock=clock, max_skew=None, calls_per_second=10**6)
    cfg = write_json(tmp_path / "config.json", config(
        double.base_url, f"sqlite:///{tmp_path / 'state.db'}", domains=DOMAIN, cdn={"daily_quota": ours},
    ))
    names = [f"q/{i:05d}.png" for i in range(keys)]
    events = write_json(tmp_path / "events.json", keys_payload(names))
    assert cli(cfg, "ingest", "--now", start, str(events)).returncode == 0
    return double, clock, cfg, urls_of(names, DOMAIN)


def _reasons(cfg, iso) -> Counter:
    """Why deferred URLs wait, as `status --json` reports it."""
    return Counter(cli_json(cfg, "status", "--now", iso)["deferred_reasons"])


def _flush(cfg, double, clock, iso, per_day_ours, per_day_account, ok=(0,)):
    before = len(double.pushed_urls)
    report = cli_json(cfg, "flush", "--all", "--now", clock.set(iso), ok=ok)
    per_day_ours[report["quota_day"]] += report["pushed"]
    per_day_account[report["quota_day"]] += len(double.pushed_urls) - before
    ours = cli_json(cfg, "status", "--now", iso)["quota_used"]
    theirs = double.quota_counters()["preload"]
    assert theirs["used"] <= theirs["quota"], theirs  # the account's quota is never exceeded
    report["ours"], report["theirs"] = ours, theirs["used"]
    return report


def _check_all_pushed_once(double, expected, cfg, iso):
    status = cli_json(cfg, "status", "--now", iso)
    assert status["pending"] == 0 and status["deferred"] == 0 and status["dead"] == 0, status
    pushed = Counter(double.pushed_urls)
    assert set(pushed) == expected, f"{len(expected - set(pushed))} URLs lost"
    assert max(pushed.values()) == 1
    return status


def test_our_daily_quota_runs_out_mid_flush(tmp_path, make_cdn_double, measurements):
    started = time.monotonic()
    limit, total = 950, 2300  # 950 is not a multiple of the batch size: the last batch is cut in two
    double, clock, cfg, expected = _deploy(tmp_path, make_cdn_double, ours=limit, account=100_000, keys=total,
                                           start="2026-11-23T15:50:00Z")
    ours, account = Counter(), Counter()

    first = _flush(cfg, double, clock, "2026-11-23T15:55:00Z", ours, account)  # 23:55 UTC+8
    assert first["pushed"] == limit and first["deferred"] == total - limit and first["quota_day"] == "2026-11-23"
    status = cli_json(cfg, "status", "--now", "2026-11-23T15:59:59Z")
    assert status["deferred"] == status["pending"] == total - limit
    assert status["quota_used"] == limit and status["quota_remaining"] == 0
    reasons = _reasons(cfg, "2026-11-23T15:59:59Z")
    assert reasons == {"quota: today's prefetch limit is used": total - limit}, reasons

    late = _flush(cfg, double, clock, "2026-11-23T15:59:59Z", ours, account)
    assert late["pushed"] == 0 and late["calls"] == 0
    day2 = _flush(cfg, double, clock, "2026-11-23T16:00:00Z", ours, account)  # 00:00 UTC+8
    assert day2["quota_day"] == "2026-11-24" and day2["pushed"] == limit
    day3 = _flush(cfg, double, clock, "2026-11-24T16:00:00Z", ours, account)
    assert day3["quota_day"] == "2026-11-25" and day3["pushed"] == total - 2 * limit

    _check_all_pushed_once(double, expected, cfg, "2026-11-24T16:00:01Z")
    assert max(ours.values()) <= limit and max(account.values()) <= limit, (ours, account)
    for report in (first, late, day2, day3):  # our counter and the account's agree, day by day
        assert report["ours"] == report["theirs"] <= limit, report
    measurements.record(
        "quota-own-limit",
        tried=f"{total} URLs against daily_quota={limit} (account 100,000), flushed at 23:55, 23:59:59, "
              "00:00 and 00:00 the next day (UTC+8)",
        runs=f"{total} URLs, 4 flushes over 3 quota days",
        lost=0, duplicates=0, bound="0 (no faults)",
        figures=f"pushed per quota day {dict(ours)}; deferred after day 1: {first['deferred']} "
                f"with reason '{next(iter(reasons))}'; max per day {max(ours.values())} <= {limit}",
        seconds=time.monotonic() - started,
    )


def test_account_quota_smaller_than_ours(tmp_path, make_cdn_double, measurements):
    started = time.monotonic()
    account_quota, total = 250, 600
    double, clock, cfg, expected = _deploy(tmp_path, make_cdn_double, ours=1000, account=account_quota, keys=total,
                                           start="2026-11-23T15:50:00Z")
    ours, account = Counter(), Counter()
    first = _flush(cfg, double, clock, "2026-11-23T15:55:00Z", ours, account)
    assert first["pushed"] == account_quota and first["deferred"] == total - account_quota
    assert cli_json(cfg, "status", "--now", "2026-11-23T15:56:00Z")["deferred"] == total - account_quota
    assert _reasons(cfg, "2026-11-23T15:56:00Z") == {"quota: today's prefetch limit is used": total - account_quota}
    later = [_flush(cfg, double, clock, iso, ours, account) for iso in ("2026-11-23T16:00:00Z", "2026-11-24T16:00:00Z")]
    for report in (first, *later):
        assert report["ours"] == report["theirs"] <= account_quota, report
    _check_all_pushed_once(double, expected, cfg, "2026-11-24T16:00:01Z")
    refused = sum(1 for r in double.received if r.error == "QuotaExceeded.Refresh")
    assert refused == 0  # PreloadRemain was read first: no call wasted on a refusal
    assert max(account.values()) <= account_quota and max(ours.values()) <= account_quota
    measurements.record(
        "quota-account-remain",
        tried=f"{total} URLs, daily_quota=1000 but the account's quota is {account_quota} (read as PreloadRemain)",
        runs=f"{total} URLs, 3 flushes over 3 quota days",
        lost=0, duplicates=0, bound="0 (no faults)",
        figures=f"pushed per quota day {dict(ours)}; QuotaExceeded.Refresh answers {refused}",
        seconds=time.monotonic() - started,
    )


def test_account_refuses_with_quota_exceeded(tmp_path, make_cdn_double, measurements):
    started = time.monotonic()
    account_quota, total = 250, 600
    double, clock, cfg, expected = _deploy(tmp_path, make_cdn_double, ours=1000, account=account_quota, keys=total,
                                           start="2026-11-23T15:50:00Z")
    # PreloadRemain cannot be read, so only the API's own QuotaExceeded.Refresh stops the flush.
    double.inject("InternalError", 500, probability=1.0, action="DescribeRefreshQuota")
    ours, account = Counter(), Counter()
    first = _flush(cfg, double, clock, "2026-11-23T15:55:00Z", ours, account)
    assert first["pushed"] == 200 and first["deferred"] == total - 200, first
    assert cli_json(cfg, "status", "--now", "2026-11-23T15:56:00Z")["deferred"] == total - 200
    reasons = _reasons(cfg, "2026-11-23T15:56:00Z")
    assert sum(reasons.values()) == total - 200
    assert all(r.startswith("quota: ") for r in reasons), reasons
    assert any("QuotaExceeded.Refresh" in r for r in reasons), reasons
    again = _flush(cfg, double, clock, "2026-11-23T15:59:00Z", ours, account)  # the same day: no call wasted
    assert again["pushed"] == 0 and again["calls"] == 0
    for iso in ("2026-11-23T16:00:00Z", "2026-11-24T16:00:00Z", "2026-11-25T16:00:00Z"):
        _flush(cfg, double, clock, iso, ours, account)
    _check_all_pushed_once(double, expected, cfg, "2026-11-25T16:00:01Z")
    refused = sum(1 for r in double.received if r.error == "QuotaExceeded.Refresh")
    assert refused >= 1
    assert max(account.values()) <= account_quota
    measurements.record(
        "quota-account-refuses",
        tried=f"{total} URLs, account quota {account_quota}, PreloadRemain unreadable (DescribeRefreshQuota fails), "
              "so the API's QuotaExceeded.Refresh stops each day's flush",
        runs=f"{total} URLs, 5 flushes over 3 quota days",
        lost=0, duplicates=0, bound="0 (no faults on PushObjectCache)",
        figures=f"pushed per quota day {dict(ours)}; QuotaExceeded.Refresh answers {refused}; "
                f"after day 1: deferred {first['deferred']}",
        seconds=time.monotonic() - started,
    )
