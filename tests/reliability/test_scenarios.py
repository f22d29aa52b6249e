"""Scenarios through the FC entry points, flushed every simulated minute against the CDN double on the same clock:
an outage, a throttling storm, answers lost after acceptance, failed prefetch tasks.

Each ends with every URL verified, and with `status --json` (the CLI) agreeing with the double's own task
records: `verified` is the URLs with a Complete prefetch task, `failed_tasks` the URLs with a Failed one.
Quota is checked after every flush: our counter and the double's never pass their limits, and at the end
both equal the prefetch tasks the double made.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from types import SimpleNamespace

from handler import entry
from handler.planning import parse_instant, quota_day
from handler.ports import PREFETCH
from handler.settings import load_settings
from handler.wiring import Wiring

from fixtures.cdn_double import TEST_AK, TEST_SK

from .support import cli_json, config, keys_payload, preload_tasks, urls_of, write_json

START = parse_instant("2026-11-23T16:00:30Z")  # just after 00:00 UTC+8: the whole run is one quota day
KEYS = 200  # x 2 domains = 400 URLs, 4 calls of 100
MAX_TICKS = 400
TIMER = json.dumps({"triggerTime": "", "triggerName": "every-minute", "payload": ""}).encode()


class Replay:
    """The upload and flush functions and the double on one simulated clock; the flush runs every minute."""

    def __init__(self, tmp_path, make_cdn_double, monkeypatch, *, quota: int, double: dict | None = None,
                 cdn: dict | None = None, **top):
        self.now = START
        self.quota = quota
        self.double = make_cdn_double(quota=quota, calls_per_second=10**6, task_seconds=240, **(double or {}))
        self.double.set_clock(self.now)
        self.cfg = write_json(tmp_path / "config.json", config(
            self.double.base_url, f"sqlite:///{tmp_path / 'state.db'}", cdn={"daily_quota": quota, **(cdn or {})}, **top,
        ))
        monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", TEST_AK)
        monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", TEST_SK)
        self.wiring = Wiring(load_settings(self.cfg), clock=lambda: self.now, sleep=lambda seconds: None)
        monkeypatch.setattr(entry, "_wiring", self.wiring)
        self.context = SimpleNamespace(request_id="r", credentials=None, function=None)
        self.reports: list[dict] = []
        self.urls: set[str] = set()
        self.max_ours = self.max_theirs = 0

    def upload(self, keys: list[str]) -> None:
        report = json.loads(entry.upload(json.dumps(keys_payload(keys)).encode(), self.context))
        assert report["added"] == 2 * len(keys), report
        self.urls |= urls_of(keys)

    def tick(self) -> dict:
        self.now += 60
        self.double.set_clock(self.now)
        report = json.loads(entry.flush(TIMER, self.context))
        self.reports.append(report)
        ours = self.wiring.store().quota_used(PREFETCH, quota_day(self.now))
        theirs = self.double.quota_counters()["preload"]["used"]
        assert ours <= self.quota and theirs <= self.quota, (ours, theirs, self.quota)  # never exceeded
        self.max_ours, self.max_theirs = max(self.max_ours, ours), max(self.max_theirs, theirs)
        return report

    def until_settled(self) -> int:
        """Flush every minute until no URL has work left; returns the flushes it took."""
        for n in range(1, MAX_TICKS + 1):
            self.tick()
            counts = self.wiring.store().counts(self.now)
            if counts.pending == counts.refreshing == counts.pushed == 0:
                return n
        raise AssertionError(f"not settled after {MAX_TICKS} flushes: {counts}")

    def status(self) -> dict:
        return cli_json(self.cfg, "status", "--now", _iso(self.now))

    def total(self, key: str) -> int:
        return sum(r[key] for r in self.reports)

    def check(self) -> dict:
        """Every URL verified; status --json, our quota counter and the double's agree with its task records."""
        records = self.double.task_records()
        tasks, complete = preload_tasks(records), preload_tasks(records, "Complete")
        failed = preload_tasks(records, "Failed")
        status = self.status()
        ours = self.wiring.store().quota_used(PREFETCH, quota_day(self.now))
        theirs = self.double.quota_counters()["preload"]["used"]
        assert set(complete) == self.urls, f"{len(self.urls - set(complete))} URLs never warmed"
        assert max(complete.values()) == 1, "a URL was warmed twice"
        assert status["verified"] == len(complete) == len(self.urls), status
        assert status["unverified"] == 0 and status["dead"] == 0 and status["pending"] == 0, status
        assert status["failed_tasks"] == len(failed), (status, len(failed))
        assert ours == theirs == sum(tasks.values()) == status["quota_used"], (ours, theirs, sum(tasks.values()))
        assert self.total("verified") == len(self.urls)  # flush --json's verified adds up too
        return {"status": status, "tasks": tasks, "complete": complete, "failed": failed, "ours": ours,
                "theirs": theirs}


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _keys(prefix: str) -> list[str]:
    return [f"{prefix}/{i:04d}.css" for i in range(KEYS)]


