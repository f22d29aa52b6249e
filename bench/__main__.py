"""python -m bench [--quick] [--json PATH]: every benchmark in one run, printed as one table.

Progress goes to stderr; the table to stdout, and to bench/results/ (ignored by git).
Exit status 1 when a hard invariant breaks (duplicate quota, calls beyond the per-tick
limit and the claim rounds' partial batches, a heavy import on the upload path, a URL not
pushed, a stale or cold object left by this project on the overwrite/delete trace, more
prefetch quota than one push per upload, a write on redelivery); timing targets only show
in the table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from . import coldstart, efficiency, flush, ingest, report, staleness, storecalls
from .rig import ROOT
from .trace import generate

FULL = dict(events=20_000, change_events=5_000, change_days=3.0, ingest_events=2_000, ingest_runs=3,
            dynamodb_events=300, dynamodb_runs=3, cold_runs=21, flush_urls=20_000, flush_runs=3, memory_urls=100_000)
QUICK = dict(events=1_000, change_events=600, change_days=0.5, ingest_events=100, ingest_runs=1,
             dynamodb_events=30, dynamodb_runs=1, cold_runs=3, flush_urls=1_000, flush_runs=1, memory_urls=2_000)


def _step(name: str, fn, *args):
    print(f"bench: {name} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    result = fn(*args)
    print(f"bench: {name} done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return result


def run(quick: bool) -> dict:
    """Every benchmark; the raw results, the rows, the notes, and whether the hard invariants hold."""
    p = QUICK if quick else FULL
    load_before = os.getloadavg()
    started = time.perf_counter()

    trace = generate(p["events"])
    eff = _step("efficiency (ours, one flush, per-upload baseline)", efficiency.run, trace)
    stale = _step("overwrite/delete trace (three strategies)", staleness.run, p["change_events"], p["change_days"])
    calls = [r.as_dict() for r in _step("store requests per upload", storecalls.run)]
    sqlite = _step("ingest on SQLite", ingest.run_sqlite, p["ingest_events"], p["ingest_runs"])
    dynamodb, dynamodb_missing = None, ingest.dynamodb_adapter_missing()
    if dynamodb_missing is None:
        try:
            dynamodb = _step("ingest on DynamoDB (dynalite)", ingest.run_dynamodb, p["dynamodb_events"], p["dynamodb_runs"])
        except ingest.Unavailable as exc:
            dynamodb_missing = str(exc)
    cold = _step("cold start", coldstart.run, p["cold_runs"])
    rate = _step("flush rate at 20 ms per call", flush.run_rate, p["flush_urls"], p["flush_runs"])
    memory = _step("flush memory", flush.run_memory, p["memory_urls"])

    seconds = time.perf_counter() - started
    load_after = os.getloadavg()
    eff_rows, notes = report.efficiency_rows(eff, quick)
    notes += report.staleness_notes(stale) + report.flush_notes(rate)
    rows = (eff_rows + report.staleness_rows(stale) + report.storecalls_rows(calls)
            + report.ingest_rows(sqlite, dynamodb, dynamodb_missing)
            + report.coldstart_rows(cold) + report.flush_rows(rate, memory))
    machine = report.machine()
    invariants = {
        "no duplicate quota": eff.ours_duplicate_quota == 0 and eff.oneshot_duplicate_quota == 0,
        "calls == per-tick limit + claim-round splits (timer)":
            eff.ours_calls == eff.tick_limit_calls + eff.ours_round_splits,
        "calls == limit (one flush)": eff.oneshot_calls == eff.limit_calls,
        "quota == unique URLs": eff.ours_quota == eff.unique_urls == eff.ours_store_quota == eff.oneshot_quota,
        "baseline accepted": eff.baseline_rejected == 0 and eff.baseline_calls == eff.events,
        "no heavy import on the upload path": not cold.heavy_after_import and not cold.heavy_after_upload,
        "flush pushed every URL once": rate.pushed_all and memory.pushed == memory.urls and memory.duplicates == 0,
        "ours ends with no stale or cold object": stale["project"]["served_stale"] == stale["project"]["cold"] == 0,
        "ours spends no more prefetch quota than one push per upload":
            stale["project"]["prefetch_quota"] <= stale["per_upload"]["prefetch_quota"],
        "a redelivery writes nothing (DynamoDB, Tablestore)": all(
            not set(c["redelivery"]) & {"PutItem", "UpdateItem", "DeleteItem", "PutRow", "UpdateRow", "DeleteRow",
                                        "BatchWriteItem", "BatchWriteRow", "TransactWriteItems"}
            for c in calls if not c["missing"]),
    }
    return {
        "mode": "quick" if quick else "full",
        "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": seconds,
        "machine": machine,
        "load": {"before": load_before, "after": load_after},
        "parameters": p,
        "results": {
            "efficiency": eff.as_dict(),
            "staleness": stale,
            "store_calls": calls,
            "ingest_sqlite": sqlite.as_dict(),
            "ingest_dynamodb": dynamodb.as_dict() if dynamodb else None,
            "ingest_dynamodb_missing": dynamodb_missing,
            "coldstart": cold.as_dict(),
            "flush_rate": rate.as_dict(),
            "flush_memory": memory.as_dict(),
        },
        "rows": [asdict(r) for r in rows],
        "notes": notes,
        "invariants": invariants,
    }


def render(data: dict) -> str:
    m = data["machine"]
    header = [
        f"`python -m bench{' --quick' if data['mode'] == 'quick' else ''}` ({data['mode']}, {data['when']}, "
        f"{data['seconds']:.0f} s): {m['cpus']} x {m['cpu']}, Python {m['python']}, {m['system']}; "
        f"load average {data['load']['before'][0]:.1f} before, {data['load']['after'][0]:.1f} after.",
        "Timings are medians of several runs, on loopback against the local CDN API double.",
    ]
    rows = [report.Row(**r) for r in data["rows"]]
    broken = [name for name, ok in data["invariants"].items() if not ok]
    notes = list(data["notes"]) + ([f"BROKEN INVARIANTS: {', '.join(broken)}"] if broken else [])
    table = report.render(rows, notes, header)
    return table + "\n\nOverwrite/delete trace, side by side:\n\n" + report.staleness_table(data["results"]["staleness"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny trace and few repeats (seconds, for tests)")
    parser.add_argument("--json", metavar="PATH", help="also write every raw result as JSON to PATH")
    parser.add_argument("--results", metavar="DIR", default=str(ROOT / "bench" / "results"),
                        help="where the table and the raw results are kept (default: bench/results)")
    args = parser.parse_args(argv)
    data = run(args.quick)
    table = render(data) + "\n\nREADME summary:\n\n" + report.readme(data)
    print(table, flush=True)
    results = Path(args.results)
    try:
        results.mkdir(parents=True, exist_ok=True)
        (results / f"{data['mode']}.md").write_text(table + "\n", encoding="utf-8")
        (results / f"{data['mode']}.json").write_text(json.dumps(data, indent=1), encoding="utf-8")
    except OSError as exc:
        print(f"bench: cannot keep the results in {results}: {exc}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1), encoding="utf-8")
    return 0 if all(data["invariants"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
