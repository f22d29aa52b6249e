"""Scenario: the CDN API misbehaves on ~30% of calls; nothing is lost, duplicates only where an answer was lost."""

from __future__ import annotations

import time
from collections import Counter

from handler.cdn.client import CdnClient
from handler.cdn.pushing import BatchPusher
from handler.credentials import Credentials
from handler.events import parse_event
from handler.planning import parse_instant
from handler.prewarm import flush, ingest
from handler.settings import parse_settings
from handler.stores.sqlite import SqliteStore

from fixtures.cdn_double import TEST_AK, TEST_SK

from .support import config, keys_payload, urls_of

KEYS = 2500  # x 2 domains = 5,000 URLs
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
MAX_FLUSHES = 300
BATCH = 50  # URLs per call (the API takes up to 100): more calls, so every kind of fault shows up


def test_transient_api_faults_lose_nothing(tmp_path, make_cdn_double, measurements):
    started = time.monotonic()
    double = make_cdn_double(quota=10_000_000)
    double.seed(20261123)
    for fault in FAULTS:
        double.inject(fault.pop("code"), fault.pop("status", None), probability=EACH, **fault)
    settings = parse_settings(config(
        double.base_url, f"sqlite:///{tmp_path / 'state.db'}",
        cdn={"max_urls_per_call": BATCH, "read_timeout": READ_TIMEOUT, "connect_timeout": 0.5, "max_retries": 2, "retry_budget_seconds": 0.6},
        max_attempts=10, retry_after_seconds=60,
    ))
    store = SqliteStore(tmp_path / "state.db")
    pusher = BatchPusher(CdnClient(Credentials(TEST_AK, TEST_SK), settings.cdn), settings.cdn)

    keys = [f"assets/{i:05d}.js" for i in range(KEYS)]
    expected = urls_of(keys)
    now = parse_instant("2026-11-23T01:00:00Z")
    parsed = parse_event(keys_payload(keys))
    assert ingest(parsed.records, settings, store, now).added == len(expected) == 5000

    flushes = maybe_duplicated = stopped = 0
    while store.counts(now).pending and flushes < MAX_FLUSHES:
        now += settings.retry_after_seconds + 1
        report = flush(store, pusher, settings, now, flush_all=True)
        flushes += 1
        maybe_duplicated += report.maybe_duplicated
        stopped += report.error is not None
    time.sleep(LATENCY + 0.3)  # a call the client gave up on may still be accepted by the double
    counts = store.counts(now)
    store.close()

    snapshot = double.snapshot()
    pushed = snapshot["pushed_urls"]
    calls = [r for r in snapshot["received"] if r["action"] == "PushObjectCache"]
    by_fault = Counter(r["fault"] or "none" for r in snapshot["received"])
    lost = expected - set(pushed)
    answer_lost = [r for r in calls if r["accepted"] and r["fault"] in ("drop_after_accept", "latency")]
    answer_lost_urls = Counter(url for r in answer_lost for url in r["urls"])
    extra = Counter(pushed)
    duplicated = sum(n - 1 for n in extra.values())

    assert not lost, f"{len(lost)} URLs never pushed, e.g. {sorted(lost)[:3]}"
    assert counts.pending == 0 and counts.dead == 0 and counts.pushed == len(expected), counts
    assert set(pushed) == expected
    # A URL is pushed again only if a call carrying it was accepted but its answer never arrived.
    for url, n in extra.items():
        assert n - 1 <= answer_lost_urls[url], f"{url} pushed {n} times, answer lost {answer_lost_urls[url]} times"
    assert duplicated <= sum(answer_lost_urls.values())
    # The faults really happened, in about the share asked for.
    faulted = sum(n for kind, n in by_fault.items() if kind != "none")
    share = faulted / len(snapshot["received"])
    assert 0.2 < share < 0.4, by_fault
    assert all(by_fault[kind] > 0 for kind in ("error", "latency", "drop", "drop_after_accept")), by_fault

    measurements.record(
        "api-faults",
        tried=f"{KEYS} keys x 2 domains through the flush, {share:.0%} of {len(snapshot['received'])} API calls faulted "
              "(Throttling, ServiceUnavailable, InternalError, PreloadQueueFull, timeouts, dropped connections, "
              "answers lost after acceptance)",
        runs=f"{len(expected)} URLs, {flushes} flushes",
        lost=len(lost),
        duplicates=duplicated,
        bound=f"<= URLs in accepted calls whose answer was lost ({sum(answer_lost_urls.values())} in {len(answer_lost)} calls)",
        figures=f"faults by kind {dict(sorted(by_fault.items()))}; {len(calls)} PushObjectCache calls; "
                f"flushes stopped early {stopped}; FlushReport.maybe_duplicated total {maybe_duplicated}; dead 0",
        seconds=time.monotonic() - started,
    )
