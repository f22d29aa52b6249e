"""Scenario: the CDN API misbehaves on ~30% of calls; nothing is lost, nothing is pushed twice, every URL is verified."""

from __future__ import annotations

import time
from collections import Counter

from handler.cdn.client import CdnClient
from handler.cdn.pushing import CdnAdapter
from handler.credentials import Credentials
from handler.events import parse_event
from handler.planning import parse_instant, quota_day
from handler.ports import PREFETCH
from handler.prewarm import flush, ingest
from handler.settings import parse_settings
from handler.stores.sqlite import SqliteStore

from fixtures.cdn_double import TEST_AK, TEST_SK

from .support import config, keys_payload, preload_tasks, urls_of

KEYS = 1000  # x 2 domains = 2,000 URLs
READ_TIMEOUT = 0.2
LATENCY = 0.45  # beyond the read timeout: the client gives up, the double accepts afterwards
EACH = 0.05  # seven kinds of fault, one draw each: 1 - 0.95**7 = 30% of calls
FAULTS = [
    dict(code="Throttling", status=503),
    dict(code="ServiceUnavailable", status=503),
    dict(code="InternalError", status=500),
    dict(code="PreloadQueueFull", status=403),
    dict(code=None, latency=LATENCY),
    dict(code=None, drop=True),
    dict(code=None, drop_after_accept=True),
]
MAX_FLUSHES = 400
STEP = 61  # simulated seconds between flushes, as a minutely timer
BATCH = 50  # URLs per call (the API takes up to 100): more calls, so every kind of fault shows up


def test_transient_api_faults_lose_nothing(tmp_path, make_cdn_double, measurements):
    started = time.monotonic()
    now = parse_instant("2026-11-23T17:00:00Z")  # 01:00 UTC+8: the whole run stays in one quota day
    double = make_cdn_double(quota=10_000_000, calls_per_second=10**6)
    double.set_clock(now)
    double.seed(20261123)
    for fault in FAULTS:
        double.inject(fault.pop("code"), fault.pop("status", None), probability=EACH, **fault)
    settings = parse_settings(config(
        double.base_url, f"sqlite:///{tmp_path / 'state.db'}",
        cdn={"max_urls_per_call": BATCH, "read_timeout": READ_TIMEOUT, "connect_timeout": 0.5, "max_retries": 2,
             "retry_budget_seconds": 0.6},
    ))
    store = SqliteStore(tmp_path / "state.db")
    # Back-off and pacing pauses take no real time (the simulated clock moves instead); timeouts stay real.
    # The adapter stamps ambiguous calls and task searches with the flush's (simulated) clock.
    clock = {"now": now}
    client = CdnClient(Credentials(TEST_AK, TEST_SK), settings.cdn, sleep=lambda s: None, clock=lambda: clock["now"])
    cdn = CdnAdapter(client, settings.cdn, clock=lambda: clock["now"])

    keys = [f"assets/{i:05d}.js" for i in range(KEYS)]
    expected = urls_of(keys)
    parsed = parse_event(keys_payload(keys))
    assert ingest(parsed.records, settings, store, now).added == len(expected) == 2 * KEYS

    flushes = stopped = verified = resolved = pushed_reported = 0
    while store.counts(now).verified < len(expected) and flushes < MAX_FLUSHES:
        now += STEP
        clock["now"] = now
        double.set_clock(now)
        latencies = sum(1 for r in double.received if r.fault == "latency")
        report = flush(store, cdn, settings, now, flush_all=True)
        if sum(1 for r in double.received if r.fault == "latency") > latencies:
            time.sleep(LATENCY + 0.1)  # a call the client gave up on is accepted by the double meanwhile
        flushes += 1
        stopped += report.error is not None
        verified += report.verified
        resolved += report.resolved
        pushed_reported += report.pushed
    counts = store.counts(now)
    ours = store.quota_used(PREFETCH, quota_day(now))
    store.close()

    records = double.task_records()
    tasks = preload_tasks(records)
    complete = preload_tasks(records, "Complete")
    calls = [r for r in double.received if r.action == "PushObjectCache"]
    by_fault = Counter(r.fault or "none" for r in double.received)
    answer_lost = [r for r in calls if r.accepted and r.fault in ("drop_after_accept", "latency")]
    lost = expected - set(complete)
    duplicated = sum(n - 1 for n in tasks.values())
    theirs = double.quota_counters()["preload"]["used"]

    assert not lost, f"{len(lost)} URLs never verified, e.g. {sorted(lost)[:3]}"
    assert set(tasks) == expected
    assert counts.verified == len(expected) and counts.pending == counts.pushed == counts.dead == 0, counts
    assert verified == len(expected), "flush reports' verified must add up to the URLs verified"
    # An answer lost after acceptance is settled by looking the task up, never by pushing again.
    assert duplicated == 0, f"{duplicated} URLs pushed twice, e.g. {[u for u, n in tasks.items() if n > 1][:3]}"
    assert answer_lost and resolved >= 1
    # Quota: our counter, the double's counter and the URLs pushed are one and the same number.
    assert ours == theirs == len(tasks) == len(expected), (ours, theirs, len(tasks))
    # The faults really happened, in about the share asked for.
    faulted = sum(n for kind, n in by_fault.items() if kind != "none")
    share = faulted / len(double.received)
    assert 0.2 < share < 0.4, by_fault
    assert all(by_fault[kind] > 0 for kind in ("error", "latency", "drop", "drop_after_accept")), by_fault

    measurements.record(
        "api-faults",
        tried=f"{KEYS} keys x 2 domains flushed every simulated minute, {share:.0%} of {len(double.received)} API "
              "calls faulted (Throttling, ServiceUnavailable, InternalError, PreloadQueueFull, timeouts, dropped "
              "connections, answers lost after acceptance) on every action, task lookups included",
        runs=f"{len(expected)} URLs, {flushes} flushes",
        lost=len(lost),
        duplicates=duplicated,
        bound=f"0: answers lost after acceptance ({len(answer_lost)} calls, "
              f"{sum(len(r.urls) for r in answer_lost)} URLs) settled by task lookup",
        figures=f"faults by kind {dict(sorted(by_fault.items()))}; {len(calls)} PushObjectCache calls; flushes "
                f"stopped early {stopped}; flush --json totals: pushed {pushed_reported}, verified {verified}, "
                f"resolved {resolved}; quota used: ours {ours}, the double's {theirs}, URLs pushed {len(tasks)}; "
                f"dead 0",
        seconds=time.monotonic() - started,
    )
