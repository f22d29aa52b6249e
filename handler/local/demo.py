"""The main job on embedded defaults: no cloud account, nothing to configure.

Starts the local CDN API double (an origin, an edge cache, tasks that take minutes) and plays
an object's whole life through the FC functions on a simulated clock: every upload in events/,
then an overwrite, then deletes, with the flush function run as its Timer would run it. Ends by
printing the CDN's cache beside the origin. State lives in a fresh SQLite file under .prewarm/,
or with --store in a fresh table of the local Tablestore double (through the real SDK) or of dynalite.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from .cdn_double import CdnDouble
from .demo_stores import STORES, demo_store

ROOT = Path(__file__).resolve().parents[2]
DEMO_KEY, DEMO_SECRET = "demo-access-key", "demo-secret-never-printed"
DOMAINS = ["cdn.example.com", "img.example.com"]
START = 1_795_449_600.0  # 2026-11-23T16:00:00Z, 00:00 UTC+8: a quota day begins
OVERWRITTEN = "oss-put.json"  # the object a second upload replaces
DELETES = "oss-delete-batch.json"  # removes two objects the uploads created


def demo_config(endpoint: str, store: str) -> dict:
    return {
        "window_seconds": 60,
        "store": store,
        "cdn": {"endpoint": endpoint, "max_urls_per_call": 100, "daily_quota": 1000},
        "rules": [
            {"bucket": "my-bucket", "domains": ["cdn.example.com"]},
            {"bucket": "my-s3-bucket", "domains": ["img.example.com"]},
        ],
    }


class Replay:
    """The FC functions and the double on one simulated clock; the origin follows every upload and delete."""

    def __init__(self, double: CdnDouble) -> None:
        from .. import entry
        from ..settings import load_settings
        from ..wiring import Wiring

        self.now = START
        self.double = double
        self.entry = entry
        self.settings = load_settings()
        entry.use(Wiring(self.settings, clock=lambda: self.now, sleep=lambda seconds: None))
        double.set_open_origin(False)  # only what the demo uploads exists
        double.set_clock(START)

    def wait(self, seconds: float) -> None:
        self.now += seconds
        self.double.set_clock(self.now)

    def send(self, name: str, payload: bytes) -> dict:
        from ..events import ObjectRemoved, parse_event
        from ..urls import urls_for

        for record in parse_event(payload).records:
            for url in urls_for(record, self.settings.rules).urls:
                if isinstance(record, ObjectRemoved):
                    self.double.delete_origin(url)
                else:
                    self.double.set_origin(url, record.version or "v1")
        report = json.loads(self.entry.upload(payload))
        print(f"  upload {name:<28} new URLs {report['added']}, to purge {report['purges']},"
              f" cancelled {report['cancelled']}")
        return report

    def flush(self, why: str) -> dict:
        report = json.loads(self.entry.flush(json.dumps({"triggerTime": "", "triggerName": "timer"}).encode()))
        print(f"  flush  {why:<28} pushed {report['pushed']}, refreshed {report['refreshed']},"
              f" verified {report['verified']}; deferred {report['deferred']}, dead {report['dead']}")
        return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handler.local.demo", description=__doc__)
    parser.add_argument("--events", default=str(ROOT / "events"), help="folder of event payloads to replay")
    parser.add_argument("--state", default=str(ROOT / ".prewarm" / "demo.db"), help="SQLite file (recreated)")
    parser.add_argument("--store", choices=STORES, default="sqlite",
                        help="where the state lives: a SQLite file, dynalite, or the local Tablestore double")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="        %(message)s")

    # One key for both doubles, in the variables every adapter reads (handler.credentials).
    os.environ.update(ALIBABA_CLOUD_ACCESS_KEY_ID=DEMO_KEY, ALIBABA_CLOUD_ACCESS_KEY_SECRET=DEMO_SECRET)
    os.environ.pop("ALIBABA_CLOUD_SECURITY_TOKEN", None)
    events = Path(args.events)
    with CdnDouble(DEMO_KEY, DEMO_SECRET, DOMAINS) as double, \
            demo_store(args.store, Path(args.state), DEMO_KEY, DEMO_SECRET) as (store_url, where):
        os.environ.update(
            PREWARM_CONFIG=json.dumps(demo_config(double.base_url, store_url)),
            PREWARM_LOG_LEVEL="WARNING",  # the demo prints its own summary lines
        )
        replay = Replay(double)
        print(f"local CDN API double at {double.base_url} (domains: {', '.join(DOMAINS)})")
        print(f"state: {where}; simulated time from 2026-11-24 00:00 UTC+8\n")

        print("1. uploads: every event in events/, then the Timer flushes as the minutes pass")
        for path in sorted(events.glob("*.json")):
            document = json.loads(path.read_bytes())
            if "triggerTime" in document or "requestContext" in document or "delete" in path.name:
                continue  # the Timer payload, a failure record for `ingest`, and the deletes of act 3
            replay.send(path.name, path.read_bytes())
        replay.wait(61)
        replay.flush("window closed")
        replay.wait(300)
        replay.flush("prefetch tasks done")

        print("\n2. an overwrite: a new version of the same key; refreshed, and prefetched once the refresh is done")
        overwrite = json.loads((events / OVERWRITTEN).read_bytes())
        overwrite["events"][0]["oss"]["object"]["eTag"] = "5D41402ABC4B2A76B9719D911017C592"
        replay.wait(3600)
        replay.send(f"{OVERWRITTEN} (new bytes)", json.dumps(overwrite).encode())
        replay.wait(61)
        replay.flush("window closed")
        replay.wait(360)
        replay.flush("refresh done")
        replay.wait(300)
        replay.flush("prefetch task done")

        print("\n3. deletes: purged from the CDN, then forgotten")
        replay.wait(3600)
        replay.send(DELETES, (events / DELETES).read_bytes())
        replay.wait(61)
        replay.flush("window closed")
        replay.wait(360)
        replay.flush("purge done")

        origin, cache = double.origin(), double.cache()
        print("\nthe CDN's edge cache beside the origin:")
        for key in sorted(set(origin) | set(cache)):
            mark = "ok" if origin.get(key) == cache.get(key) else "STALE"
            print(f"  {mark:<5} {key}\n        origin {origin.get(key, '(deleted)')}, cache {cache.get(key, '(empty)')}")
        stale = [key for key in set(origin) | set(cache) if origin.get(key) != cache.get(key)]
        print(f"\n{len(origin)} live objects, {len(stale)} served stale or cold")
    return 0 if not stale else 1


if __name__ == "__main__":
    sys.exit(main())
