"""Command line: `python -m handler ingest|flush|status|dead-letters|init-store`. Wiring only."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from .destination import original_event
from .events import parse_event
from .planning import parse_instant, quota_day, quota_grant
from .ports import StoreError
from .prewarm import flush, ingest
from .settings import load_settings
from .wiring import Wiring


class CliError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    # Only our own loggers go to DEBUG: some SDKs log request headers (tokens) on the root logger.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("handler").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        now = _now(args.now)
        settings = load_settings(args.config)
        return args.run(args, Wiring(settings), now)
    except (CliError, StoreError, ValueError) as exc:  # ConfigError, missing credentials, a bad store URL, ...
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _now(text: str | None) -> float:
    if text is None:
        return time.time()
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise CliError(f"--now: {exc}") from None


def _cmd_ingest(args, wiring: Wiring, now: float) -> int:
    totals = {"files": 0, "records": 0, "skipped": 0, "added": 0, "urls": 0, "refused": 0, "unmatched": 0}
    for name in args.files:
        payload = original_event(_read_input(name))  # a failed-invocation record from the MNS queue replays its event
        parsed = parse_event(payload, include_append=wiring.settings.include_append)
        for skipped in parsed.skipped:
            print(f"{name}: record {skipped.index} skipped: {skipped.reason}", file=sys.stderr)
        report = ingest(parsed.records, wiring.settings, wiring.store(), now)
        totals["files"] += 1
        totals["skipped"] += len(parsed.skipped)
        for key in ("records", "added", "urls", "refused", "unmatched"):
            totals[key] += getattr(report, key)
    _print(args, totals, "ingested {records} records from {files} files: {added} URLs newly pending")
    return 0


def _read_input(name: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {name}: {exc.strerror or exc}") from None


def _cmd_flush(args, wiring: Wiring, now: float) -> int:
    report = flush(wiring.store(), wiring.prefetcher(), wiring.settings, now, flush_all=args.all)
    _print(args, report.as_dict(), "pushed {pushed} URLs in {calls} calls; deferred {deferred}, dead-lettered {dead}")
    if not args.json:
        for task_id in report.task_ids:
            print(f"  task {task_id}")
        if report.error:
            print(f"  stopped by: {report.error}")
    return 1 if report.error else 0  # stopped early: nothing lost, but someone should look


def _cmd_status(args, wiring: Wiring, now: float) -> int:
    store = wiring.store()
    counts = store.counts(now)
    day = quota_day(now)
    used = store.quota_used(day)
    limit = wiring.settings.cdn.daily_limit
    status = {
        "quota_day": day,
        "pending": counts.pending,
        "deferred": counts.deferred,
        "pushed": counts.pushed,
        "dead": counts.dead,
        "quota_used": used,
        "quota_limit": limit,
        "quota_remaining": quota_grant(limit, used, limit, None, 0),
        "now": datetime.fromtimestamp(now, timezone.utc).isoformat(),
    }
    _print(
        args,
        status,
        "quota day {quota_day}: {quota_used}/{quota_limit} URLs used, {quota_remaining} left\n"
        "pending {pending} (deferred {deferred}), pushed {pushed}, dead-lettered {dead}",
    )
    return 0


def _cmd_dead_letters(args, wiring: Wiring, now: float) -> int:
    letters = wiring.store().dead_letters(args.limit)
    if args.json:
        print(json.dumps([letter.__dict__ for letter in letters], ensure_ascii=False))
        return 0
    for letter in letters:
        at = datetime.fromtimestamp(letter.at, timezone.utc).isoformat()
        print(f"{at}  {letter.url}  {letter.reason}")
    return 0


def _cmd_init_store(args, wiring: Wiring, now: float) -> int:
    wiring.store().create_schema()
    print(f"store ready: {wiring.settings.store}")
    return 0


def _print(args, data: dict, template: str) -> None:
    print(json.dumps(data, ensure_ascii=False) if args.json else template.format(**data))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m handler", description="Warm Alibaba Cloud CDN from object-storage uploads.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="YAML or JSON config file (default: $PREWARM_CONFIG)")
    common.add_argument("--now", help="ISO 8601 instant that moves the windows and the quota day (replays, tests)")
    common.add_argument("--json", action="store_true", help="print one JSON object")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("ingest", parents=[common], help="run the upload path over event files")
    p.add_argument("files", nargs="+", metavar="FILE", help="event payload files (or FC async-failure records), or - for stdin")
    p.set_defaults(run=_cmd_ingest)

    p = sub.add_parser("flush", parents=[common], help="push closed windows within the quota")
    p.add_argument("--all", action="store_true", help="push open windows too")
    p.set_defaults(run=_cmd_flush)

    p = sub.add_parser("status", parents=[common], help="pending URLs, quota used and left, dead letters")
    p.set_defaults(run=_cmd_status)

    p = sub.add_parser("dead-letters", parents=[common], help="list dead-lettered URLs with their reasons")
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(run=_cmd_dead_letters)

    p = sub.add_parser("init-store", parents=[common], help="create the store's tables")
    p.set_defaults(run=_cmd_init_store)
    return parser


if __name__ == "__main__":
    sys.exit(main())
