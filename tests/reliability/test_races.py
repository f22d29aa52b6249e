"""Scenario: 8 upload processes and 3 flusher processes race on one store; every URL is pushed exactly once."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from handler.planning import next_quota_day_start, quota_day

from eventdata import oss_event

from .support import ROOT, cli, cli_env, config, write_json

EVENTS = 5000
DUPLICATE_SHARE = 0.30
INGESTERS = 8
FLUSHERS = 3
DAILY_QUOTA = 2000  # below the unique URLs: the limit binds while the flushers race
WORKER = Path(__file__).resolve().parent / "workers" / "ingest_worker.py"
DEADLINE_SECONDS = 300  # a bound for a hang, not a timing test: the shared emulators set the pace


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sqlite_store(tmp_path, request) -> tuple[str, dict]:
    return f"sqlite:///{tmp_path / 'state.db'}", {}


def _dynamodb_store(tmp_path, request) -> tuple[str, dict]:
    endpoint = request.getfixturevalue("dynamodb_endpoint")
    table = f"race-{uuid.uuid4().hex[:12]}"
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    return f"dynamodb://{table}?region=us-east-1&endpoint_url={endpoint}", env


def _tablestore_store(tmp_path, request) -> tuple[str, dict]:
    double = request.getfixturevalue("tablestore_double_process")  # its own process: 11 processes call it
    return double.store_url(f"race_{uuid.uuid4().hex[:12]}"), dict(double.env)


STORES = {"sqlite": _sqlite_store, "dynamodb": _dynamodb_store, "tablestore": _tablestore_store}


@pytest.mark.parametrize("store_kind", list(STORES))
def test_racing_uploads_and_flushers_push_each_url_once(store_kind, tmp_path, make_cdn_double, request, measurements):
    started = time.monotonic()
    store_url, store_env = STORES[store_kind](tmp_path, request)
    double = make_cdn_double(quota=10_000_000)
    cfg = write_json(tmp_path / "config.json", config(
        double.base_url, store_url, domains=("cdn.example.com",),
        cdn={"daily_quota": DAILY_QUOTA, "calls_per_second": 15},  # 3 flushers stay under the API's 50 calls/s
    ))
    env = cli_env({"PREWARM_CONFIG": str(cfg), "PYTHONPATH": str(ROOT), **store_env})
    init = cli(cfg, "init-store", env=env)
    assert init.returncode == 0, init.stderr

    # 5,000 upload events, 30% of them repeats of an earlier key, spread over the ingest processes.
    rng = random.Random(8080)
    unique = [f"race/{i:05d}.jpg" for i in range(round(EVENTS * (1 - DUPLICATE_SHARE)))]
    keys = unique + [rng.choice(unique) for _ in range(EVENTS - len(unique))]
    rng.shuffle(keys)
    expected = {f"https://cdn.example.com/{k}" for k in unique}
    for n in range(INGESTERS):
        lines = [json.dumps(oss_event("my-bucket", k)) for k in keys[n::INGESTERS]]
        (tmp_path / f"events-{n}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")

    day1 = time.time()  # the flushers' --now: the real time, so that pushed URLs stay deduplicated
    day2 = next_quota_day_start(day1) + 120
    ingesters = [
        subprocess.Popen([sys.executable, str(WORKER), str(tmp_path / f"events-{n}.jsonl")], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for n in range(INGESTERS)
    ]
    done = threading.Event()
    reports: list[dict] = []
    failures: list[str] = []
    durations: list[float] = []
    lock = threading.Lock()

    def flusher() -> None:
        last_round = False
        while not last_round and time.monotonic() - started < DEADLINE_SECONDS:
            last_round = done.is_set()
            began = time.monotonic()
            try:
                result = cli(cfg, "flush", "--all", "--json", "--now", _iso(day1), env=env, timeout=DEADLINE_SECONDS)
            except subprocess.TimeoutExpired:
                with lock:
                    failures.append(f"a flush ran longer than {DEADLINE_SECONDS} s")
                return
            with lock:
                durations.append(time.monotonic() - began)
                try:
                    assert result.returncode in (0, 1)
                    reports.append(json.loads(result.stdout))
                except (AssertionError, ValueError):
                    failures.append(f"exit {result.returncode}: {result.stdout[-300:]!r} {result.stderr[-500:]!r}")

    threads = [threading.Thread(target=flusher) for _ in range(FLUSHERS)]
    for thread in threads:
        thread.start()
    totals = Counter()
    try:
        for proc in ingesters:
            out, err = proc.communicate(timeout=DEADLINE_SECONDS)
            assert proc.returncode == 0, err.decode(errors="replace")[-1000:]
            totals.update(json.loads(out))
    finally:
        for proc in ingesters:
            if proc.poll() is None:
                proc.kill()
        done.set()
        for thread in threads:
            thread.join(timeout=DEADLINE_SECONDS)
    assert not failures, failures[:3]

    race_pushed = len(double.pushed_urls)
    status1 = json.loads(cli(cfg, "status", "--json", "--now", _iso(day1), env=env).stdout)
    # The next quota day: whatever the first day's limit held back is pushed now.
    final = cli(cfg, "flush", "--all", "--json", "--now", _iso(day2), env=env, timeout=DEADLINE_SECONDS)
    reports.append(json.loads(final.stdout))
    status2 = json.loads(cli(cfg, "status", "--json", "--now", _iso(day2 + 1), env=env).stdout)

    pushed = Counter(double.pushed_urls)
    lost = expected - set(pushed)
    assert totals["invocations"] == EVENTS
    assert totals["added"] == len(expected), "a URL was queued twice, or not at all, under racing uploads"
    assert not lost, f"{len(lost)} URLs never pushed"
    assert set(pushed) == expected
    dups = sum(n - 1 for n in pushed.values())
    assert dups == 0, f"{dups} URLs pushed more than once: {[u for u, n in pushed.items() if n > 1][:3]}"
    per_day = Counter()
    for report in reports:
        per_day[report["quota_day"]] += report["pushed"]
    assert per_day[quota_day(day1)] <= DAILY_QUOTA and per_day[quota_day(day2)] <= DAILY_QUOTA, per_day
    assert race_pushed <= DAILY_QUOTA and status1["quota_used"] <= DAILY_QUOTA
    assert race_pushed == DAILY_QUOTA  # the limit really bound during the race
    assert status2["pending"] == 0 and status2["dead"] == 0

    measurements.record(
        f"races-{store_kind}",
        tried=f"{INGESTERS} processes calling handler.entry.upload for {EVENTS} events ({DUPLICATE_SHARE:.0%} repeats) "
              f"while {FLUSHERS} processes ran `flush --all` in a loop; daily_quota={DAILY_QUOTA}; then the next day",
        runs=f"{EVENTS} events, {len(expected)} unique URLs, {len(reports)} flushes",
        lost=len(lost),
        duplicates=dups,
        bound="0: each URL exactly once",
        figures=f"added by uploads {totals['added']} (= unique); redeliveries {totals['redeliveries']}; "
                f"pushed per quota day {dict(per_day)}; pushed during the race {race_pushed} <= {DAILY_QUOTA}; "
                f"longest racing flush {max(durations):.1f} s",
        seconds=time.monotonic() - started,
    )
