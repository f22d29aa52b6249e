"""The main job on embedded defaults: no cloud account, nothing to configure.

Starts the local CDN API double, replays every payload in events/ through the FC
upload function, flushes through the FC flush function, and prints what reached
the CDN API. State lives in a fresh SQLite file under .prewarm/, or with --store in a
fresh table of the local Tablestore double (through the real SDK) or of dynalite.
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
    with CdnDouble(DEMO_KEY, DEMO_SECRET, DOMAINS) as double, \
            demo_store(args.store, Path(args.state), DEMO_KEY, DEMO_SECRET) as (store_url, where):
        os.environ.update(
            PREWARM_CONFIG=json.dumps(demo_config(double.base_url, store_url)),
            PREWARM_LOG_LEVEL="WARNING",  # the demo prints its own summary lines
        )
        from .. import entry  # after PREWARM_CONFIG is set: settings are read on first use

        print(f"local CDN API double at {double.base_url} (domains: {', '.join(DOMAINS)})")
        print(f"state: {where}\n")
        for path in sorted(Path(args.events).glob("*.json")):
            payload = path.read_bytes()
            document = json.loads(payload)
            if "triggerTime" in document or "requestContext" in document:
                continue  # the Timer payload drives the flush below; a failure record is for `ingest`
            report = json.loads(entry.upload(payload))
            print(f"upload  {path.name:<26} records {report['records']}, new URLs {report['added']}")

        # The demo's uploads all sit in the open window; flush it too, as flush-on-full does.
        report = json.loads(entry.flush(json.dumps({"all": True}).encode()))
        print(
            f"\nflush   pushed {report['pushed']} URLs in {report['calls']} PushObjectCache call(s); "
            f"deferred {report['deferred']}, dead-lettered {report['dead']}"
        )
        print("\nthe CDN API received:")
        for url in double.pushed_urls:
            print(f"  {url}")
        print(f"\ntask ids: {', '.join(report['task_ids']) or '-'}")
    return 0 if report["pushed"] else 1


if __name__ == "__main__":
    sys.exit(main())
