"""Calls and quota on one trace: this project, the per-upload baseline, and the physical limit.

Ours: the trace replayed through the upload path (`parse_event` + `prewarm.ingest`, with
each event's simulated instant as `now`) and flushed by `prewarm.flush` on a simulated
one-minute timer, against a local CDN API double over HTTP. The same trace is also
replayed with one flush at the end, which shows what batching alone achieves when
freshness does not matter.

Baseline: what the common templates do, one PushObjectCache call per upload event with
that event's URLs, no dedupe; V2-signed form POSTs that the double must accept.

Limit: ceil(unique URLs / cap) calls and unique URLs of quota. With a timer every minute,
the tightest any scheme can do is ceil(new URLs of the closed windows / cap) per tick:
the "per-tick limit", computed from the trace alone.

Every count of calls and pushed URLs is read from the doubles' own records.
"""

from __future__ import annotations

import math
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from . import rig
from .trace import Trace

TICK_OFFSET = 1.0  # the timer fires one second into each minute
# The double remembers every nonce; past 10,000 it prunes on each call, which would time the double,
# not the sender. A fresh double per 5,000 baseline calls keeps its bookkeeping small.
BASELINE_CALLS_PER_DOUBLE = 5_000


@dataclass
class Efficiency:
    events: int
    unique_keys: int
    unique_urls: int
    limit_calls: int  # ceil(unique URLs / cap)
    tick_limit_calls: int  # sum over timer ticks of ceil(new URLs / cap)
    ticks: int  # timer ticks that had URLs to push
    ours_calls: int
    ours_quota: int
    ours_duplicate_quota: int
    ours_other_calls: int  # DescribeRefreshQuota (one per flush that sends) and task checks
    ours_other_by_action: dict  # action -> calls, for the calls other than PushObjectCache
    ours_round_splits: int  # extra calls: a flush's claim round ended on a partial batch before the next round
    ours_store_quota: int  # the store's own counter, for a cross-check
    ours_seconds: float
    oneshot_calls: int
    oneshot_quota: int
    oneshot_duplicate_quota: int
    baseline_calls: int
    baseline_quota: int
    baseline_duplicate_quota: int
    baseline_rejected: int
    baseline_seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


def tick_instants(trace: Trace) -> list[float]:
    """The simulated timer: one second into every minute, until every window of the trace has closed."""
    from .trace import START

    minutes = math.ceil(trace.seconds / 60.0)
    return [START + 60.0 * k + TICK_OFFSET for k in range(1, minutes + 1)]


def tick_limit(trace: Trace, urls_per_key: int, cap: int, window_seconds: int = 60) -> tuple[int, int]:
    """(calls, busy ticks) that pushing each new URL at the first tick after its window closes needs at least."""
    first_seen: dict[str, float] = {}
    for upload in trace.uploads:
        first_seen.setdefault(upload.key, upload.at)
    per_tick: Counter[int] = Counter()
    ticks = tick_instants(trace)
    for at in first_seen.values():
        window_end = (math.floor(at / window_seconds) + 1) * window_seconds
        per_tick[next(i for i, t in enumerate(ticks) if t >= window_end)] += urls_per_key
    return sum(math.ceil(n / cap) for n in per_tick.values()), len(per_tick)


def run(trace: Trace) -> Efficiency:
    payloads = _payloads(trace)
    unique_keys = trace.unique_keys
    unique_urls = unique_keys * len(rig.DOMAINS)
    tick_calls, busy_ticks = tick_limit(trace, len(rig.DOMAINS), rig.CAP)

    with tempfile.TemporaryDirectory(prefix="bench-efficiency-") as tmp:
        ours, ours_quota_counter, ours_seconds = _ours(trace, payloads, Path(tmp) / "timer.db", oneshot=False)
        oneshot, _, _ = _ours(trace, payloads, Path(tmp) / "oneshot.db", oneshot=True)
    baseline = _baseline(trace)
    return Efficiency(
        events=len(trace.uploads),
        unique_keys=unique_keys,
        unique_urls=unique_urls,
        limit_calls=math.ceil(unique_urls / rig.CAP),
        tick_limit_calls=tick_calls,
        ticks=busy_ticks,
        ours_calls=ours["calls"],
        ours_quota=ours["quota"],
        ours_duplicate_quota=ours["duplicates"],
        ours_other_calls=ours["other_calls"],
        ours_other_by_action=ours["other_by_action"],
        ours_round_splits=ours["round_splits"],
        ours_store_quota=ours_quota_counter,
        ours_seconds=ours_seconds,
        oneshot_calls=oneshot["calls"],
        oneshot_quota=oneshot["quota"],
        oneshot_duplicate_quota=oneshot["duplicates"],
        baseline_calls=baseline["calls"],
        baseline_quota=baseline["quota"],
        baseline_duplicate_quota=baseline["duplicates"],
        baseline_rejected=baseline["rejected"],
        baseline_seconds=baseline["seconds"],
    )


def _payloads(trace: Trace) -> list[bytes]:
    from .trace import oss_payload

    return [oss_payload(u.key, u.at) for u in trace.uploads]


def _counts(double) -> dict:
    pushed = list(double.pushed_urls)
    other = Counter(r.action for r in double.received if r.action != "PushObjectCache")
    return {
        "other_by_action": dict(sorted(other.items())),
        "calls": double.calls("PushObjectCache"),
        "quota": len(pushed),
        "duplicates": len(pushed) - len(set(pushed)),
        "other_calls": double.calls() - double.calls("PushObjectCache"),
    }


