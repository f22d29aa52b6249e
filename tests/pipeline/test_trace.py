"""Acceptance: three quota days of uploads, redeliveries, overwrites and deletes, through the FC entry points.

A seeded trace drives the upload function event by event and the flush function every simulated
minute, against the CDN double on the same simulated clock. The double models a CDN (an origin,
an edge cache, tasks that take minutes), so the test asserts what a visitor would see: the cache
ends up holding the origin's current version of every live object and nothing of a deleted one.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from eventdata import oss_event
from handler import entry
from handler.local.cdn_double_model import object_key
from handler.planning import parse_instant
from handler.settings import load_settings
from handler.wiring import Wiring

START = parse_instant("2026-11-23T16:00:00Z")  # 00:00 UTC+8: a quota day begins
DAY = 86400
EVENTS = 5000
BUCKET, DOMAIN = "my-bucket", "cdn.example.com"


@dataclass(frozen=True)
class Op:
    at: float
    kind: str  # "write" | "delete"
    key: str
    version: str | None
    why: str  # "new" | "repeat" | "overwrite" | "delete"


def make_trace(seed: int) -> list[Op]:
    """5,000 events over 3 days: 55% new objects, 30% identical re-uploads or redeliveries, 10% overwrites,
    5% deletes (some of the object just written, inside its upload's window)."""
    rng = random.Random(seed)
    times = sorted(START + rng.uniform(0, 3 * DAY) for _ in range(EVENTS))
    live: dict[str, str] = {}
    last_written: str | None = None
    ops: list[Op] = []
    for n, at in enumerate(times):
        roll = rng.random()
        if not live or roll < 0.55:
            key = f"site/{n:05d}/{rng.choice(['app.js', 'index.html', '图片 1.png', 'a+b.css'])}"
            ops.append(Op(at, "write", key, f"E{n:05d}", "new"))
        elif roll < 0.85:
            key = rng.choice(sorted(live))
            ops.append(Op(at, "write", key, live[key], "repeat"))
        elif roll < 0.95:
            key = rng.choice(sorted(live))
            ops.append(Op(at, "write", key, f"E{n:05d}", "overwrite"))
        else:
            key = last_written if last_written in live and rng.random() < 0.4 else rng.choice(sorted(live))
            ops.append(Op(at, "delete", key, None, "delete"))
        op = ops[-1]
        if op.kind == "write":
            live[op.key] = op.version
            last_written = op.key
        else:
            live.pop(op.key)
    return ops


def url_of(key: str) -> str:
    from handler.urls import encode_path

    return f"https://{DOMAIN}/{encode_path(key)}"


def payload(op: Op) -> bytes:
    if op.kind == "write":
        event = oss_event(BUCKET, op.key, etag=op.version)
    else:
        event = oss_event(BUCKET, op.key, "ObjectRemoved:DeleteObject")
        del event["events"][0]["oss"]["object"]["eTag"]
    return json.dumps(event).encode()


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
    ops = make_trace(seed=20261126)
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
