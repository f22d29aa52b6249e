"""Overwrites and deletes: what a CDN serves after days of changes, three strategies on one seeded trace.

The trace is the acceptance test's (handler/local/change_trace.py): uploads of new objects,
identical re-uploads and redeliveries, overwrites and deletes over simulated days, one CDN
domain. Each strategy replays it against its own CDN API double whose model holds an origin
(set before each event, as the bucket would be), an edge cache and tasks that complete on the
double's clock: prefetch tasks after `PRELOAD_SECONDS`, refresh tasks after `REFRESH_SECONDS`
(the test's figures). A prefetch fills the edge only where it holds nothing; a refresh empties it.

    per_upload    the common template: one PushObjectCache per upload event, nothing else
    fire_both     RefreshObjectCaches, then PushObjectCache at once, for every upload event
    fire_both_slow_prefetch   the same with prefetch tasks taking SLOW_PRELOAD_SECONDS, longer than a refresh:
                  which task ends first decides what "fire both" leaves, so both orders are shown
    project       this project through handler.entry.upload per event and handler.entry.flush every minute

The templates subscribe to ObjectCreated events only, so neither does anything on a delete. Both
are driven with handler.cdn.client.CdnClient, one URL per call, as the templates send them.
The daily quotas never bind here: the figures are what each strategy spends, not what it is refused.
Once the replay ends, the clock runs on until every task has settled; then the edge is compared
with the origin. Everything runs in a child process per strategy (the project's FC instance is a
module-level global):

    python -m bench.staleness --worker STRATEGY EVENTS DAYS   # prints one JSON line
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import rig

STRATEGIES = ("per_upload", "fire_both", "fire_both_slow_prefetch", "project")
SEED = 20261126  # the acceptance test's seed
PRELOAD_SECONDS = 240.0
REFRESH_SECONDS = 300.0
SLOW_PRELOAD_SECONDS = 600.0  # fire_both_slow_prefetch: the refresh completes before the prefetch
TICK_SECONDS = 60.0
SETTLE_DAYS = 3  # the project's backlog may carry over into following quota days


@dataclass
class Outcome:
    strategy: str
    events: int
    trace_days: float  # the span of the trace's events
    uploads: int  # ObjectCreated events (new, repeats, overwrites)
    deletes: int
    live: int  # objects at the origin at the end
    deleted: int  # objects deleted and not written again
    push_calls: int
    refresh_calls: int
    other_calls: dict = field(default_factory=dict)  # action -> calls (quota reads, task checks)
    prefetch_quota: int = 0  # URLs submitted to PushObjectCache (accepted)
    refresh_quota: int = 0  # URLs submitted to RefreshObjectCaches (accepted)
    stale: int = 0  # live objects the edge holds in another version than the origin's
    deleted_cached: int = 0  # deleted objects the edge still holds
    cold: int = 0  # live objects the edge does not hold (the first viewer waits on the origin)
    raced: int = 0  # prefetches submitted while a refresh of the same URL was still running
    failed_prefetches: int = 0  # prefetch tasks that ended Failed (the object was gone at the origin)
    simulated_days: float = 0.0  # from the first event to the last task settled
    seconds: float = 0.0  # wall time of the replay

    @property
    def served_stale(self) -> int:
        return self.stale + self.deleted_cached

    def as_dict(self) -> dict:
        return {**asdict(self), "served_stale": self.served_stale}


def run(events: int, days: float) -> dict[str, dict]:
    """Every strategy on the same trace, each in a fresh child process: strategy -> Outcome.as_dict()."""
    results = {}
    for strategy in STRATEGIES:
        args = [rig.PYTHON, "-m", "bench.staleness", "--worker", strategy, str(events), str(days)]
        results[strategy] = rig.child_json(args, rig.child_env(), timeout=1200)
    return results


# -- in the child -------------------------------------------------------------------------------


class _Sim:
    """The simulated clock shared by the double, the client and (for the project) the FC instance."""

    def __init__(self, double, start: float) -> None:
        self.double = double
        self.now = start

    def __call__(self) -> float:
        return self.now

    def at(self, t: float) -> None:
        self.now = t
        self.double.set_clock(t)


def worker(strategy: str, events: int, days: float) -> dict:
    from handler.local.change_trace import START, make_trace

    ops = make_trace(SEED, events, days=days)
    preload_seconds = SLOW_PRELOAD_SECONDS if strategy == "fire_both_slow_prefetch" else PRELOAD_SECONDS
    double = rig.start_double(
        refresh_quota=rig.HUGE_QUOTA, calls_per_second=10**6, task_seconds=preload_seconds,
        refresh_seconds=REFRESH_SECONDS, task_ids="per_domain", max_skew=None, open_origin=False,
    )
    sim = _Sim(double, START)
    try:
        started = time.perf_counter()
        if strategy == "project":
            _project(ops, double, sim)
        else:
            _template(ops, double, sim, refresh_first=strategy.startswith("fire_both"))
        seconds = time.perf_counter() - started
        return _outcome(strategy, ops, double, sim, seconds, days).as_dict()
    finally:
        double.stop()


def _origin(double, op) -> str:
    from handler.local.change_trace import url_of

    url = url_of(op.key)
    if op.kind == "write":
        double.set_origin(url, op.version)
    else:
        double.delete_origin(url)
    return url


def _template(ops, double, sim: _Sim, *, refresh_first: bool) -> None:
    """One call (or a refresh and a call) per upload event, at the instant of the event; deletes ignored."""
    from handler.cdn.client import CdnClient

    settings = rig.settings(rig.config("sqlite:///:memory:", double.base_url))
    client = CdnClient(rig.credentials(), settings.cdn, sleep=lambda seconds: None, clock=sim)
    try:
        for op in ops:
            sim.at(op.at)
            url = _origin(double, op)
            if op.kind != "write":
                continue
            if refresh_first:
                client.refresh_object_caches([url])
            client.push_object_cache([url])
    finally:
        client.close()
    sim.at(ops[-1].at + max(SLOW_PRELOAD_SECONDS, REFRESH_SECONDS) + 1.0)


def _project(ops, double, sim: _Sim) -> None:
    """The FC entry points on the simulated clock: an upload invocation per event, the timer every minute."""
    from types import SimpleNamespace

    from handler import entry
    from handler.local.change_trace import BUCKET, DOMAIN
    from handler.settings import load_settings
    from handler.wiring import Wiring

    with tempfile.TemporaryDirectory(prefix="bench-staleness-") as tmp:
        config = rig.config(f"sqlite:///{Path(tmp) / 'state.db'}", double.base_url)  # pacing sleeps take no time
        config["rules"] = [{"bucket": BUCKET, "domains": [DOMAIN]}]
        os.environ["PREWARM_CONFIG"] = json.dumps(config)
        wiring = Wiring(load_settings(), clock=sim, sleep=lambda seconds: None)
        entry._wiring = wiring
        context = SimpleNamespace(request_id="bench", credentials=None, function=None)
        timer = json.dumps({"triggerTime": "", "triggerName": "every-minute", "payload": ""}).encode()
        from handler.local.change_trace import payload

        tick = ops[0].at - ops[0].at % TICK_SECONDS + TICK_SECONDS
        for op in ops:
            while tick <= op.at:
                sim.at(tick)
                entry.flush(timer, context)
                tick += TICK_SECONDS
            sim.at(op.at)
            _origin(double, op)
            entry.upload(payload(op), context)
        for _ in range(int(SETTLE_DAYS * 86400 / TICK_SECONDS)):
            sim.at(tick)
            entry.flush(timer, context)
            tick += TICK_SECONDS
            counts = wiring.store().counts(tick)
            if counts.pending == counts.refreshing == counts.pushed == 0:
                break
        wiring.store().close()
        entry._wiring = None
    sim.at(tick + max(PRELOAD_SECONDS, REFRESH_SECONDS) + 1.0)


def _outcome(strategy: str, ops, double, sim: _Sim, seconds: float, trace_days: float) -> Outcome:
    from handler.local.cdn_double_model import object_key
    from handler.local.change_trace import final_state, url_of

    live, deleted = final_state(ops)
    cache = double.cache()
    tasks = double.model.records()
    if any(t["Status"] not in ("Complete", "Failed") for t in tasks):
        raise RuntimeError("tasks still running when the edge was compared with the origin")
    refreshes: dict[str, list[dict]] = {}
    for t in tasks:
        if t["ObjectType"] == "file":
            refreshes.setdefault(object_key(t["ObjectPath"]), []).append(t)
    preloads = [t for t in tasks if t["ObjectType"] == "preload"]
    raced = sum(
        1 for p in preloads
        if any(r["created"] <= p["created"] < r["done_at"] for r in refreshes.get(object_key(p["ObjectPath"]), ()))
    )
    by_action = Counter(r.action for r in double.received if r.accepted)
    held = {key: cache.get(object_key(url_of(key))) for key in live}
    return Outcome(
        strategy=strategy,
        events=len(ops),
        trace_days=trace_days,
        uploads=sum(op.kind == "write" for op in ops),
        deletes=sum(op.kind == "delete" for op in ops),
        live=len(live),
        deleted=len(deleted),
        push_calls=by_action.pop("PushObjectCache", 0),
        refresh_calls=by_action.pop("RefreshObjectCaches", 0),
        other_calls=dict(sorted(by_action.items())),
        prefetch_quota=len(double.pushed_urls),
        refresh_quota=len(double.refreshed_urls),
        stale=sum(1 for key, version in live.items() if held[key] is not None and held[key] != version),
        deleted_cached=sum(1 for key in deleted if object_key(url_of(key)) in cache),
        cold=sum(1 for version in held.values() if version is None),
        raced=raced,
        failed_prefetches=sum(1 for p in preloads if p["Status"] == "Failed"),
        simulated_days=(sim.now - ops[0].at) / 86400.0,
        seconds=seconds,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.staleness")
    parser.add_argument("--worker", nargs=3, required=True, metavar=("STRATEGY", "EVENTS", "DAYS"))
    args = parser.parse_args(argv)
    strategy, events, days = args.worker
    if strategy not in STRATEGIES:
        parser.error(f"strategy must be one of {', '.join(STRATEGIES)}")
    print(json.dumps(worker(strategy, int(events), float(days))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
