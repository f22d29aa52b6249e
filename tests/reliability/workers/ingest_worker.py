"""One FC instance of the upload function: calls handler.entry.upload once per line of an event file.

    python ingest_worker.py EVENTS.jsonl      (config and credentials from the environment)

A store error is raised by the entry point so that FC delivers the event again; this worker
does the same, at most 5 times per event. Prints one JSON line of totals.
"""

import json
import sys

from handler import entry
from handler.ports import StoreError


def main(path: str) -> int:
    totals = {"invocations": 0, "added": 0, "redeliveries": 0}
    with open(path, "rb") as lines:
        for line in lines:
            for attempt in range(5):
                try:
                    report = json.loads(entry.upload(line.rstrip(b"\n")))
                    break
                except StoreError:
                    totals["redeliveries"] += 1
            else:
                raise SystemExit(f"event not ingested after 5 deliveries: {line[:200]!r}")
            totals["invocations"] += 1
            totals["added"] += report["added"]
    print(json.dumps(totals))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