def test_outage_of_30_minutes_loses_nothing_and_spends_no_quota(tmp_path, make_cdn_double, monkeypatch, measurements):
    started = time.monotonic()
    urls = 2 * KEYS
    replay = Replay(tmp_path, make_cdn_double, monkeypatch, quota=urls)  # a leaked unit would strand a URL
    replay.upload(_keys("outage"))
    replay.double.refuse_connections(True)
    during = [replay.tick() for _ in range(30)]  # 30 minute-apart flushes against a closed port
    replay.double.refuse_connections(False)
    assert all(r["pushed"] == 0 and r["error"] for r in during), during[-1]
    assert replay.max_ours == 0 and replay.max_theirs == 0, "quota spent while nothing could be sent"
    mid = replay.status()
    assert mid["dead"] == 0 and mid["pending"] == urls, mid
    flushes = replay.until_settled()
    result = replay.check()
    assert sum(result["tasks"].values()) == urls  # each URL pushed once: quota used equals URLs pushed
    measurements.record(
        "outage",
        tried=f"{urls} URLs; the CDN endpoint refuses connections for 30 minute-apart flushes (FC flush entry "
              f"point on a simulated clock), then listens again; daily_quota = {urls}, so a leaked unit strands a URL",
        runs=f"{urls} URLs, 30 flushes in the outage + {flushes} after",
        lost=0, duplicates=0, bound="0: each URL exactly one prefetch task",
        figures=f"dead letters 0; deferred at the end of the outage {mid['deferred']}; quota used during the outage "
                f"0; at the end: ours {result['ours']}, the double's {result['theirs']}, URLs pushed "
                f"{len(result['tasks'])}; status --json verified {result['status']['verified']}",
        seconds=time.monotonic() - started,
    )


def test_throttling_storm_spends_quota_only_on_urls_pushed(tmp_path, make_cdn_double, monkeypatch, measurements):
    started = time.monotonic()
    urls = 2 * KEYS
    replay = Replay(tmp_path, make_cdn_double, monkeypatch, quota=urls, double={"seed": 7})
    replay.upload(_keys("storm"))
    replay.double.inject("Throttling", 503, probability=0.7)  # every action, quota and task reads included
    storm = [replay.tick() for _ in range(45)]
    replay.double.reset_faults()
    throttled = sum(1 for r in replay.double.received if r.error == "Throttling")
    flushes = replay.until_settled()
    result = replay.check()
    assert throttled > 20 and any(r["error"] for r in storm)
    assert sum(result["tasks"].values()) == urls and result["ours"] == urls
    measurements.record(
        "throttling-storm",
        tried=f"{urls} URLs; 70% of all API calls answered 503 Throttling for 45 minute-apart flushes, then none; "
              f"daily_quota = {urls}",
        runs=f"{urls} URLs, 45 flushes in the storm + {flushes} after",
        lost=0, duplicates=0, bound="0: each URL exactly one prefetch task",
        figures=f"Throttling answers {throttled}; flushes stopped early {sum(1 for r in storm if r['error'])}; quota "
                f"used: ours {result['ours']}, the double's {result['theirs']}, URLs pushed {len(result['tasks'])}; "
                f"dead 0",
        seconds=time.monotonic() - started,
    )


