"""Upload events per second through the FC upload entry point, one event per invocation, on a real store.

Each run is a fresh child process (a fresh FC instance): it builds the payloads, calls
`handler.entry.upload` once to start the instance (settings, store), then times every
following invocation with perf_counter. Runs on SQLite in a temporary directory, and on
the DynamoDB adapter against dynalite when both are there.

    python -m bench.ingest --worker N   # the child: prints one JSON line
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import rig
from .stats import median, percentile


@dataclass
class Ingest:
    store: str
    events: int  # timed invocations per run
    runs: int
    events_per_second: float  # median over runs
    p50_ms: float  # over every timed invocation of every run
    p99_ms: float
    first_ms: float  # median first invocation: settings and store opened
    added_per_run: int

    def as_dict(self) -> dict:
        return asdict(self)


class Unavailable(Exception):
    """The store for this row cannot run here; the message says why."""


def run_sqlite(events: int, runs: int) -> Ingest:
    results = []
    for number in range(runs):
        with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
            store = f"sqlite:///{Path(tmp) / 'state.db'}"
            results.append(_child(rig.config(store), events))
    return _summary("sqlite", events, results)


def dynamodb_adapter_missing() -> str | None:
    """Why the DynamoDB row cannot run, or None."""
    if importlib.util.find_spec("handler.stores.dynamodb") is None:
        return "adapter missing"
    if importlib.util.find_spec("boto3") is None:
        return "boto3 missing"
    return None


def run_dynamodb(events: int, runs: int) -> Ingest:
    from handler.local.dynalite import Dynalite, EmulatorMissing

    why = dynamodb_adapter_missing()
    if why:
        raise Unavailable(why)
    results = []
    try:
        with Dynalite() as endpoint:
            for number in range(runs):
                store = f"dynamodb://bench-ingest-{number}?region=us-east-1&endpoint_url={endpoint}"
                results.append(_child(rig.config(store), events, create_schema=True))
    except EmulatorMissing as exc:
        raise Unavailable(f"emulator missing: {exc}") from None
    return _summary("dynamodb", events, results)


def _child(config: dict, events: int, *, create_schema: bool = False) -> dict:
    env = rig.child_env(
        config, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_EC2_METADATA_DISABLED="true",
    )
    args = [rig.PYTHON, "-m", "bench.ingest", "--worker", str(events)] + (["--create-schema"] if create_schema else [])
    return rig.child_json(args, env, timeout=600)


def _summary(store: str, events: int, results: list[dict]) -> Ingest:
    latencies = [ms for r in results for ms in r["latencies_ms"]]
    return Ingest(
        store=store,
        events=events,
        runs=len(results),
        events_per_second=median([r["events"] / r["seconds"] for r in results]),
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        first_ms=median([r["first_ms"] for r in results]),
        added_per_run=int(median([r["added"] for r in results])),
    )


def worker(events: int, create_schema: bool) -> dict:
    """In the child: one FC instance, `events` timed upload invocations after the first."""
    from .trace import generate, oss_payload

    trace = generate(events + 1, seed=7)
    payloads = [oss_payload(u.key, u.at) for u in trace.uploads]
    if create_schema:
        from handler.settings import load_settings
        from handler.stores import open_store

        schema_store = open_store(load_settings().store)
        schema_store.create_schema()
        schema_store.close()

    from handler import entry

    clock = time.perf_counter
    started = clock()
    added = json.loads(entry.upload(payloads[0]))["added"]
    first_ms = (clock() - started) * 1000.0
    latencies = []
    begin = clock()
    for payload in payloads[1:]:
        t0 = clock()
        report = entry.upload(payload)
        latencies.append((clock() - t0) * 1000.0)
        added += json.loads(report)["added"]
    seconds = clock() - begin
    return {"events": events, "seconds": seconds, "latencies_ms": latencies, "first_ms": first_ms, "added": added}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest")
    parser.add_argument("--worker", type=int, required=True, metavar="EVENTS")
    parser.add_argument("--create-schema", action="store_true")
    args = parser.parse_args(argv)
    print(json.dumps(worker(args.worker, args.create_schema)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
