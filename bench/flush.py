"""Flush: URLs per second against an API that takes 20 ms a call, and peak memory of a big flush.

Rate: N pending URLs in a closed window of a SQLite store; a child process (the flush
function's instance) times one `prewarm.flush` with `cdn.calls_per_second: 50`, against a
double that adds 20 ms to every call and throttles past 50 calls/s. The ceiling is the
API's 50 calls/s x 100 URLs = 5,000 URLs/s.

Memory: 100,000 pending URLs flushed by `python -m handler flush --all` in a child process,
against an unthrottled double with a quota that never binds; its max RSS comes from the
child's own rusage: RUSAGE_CHILDREN of a small launcher whose only child it is (see rig).

    python -m bench.flush --worker   # the child of the rate run: prints one JSON line
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import rig
from .stats import median

API_CALLS_PER_SECOND = 50
LATENCY_SECONDS = 0.02
CEILING_URLS_PER_SECOND = API_CALLS_PER_SECOND * rig.CAP
NOW = 1_795_399_200.0  # 2026-11-23T02:00:00Z; the pending window is two minutes older


@dataclass
class FlushRate:
    urls: int  # per run
    runs: int
    urls_per_second: float  # median over runs
    ceiling: int
    calls_per_run: int  # PushObjectCache calls the double received, median over runs
    throttled: int  # Throttling answers over all runs
    per_call_ms: float  # wall time per PushObjectCache call, median over runs
    api_ms: float  # the double's own time per call (the injected 20 ms and its work), median
    push_ms: float  # time in the CDN adapter per call: checks, signing, HTTP and the API, median
    pushed_all: bool  # every run pushed every URL, each once

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class FlushMemory:
    urls: int
    max_rss_mb: float
    bare_rss_mb: float  # python -c pass, for reference
    seconds: float
    calls: int
    pushed: int
    duplicates: int

    def as_dict(self) -> dict:
        return asdict(self)


def fill(db: Path, count: int) -> None:
    """`count` pending URLs (both domains) in one window that closed two minutes before NOW."""
    from functools import partial

    from handler import lifecycle as lc
    from handler.planning import window_of
    from handler.stores.sqlite import SqliteStore

    store = SqliteStore(db)
    at = NOW - 120
    try:
        urls = [f"https://{rig.DOMAINS[i % 2]}/static/obj-{i // 2:06d}.{('js', 'css', 'png')[i % 3]}" for i in range(count)]
        for start in range(0, len(urls), 1000):
            store.update({
                url: partial(lc.written, url=url, version=f"E{start + n}", window=window_of(at, 60), now=at, mode=lc.AUTO)
                for n, url in enumerate(urls[start : start + 1000])
            }, at)
    finally:
        store.close()


def run_rate(urls: int, runs: int) -> FlushRate:
    rates: list[float] = []
    calls: list[int] = []
    per_call: list[float] = []
    api: list[float] = []
    push: list[float] = []
    throttled = 0
    pushed_all = True
    for _ in range(runs):
        double = rig.start_double(calls_per_second=API_CALLS_PER_SECOND)
        double.inject(None, None, latency=LATENCY_SECONDS, probability=1.0)
        _time_answers(double, api)
        try:
            with tempfile.TemporaryDirectory(prefix="bench-flush-") as tmp:
                db = Path(tmp) / "state.db"
                fill(db, urls)
                config = rig.config(f"sqlite:///{db}", double.base_url, calls_per_second=API_CALLS_PER_SECOND)
                result = rig.child_json([rig.PYTHON, "-m", "bench.flush", "--worker"], rig.child_env(config), timeout=600)
            rates.append(result["pushed"] / result["seconds"])
            calls.append(double.calls("PushObjectCache"))
            per_call.append(result["seconds"] * 1000.0 / max(1, result["calls"]))
            push.append(result["push_ms"])
            throttled += sum(1 for r in double.received if r.error == "Throttling")
            pushed = list(double.pushed_urls)
            pushed_all = pushed_all and result["pushed"] == urls == len(pushed) == len(set(pushed))
        finally:
            double.stop()
    return FlushRate(
        urls=urls, runs=runs, urls_per_second=median(rates), ceiling=CEILING_URLS_PER_SECOND,
        calls_per_run=int(median(calls)), throttled=throttled, pushed_all=pushed_all,
        per_call_ms=median(per_call), api_ms=median(api) * 1000.0, push_ms=median(push),
    )


def _time_answers(double, seconds: list[float]) -> None:
    """Record how long the double takes to answer each call (what the client cannot go below)."""
    handle = double.handle

    def timed(request):
        started = time.perf_counter()
        try:
            return handle(request)
        finally:
            seconds.append(time.perf_counter() - started)

    double.handle = timed


def run_memory(urls: int) -> FlushMemory:
    status, _, _, bare = rig.run_child_rusage([rig.PYTHON, "-c", "pass"], rig.child_env(), timeout=60)
    double = rig.start_double(calls_per_second=1_000_000)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-flush-memory-") as tmp:
            db = Path(tmp) / "state.db"
            fill(db, urls)
            config_path = Path(tmp) / "config.json"
            config = rig.config(f"sqlite:///{db}", double.base_url, calls_per_second=API_CALLS_PER_SECOND)
            config_path.write_text(json.dumps(config), encoding="utf-8")
            args = [rig.PYTHON, "-m", "handler", "flush", "--all", "--json", "--config", str(config_path),
                    "--now", "2026-11-23T02:00:00Z"]
            started = time.perf_counter()
            status, out, err, usage = rig.run_child_rusage(args, rig.child_env(), timeout=600)
            seconds = time.perf_counter() - started
        if status != 0:
            raise RuntimeError(f"flush of {urls} URLs exited {status}: {err.decode(errors='replace').strip()[-300:]}")
        report = json.loads(out.decode("utf-8").strip().splitlines()[-1])
        pushed = list(double.pushed_urls)
        if report["pushed"] != len(pushed):
            raise RuntimeError(f"the flush reports {report['pushed']} pushed, the double saw {len(pushed)}")
        return FlushMemory(
            urls=urls, max_rss_mb=usage / 1024.0, bare_rss_mb=bare / 1024.0, seconds=seconds,
            calls=double.calls("PushObjectCache"), pushed=len(pushed), duplicates=len(pushed) - len(set(pushed)),
        )
    finally:
        double.stop()


def worker() -> dict:
    """In the child: one flush of every pending URL, timed around `prewarm.flush` alone."""
    from handler.prewarm import flush
    from handler.settings import load_settings
    from handler.wiring import Wiring

    wiring = Wiring(load_settings())
    store, cdn = wiring.store(), wiring.cdn()
    pushes: list[float] = []
    push = cdn.push

    def timed_push(urls):  # one batch per call here: the time the flush spends in the CDN client
        began = time.perf_counter()
        try:
            return push(urls)
        finally:
            pushes.append((time.perf_counter() - began) * 1000.0)

    cdn.push = timed_push
    started = time.perf_counter()
    report = flush(store, cdn, wiring.settings, NOW, flush_all=True)
    seconds = time.perf_counter() - started
    store.close()
    return {"pushed": report.pushed, "calls": report.calls, "seconds": seconds, "error": report.error,
            "push_ms": median(pushes) if pushes else 0.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.flush")
    parser.add_argument("--worker", action="store_true", required=True)
    parser.parse_args(argv)
    print(json.dumps(worker()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