def test_answers_lost_after_acceptance_push_nothing_twice(tmp_path, make_cdn_double, monkeypatch, measurements):
    started = time.monotonic()
    urls = 2 * KEYS * 3
    replay = Replay(tmp_path, make_cdn_double, monkeypatch, quota=urls, double={"seed": 11},
                    cdn={"max_urls_per_call": 20})  # 60 calls: enough for 10% to be a few
    replay.double.inject(None, drop_after_accept=True, probability=0.10, action="PushObjectCache")
    for part in ("lost-a", "lost-b", "lost-c"):
        replay.upload(_keys(part))
    flushes = replay.until_settled()
    result = replay.check()
    lost_calls = [r for r in replay.double.received if r.fault == "drop_after_accept" and r.accepted]
    assert lost_calls, "no answer was lost: the scenario did not happen"
    dups = sum(n - 1 for n in result["tasks"].values())
    assert dups == 0, f"{dups} URLs pushed twice"
    assert replay.total("resolved") >= sum(len(r.urls) for r in lost_calls)
    measurements.record(
        "lost-answers",
        tried=f"{urls} URLs in calls of 20; 10% of PushObjectCache calls accepted, then the connection closed "
              "without an answer",
        runs=f"{urls} URLs, {flushes} flushes",
        lost=0, duplicates=dups, bound="0: a lost answer is settled by DescribeRefreshTasks, never by pushing again",
        figures=f"answers lost {len(lost_calls)} calls ({sum(len(r.urls) for r in lost_calls)} URLs); flush --json "
                f"resolved {replay.total('resolved')}, verified {replay.total('verified')}; preload tasks per URL: "
                f"{dict(Counter(result['tasks'].values()))}; quota used ours {result['ours']} = the double's "
                f"{result['theirs']}",
        seconds=time.monotonic() - started,
    )


def test_failed_prefetch_tasks_are_pushed_again_and_verified(tmp_path, make_cdn_double, monkeypatch, measurements):
    started = time.monotonic()
    urls = 2 * KEYS
    replay = Replay(tmp_path, make_cdn_double, monkeypatch, quota=2 * urls, double={"seed": 5})
    replay.double.fail_tasks(fraction=0.10, kind="preload", reason="origin timeout")
    replay.upload(_keys("failing"))
    flushes = replay.until_settled()
    result = replay.check()
    failed = result["failed"]
    assert len(failed) >= urls // 20, "hardly any task failed: the scenario did not happen"
    for url in failed:  # each one pushed again, until a task completed
        assert result["tasks"][url] == failed[url] + 1 and result["complete"][url] == 1, url
    assert result["status"]["failed_tasks"] == len(failed)
    measurements.record(
        "failed-tasks",
        tried=f"{urls} URLs; 10% of prefetch tasks (seeded) end Failed ('origin timeout'), re-pushes included",
        runs=f"{urls} URLs, {flushes} flushes",
        lost=0, duplicates=0, bound="0 Complete twice; a Failed task is pushed again (that is the point)",
        figures=f"URLs with a failed task {len(failed)} (failed tasks {sum(failed.values())}); status --json: "
                f"verified {result['status']['verified']}, failed_tasks {result['status']['failed_tasks']}, "
                f"unverified {result['status']['unverified']}; quota used ours {result['ours']} = the double's "
                f"{result['theirs']} = prefetch tasks {sum(result['tasks'].values())}",
        seconds=time.monotonic() - started,
    )
