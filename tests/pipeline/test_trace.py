"""Acceptance: three quota days of uploads, redeliveries, overwrites and deletes, through the FC entry points.

A seeded trace drives the upload function event by event and the flush function every simulated
minute, against the CDN double on the same simulated clock. The double models a CDN (an origin,
an edge cache, tasks that take minutes), so the test asserts what a visitor would see: the cache
ends up holding the origin's current version of every live object and nothing of a deleted one.
"""

from __future__ import annotations

import json
from collections import defaultdict
from types import SimpleNamespace

import pytest

from handler import entry
from handler.local.cdn_double_model import object_key
from handler.local.change_trace import BUCKET, DOMAIN, START, make_trace, payload, url_of
from handler.settings import load_settings
from handler.wiring import Wiring


class Replay:
    """The two FC functions and the CDN double on one simulated clock."""

    def __init__(self, deployment, monkeypatch) -> None:
        self.now = START
        self.double = deployment.double
        wiring = Wiring(load_settings(deployment.config_path), clock=lambda: self.now, sleep=lambda seconds: None)
        monkeypatch.setattr(entry, "_wiring", wiring)
        self.context = SimpleNamespace(request_id="r", credentials=None, function=None)
        self.timer = json.dumps({"triggerTime": "", "triggerName": "every-minute", "payload": ""}).encode()
        self.flushes: list[dict] = []

    def at(self, t: float) -> None:
        self.now = t
        self.double.set_clock(t)

    def flush(self) -> dict:
        report = json.loads(entry.flush(self.timer, self.context))
        self.flushes.append(report)
        return report


@pytest.mark.slow
def test_three_days_of_changes_end_with_a_warm_current_cache(deploy, monkeypatch):
    d = deploy(
        double={"task_seconds": 240, "refresh_seconds": 300, "task_ids": "per_domain", "calls_per_second": 10**6},
        cdn={"daily_quota": 1000},
        rules=[{"bucket": BUCKET, "domains": [DOMAIN]}],
    )
    d.double.set_open_origin(False)
    replay = Replay(d, monkeypatch)
    ops = make_trace(seed=20261126)  # shared with the benchmark (bench/staleness.py)
    assert {op.why for op in ops} == {"new", "repeat", "overwrite", "delete"} and len(ops) == 5000
    next_tick = START + 60
    for op in ops:
        while next_tick <= op.at:
            replay.at(next_tick)
            replay.flush()
            next_tick += 60
        replay.at(op.at)
        url = url_of(op.key)
        if op.kind == "write":
            d.double.set_origin(url, op.version)
        else:
            d.double.delete_origin(url)
        entry.upload(payload(op), replay.context)
    for _ in range(3 * 1440):  # the backlog carries over into the following quota days
        replay.at(next_tick)
        replay.flush()
        next_tick += 60
        status = entry._wiring.store().counts(next_tick)
        if status.pending == status.refreshing == status.pushed == 0:
            break

    live: dict[str, str] = {}
    for op in ops:
        if op.kind == "write":
            live[url_of(op.key)] = op.version
        else:
            live.pop(url_of(op.key), None)
    deleted = {url_of(op.key) for op in ops if op.kind == "delete"} - set(live)
    cache = d.double.cache()

    # The promise: every live object is served warm and current; nothing of a deleted one is served.
    stale = {u: (cache.get(object_key(u)), v) for u, v in live.items() if cache.get(object_key(u)) != v}
    assert stale == {}
    assert [u for u in deleted if object_key(u) in cache] == []

    tasks = d.double.model.records()
    preloads = [t for t in tasks if t["ObjectType"] == "preload"]
    refreshes = [t for t in tasks if t["ObjectType"] == "file"]
    # A prefetch whose object was deleted before its task ran fails at the origin: nothing to warm.
    failed = [t for t in tasks if t["Status"] != "Complete"]
    assert {t["Description"] for t in failed} <= {"origin returned 404 Not Found"}
    assert {t["ObjectPath"] for t in failed} <= deleted

    # No prefetch was sent while a refresh of its URL had not completed.
    refreshes_of = defaultdict(list)
    for r in refreshes:
        refreshes_of[object_key(r["ObjectPath"])].append(r)
    early = [p["ObjectPath"] for p in preloads for r in refreshes_of[object_key(p["ObjectPath"])]
             if r["created"] <= p["created"] < r["done_at"]]
    assert early == []

    # Prefetch quota: each (URL, version) warmed once, and only versions that were uploaded.
    history = defaultdict(list)  # url -> [(time, version or None)]
    for op in ops:
        history[url_of(op.key)].append((op.at, op.version))

    def version_at(url: str, t: float) -> str | None:
        current = None
        for at, version in history[url]:
            if at > t:
                break
            current = version
        return current

    pairs = [(p["ObjectPath"], version_at(p["ObjectPath"], p["created"])) for p in preloads]
    assert len(pairs) == len(set(pairs))  # no (URL, version) pushed twice: redeliveries cost nothing
    assert all(version is not None for _, version in pairs)
    assert set(live.items()) <= set(pairs)
    assert sum(r["pushed"] for r in replay.flushes) == len(preloads)  # quota counted for accepted calls only
    assert sum(r["refreshed"] for r in replay.flushes) == len(refreshes)

    # Refresh quota: one refresh per pushed URL that was then overwritten or deleted, however many times.
    expected_refreshes = 0
    pushes_of = defaultdict(list)
    for p in preloads:
        pushes_of[p["ObjectPath"]].append(p["created"])
    for url, pushed_at in pushes_of.items():
        changes = [at for (at, version), prev in zip(history[url][1:], history[url]) if version != prev[1]]
        bounds = sorted(pushed_at) + [float("inf")]
        expected_refreshes += sum(1 for a, b in zip(bounds, bounds[1:]) if any(a < c <= b for c in changes))
    assert len(refreshes) == expected_refreshes > 0

    # Deletes inside their upload's window cost no quota at all.
    cancelled = [u for u in deleted if not pushes_of.get(u)]
    assert cancelled