def _ours(trace: Trace, payloads: list[bytes], db: Path, *, oneshot: bool) -> tuple[dict, int, float]:
    """Replay the trace through the upload path; flush on the simulated timer, or once at the end.

    The store, the CDN client and the double share one simulated clock, and pauses take no real
    time, so the flushes see the tasks they submitted complete minutes later, as on the real API.
    """
    from handler import ports
    from handler.events import parse_event
    from handler.planning import quota_day
    from handler.prewarm import flush, ingest
    from handler.stores.sqlite import SqliteStore
    from handler.wiring import open_cdn

    double = rig.start_double(calls_per_second=10**6, max_skew=None)
    store = SqliteStore(db)
    clock = {"now": trace.uploads[0].at}

    def at(t: float) -> None:
        clock["now"] = t
        double.set_clock(t)

    try:
        settings = rig.settings(rig.config(f"sqlite:///{db}", double.base_url))
        cdn = open_cdn(settings, rig.credentials(), clock=lambda: clock["now"], sleep=lambda seconds: None)
        ticks = [] if oneshot else tick_instants(trace)
        next_tick = 0
        reports = []

        def tick(t: float, **options) -> None:
            at(t)
            reports.append(flush(store, cdn, settings, t, **options))

        started = time.perf_counter()
        for upload, payload in zip(trace.uploads, payloads):
            while next_tick < len(ticks) and ticks[next_tick] <= upload.at:
                tick(ticks[next_tick])
                next_tick += 1
            at(upload.at)
            parsed = parse_event(payload, include_append=settings.include_append)
            ingest(parsed.records, settings, store, now=upload.at)
        for t in ticks[next_tick:]:
            tick(t)
        if oneshot:
            tick(trace.uploads[-1].at + 1.0, flush_all=True)
        seconds = time.perf_counter() - started
        cdn.client.close()
        counts = _counts(double)
        # A flush claims up to 10 batches' worth per round, task checks included, and sends each round's
        # last partial batch before claiming again: the one source of calls beyond the per-tick limit.
        counts["round_splits"] = sum(r.calls - math.ceil(r.pushed / rig.CAP) for r in reports)
        return counts, store.quota_used(ports.PREFETCH, quota_day(trace.uploads[0].at)), seconds
    finally:
        store.close()
        double.stop()


def _baseline(trace: Trace, threads: int = 1) -> dict:
    """One signed PushObjectCache per upload event with that event's URLs, no dedupe, unpaced."""
    from handler.events import parse_event
    from handler.urls import urls_for

    settings = rig.settings(rig.config("sqlite:///:memory:"))
    jobs: list[list[str]] = []
    for upload in trace.uploads:
        from .trace import oss_payload

        records = parse_event(oss_payload(upload.key, upload.at)).records
        jobs.append([url for record in records for url in urls_for(record, settings.rules).urls])

    totals = {"calls": 0, "quota": 0, "duplicates": 0, "other_calls": 0, "rejected": 0, "seconds": 0.0}
    pushed: list[str] = []
    for start in range(0, len(jobs), BASELINE_CALLS_PER_DOUBLE):
        part = _baseline_part(jobs[start : start + BASELINE_CALLS_PER_DOUBLE], threads)
        pushed.extend(part.pop("pushed"))
        part.pop("other_by_action")
        for name, value in part.items():
            totals[name] += value
    totals["quota"] = len(pushed)
    totals["duplicates"] = len(pushed) - len(set(pushed))
    return totals


def _baseline_part(jobs: list[list[str]], threads: int) -> dict:
    double = rig.start_double(calls_per_second=1_000_000)
    rejected = [0] * threads
    try:
        started = time.perf_counter()
        workers = [
            threading.Thread(target=_send_all, args=(double.base_url, jobs[i::threads], rejected, i), daemon=True)
            for i in range(threads)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=600)
        seconds = time.perf_counter() - started
        if any(worker.is_alive() for worker in workers):
            raise RuntimeError("the baseline sender did not finish within 600 s")
        return {**_counts(double), "pushed": list(double.pushed_urls), "rejected": sum(rejected), "seconds": seconds}
    finally:
        double.stop()


def _send_all(endpoint: str, jobs: list[list[str]], rejected: list[int], slot: int) -> None:
    """A template's sender: V2 (HMAC-SHA1) form POSTs over one kept-alive session, as the old SDK core signs them."""
    import requests

    from handler.cdn import signing

    with requests.Session() as session:
        for urls in jobs:
            form = {
                "Action": "PushObjectCache",
                "Version": "2018-05-10",
                "Format": "JSON",
                "AccessKeyId": rig.ACCESS_KEY_ID,
                "SignatureMethod": signing.V2_METHOD,
                "SignatureVersion": signing.V2_VERSION,
                "SignatureNonce": uuid.uuid4().hex,
                "Timestamp": datetime.now(timezone.utc).strftime(signing.TIMESTAMP_FORMAT),
                "ObjectPath": "\n".join(urls),
            }
            form["Signature"] = signing.v2_signature("POST", form, rig.ACCESS_KEY_SECRET)
            body = "&".join(f"{signing.percent_encode(k)}={signing.percent_encode(v)}" for k, v in form.items())
            response = session.post(
                endpoint + "/", data=body.encode("ascii"), timeout=(3, 10), allow_redirects=False,
                headers={"content-type": "application/x-www-form-urlencoded", "accept": "application/json"},
            )
            if response.status_code != 200:
                rejected[slot] += 1
