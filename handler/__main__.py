"""Command line: `python -m handler ingest|flush|status|show|dead-letters|requeue|forget|init-store`. Wiring only."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from .cli_output import api_error_code, finish_stdout, first_line, log_to_stderr, print_result, say
from .destination import original_event
from .events import ObjectWritten, is_timer_event, parse_event
from .explain import explain
from .planning import QUOTA_OFFSET_SECONDS, next_quota_day_start, parse_instant, quota_day, quota_grant
from .ports import PREFETCH, REFRESH, CdnCallFailed, StoreError
from .prewarm import flush, ingest
from .recovery import forget, requeue
from .settings import load_settings
from .urls import urls_for
from .wiring import Wiring

if TYPE_CHECKING:
    from .events import ObjectRecord
    from .ports import AccountQuota
    from .ports import Store
    from .settings import Rule

EXIT_OK = 0
EXIT_FAILED = 1  # an operation failed: a flush stopped by the API, a store that failed mid-way
EXIT_BAD_CONFIG_OR_INPUT = 2  # configuration, credentials, arguments or input files a person must fix

HELP_EPILOG = """\
exit status:
  0  done
  1  an operation failed: a flush stopped by an API error (every URL it could
     not push stays pending), or the store failed mid-way
  2  bad configuration, credentials, arguments or input (an input file that
     cannot be read or is no event payload; the good files are still ingested)
  A closed stdout (`... | head`) ends the output quietly; the status stays the command's own.

environment:
  PREWARM_CONFIG                   config file (YAML/JSON) or inline JSON, when --config is not given
  PREWARM_STORE                    store URL; overrides the config's `store`
  PREWARM_LOG_LEVEL                log level of the Function Compute handlers (the CLI: -v)
  ALIBABA_CLOUD_ACCESS_KEY_ID      access key for the CDN API (and a Tablestore store)
  ALIBABA_CLOUD_ACCESS_KEY_SECRET  its secret
  ALIBABA_CLOUD_SECURITY_TOKEN     STS token, with temporary keys
"""


class CliError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


@dataclass
class Outcome:
    """What a command ends with: its exit status, and the errors to say on stderr, one line each."""

    status: int = EXIT_OK
    errors: list[str] = field(default_factory=list)
    api_error_code: str | None = None  # the API error among them, said once: log records repeating it are left out


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    held_logs = log_to_stderr(args.verbose)
    outcome = Outcome(EXIT_FAILED)  # until the command says otherwise
    try:
        now = _now(args.now)
        settings = load_settings(args.config)
        # With --now, the adapters' clock (ambiguous calls, task searches) is that instant too.
        wiring = Wiring(settings) if args.now is None else Wiring(settings, clock=lambda: now)
        outcome = args.run(args, wiring, now)
    except (CliError, ValueError) as exc:  # ConfigError, missing credentials, a bad store URL, ...
        outcome = Outcome(EXIT_BAD_CONFIG_OR_INPUT, [str(exc)])
    except StoreError as exc:  # opening the store is configuration (see _open_store); this failed mid-way
        outcome = Outcome(EXIT_FAILED, [str(exc)])
    except KeyboardInterrupt:
        outcome = Outcome(130)
    finally:
        if held_logs is not None:
            held_logs.write_out(leaving_out=outcome.api_error_code)
    for error in outcome.errors:
        print(f"error: {first_line(error)}", file=sys.stderr)
    finish_stdout()
    return outcome.status


def _now(text: str | None) -> float:
    if text is None:
        return time.time()
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise CliError(f"--now: {exc}") from None


# --- commands ---


def _cmd_ingest(args, wiring: Wiring, now: float) -> Outcome:
    totals = {"files": 0, "bad_files": 0, "records": 0, "skipped": 0, "added": 0, "purges": 0, "cancelled": 0,
              "urls": 0, "refused": 0, "unmatched": 0}
    bad_files: list[str] = []
    unruled_buckets: set[str] = set()
    for name in args.files:
        try:
            records, skipped = _upload_records(name, wiring.settings.include_append)
        except CliError as exc:
            bad_files.append(str(exc))
            continue
        report = ingest(records, wiring.settings, _open_store(wiring), now)
        unruled_buckets.update(_buckets_without_rule(records, wiring.settings.rules))
        totals["files"] += 1
        totals["skipped"] += skipped
        for key in ("records", "added", "purges", "cancelled", "urls", "refused", "unmatched"):
            totals[key] += getattr(report, key)
    totals["bad_files"] = len(bad_files)
    _say_ingest_totals(args, totals, sorted(unruled_buckets))
    return Outcome(EXIT_BAD_CONFIG_OR_INPUT if bad_files else EXIT_OK, bad_files)


def _upload_records(name: str, include_append: bool) -> tuple[list["ObjectRecord"], int]:
    """The object records of one file and how many of its records were skipped (noted on stderr).

    A file with no readable payload (not UTF-8, not JSON, no event structure) is bad input:
    CliError, and the caller goes on with the other files. A Timer event is well-formed, and skipped.
    """
    payload = original_event(_read_input(name))  # a failed-invocation record from the MNS queue replays its event
    parsed = parse_event(payload, include_append=include_append)
    for skipped in parsed.skipped:
        if skipped.index is None and not is_timer_event(payload):  # the payload as a whole is unreadable
            raise CliError(f"{name}: not ingested: {first_line(skipped.reason)}")
        where = "" if skipped.index is None else f" record {skipped.index}"
        print(f"{name}:{where} skipped: {first_line(skipped.reason)}", file=sys.stderr)
    return parsed.records, len(parsed.skipped)


def _read_input(name: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {name}: {exc.strerror or exc}") from None


def _buckets_without_rule(records: Sequence["ObjectRecord"], rules: Sequence["Rule"]) -> set[str]:
    ruled = {rule.bucket for rule in rules}
    return {record.bucket for record in records if record.bucket not in ruled}


def _say_ingest_totals(args, totals: dict, unruled_buckets: list[str]) -> None:
    if args.json:
        say(json.dumps(totals, ensure_ascii=False))
        return
    line = "ingested {records} records from {files} files: {added} URLs newly pending".format(**totals)
    if totals["purges"] or totals["cancelled"]:
        line += f"; deletes: {totals['purges']} URLs to purge, {totals['cancelled']} prefetches cancelled"
    if totals["unmatched"]:
        line += f"; {totals['unmatched']} records matched no rule"
    if totals["bad_files"]:
        line += f"; {totals['bad_files']} files not ingested"
    say(line)
    for bucket in unruled_buckets:
        say(f"  no rule for bucket {bucket!r}: its uploads are ignored")


def _cmd_flush(args, wiring: Wiring, now: float) -> Outcome:
    report = flush(_open_store(wiring), wiring.cdn(), wiring.settings, now, flush_all=args.all)
    print_result(
        args, report.as_dict(),
        "pushed {pushed} URLs in {calls} calls, refreshed {refreshed}, verified {verified},"
        " resolved {resolved} lost answers;"
        " deferred {deferred}, dead-lettered {dead}",
    )
    if not args.json:
        for task_id in report.task_ids:
            say(f"  task {task_id}")
    if report.error:  # stopped early: nothing lost, but someone should look
        return Outcome(EXIT_FAILED, [f"flush stopped, unpushed URLs stay pending: {report.error}"],
                       api_error_code=api_error_code(report.error))
    return Outcome(EXIT_OK)


def _cmd_status(args, wiring: Wiring, now: float) -> Outcome:
    store = _open_store(wiring)
    counts = store.counts(now)
    settings, cdn = wiring.settings, wiring.settings.cdn
    day = quota_day(now)
    used, refresh_used = store.quota_used(PREFETCH, day), store.quota_used(REFRESH, day)
    account, account_error = _account_quota(args, wiring)
    reset = next_quota_day_start(now)
    waiting = counts.pending + counts.refreshing
    oldest = counts.oldest_pending_window
    status = {
        "quota_day": day,
        "pending": counts.pending,
        "deferred": counts.deferred,
        "refreshing": counts.refreshing,
        "pushed": counts.pushed,
        "verified": counts.verified,
        "unverified": counts.unverified,
        "dead": counts.dead,
        "failed_tasks": counts.failed_tasks,
        "deferred_reasons": dict(counts.deferred_reasons),
        "quota_used": used,
        "quota_limit": cdn.daily_limit,
        "quota_remaining": quota_grant(cdn.daily_limit, used, cdn.daily_limit, None, 0),
        "refresh_quota_used": refresh_used,
        "refresh_quota_limit": cdn.daily_refresh_quota,
        "refresh_quota_remaining": max(0, cdn.daily_refresh_quota - refresh_used),
        "account_preload_remaining": account.preload_remain if account else None,
        "account_refresh_remaining": account.refresh_remain if account else None,
        "next_reset": _iso(reset),
        "next_reset_utc8": datetime.fromtimestamp(reset, timezone(timedelta(seconds=QUOTA_OFFSET_SECONDS))).isoformat(),
        "oldest_pending_seconds": None if oldest is None else max(0, int(now - oldest * settings.window_seconds)),
        "backlog_days": round(waiting / cdn.daily_limit, 1),
        "last_tasks_at": _iso(counts.last_task_at) if counts.last_task_at else None,
        "last_task_ids": list(counts.last_task_ids),
        "now": _iso(now),
    }
    if args.json:
        say(json.dumps(status, ensure_ascii=False))
    else:
        _say_status(status, account_error)
    return Outcome(EXIT_OK)


def _account_quota(args, wiring: Wiring) -> tuple["AccountQuota | None", str | None]:
    """The account's own remaining quota (DescribeRefreshQuota), unless --offline; None and why when unreadable."""
    if args.offline:
        return None, "not asked (--offline)"
    try:
        return wiring.cdn().account_quota(), None
    except CdnCallFailed as exc:
        return None, f"unreadable: {first_line(str(exc))}"
    except ValueError as exc:  # no credentials
        return None, f"unreadable: {first_line(str(exc))}"


def _say_status(status: dict, account_error: str | None) -> None:
    s = status
    say(f"quota day {s['quota_day']} (UTC+8), next reset {s['next_reset_utc8']} = {s['next_reset']}")
    say(f"  prefetch: {s['quota_used']}/{s['quota_limit']} used by us, {s['quota_remaining']} left; "
         f"account: {_or(s['account_preload_remaining'], account_error)} left")
    say(f"  refresh:  {s['refresh_quota_used']}/{s['refresh_quota_limit']} used by us, "
         f"{s['refresh_quota_remaining']} left; account: {_or(s['account_refresh_remaining'], account_error)} left")
    say(f"pending {s['pending']} (deferred {s['deferred']}), refreshing {s['refreshing']}, pushed {s['pushed']}, "
         f"verified {s['verified']}, unverified {s['unverified']}, dead-lettered {s['dead']}, "
         f"failed tasks {s['failed_tasks']}")
    if s["oldest_pending_seconds"] is not None:
        say(f"  oldest waiting URL: {s['oldest_pending_seconds']} s; backlog: {s['backlog_days']} days at the daily limit")
    for reason, count in s["deferred_reasons"].items():
        say(f"  deferred {count}: {reason}")
    if s["last_tasks_at"]:
        say(f"last tasks submitted {s['last_tasks_at']}: {', '.join(s['last_task_ids'])}")


def _or(value: object, why: str | None) -> str:
    return str(value) if value is not None else (why or "unknown")


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat()


def _cmd_backfill(args, wiring: Wiring, now: float) -> Outcome:
    from . import backfill as bf

    settings = wiring.settings
    since = _since(args.since)
    opened = contextlib.ExitStack()
    if args.keys:
        try:
            lines = opened.enter_context(open(args.keys, encoding="utf-8"))
        except OSError as exc:
            raise CliError(f"cannot read {args.keys}: {exc.strerror or exc}") from None
        objects = bf.keys_from_file(lines, args.bucket)
    elif args.source == "s3":
        objects = bf.s3_objects(args.bucket, args.prefix, since, endpoint_url=args.endpoint, region=args.region)
    else:
        if not args.endpoint:
            raise CliError("backfill from OSS needs --endpoint https://oss-REGION.aliyuncs.com (or --keys FILE)")
        from .wiring import resolve

        objects = bf.oss_objects(args.bucket, args.prefix, since, endpoint=args.endpoint, credentials=resolve())
    progress = _progress_line if sys.stderr.isatty() and not args.json else None
    try:
        with opened:
            report = bf.backfill(objects, settings, _open_store(wiring), now, dry_run=args.dry_run, progress=progress)
    except bf.MissingSdk as exc:
        raise CliError(str(exc)) from None
    except UnicodeDecodeError as exc:
        raise CliError(f"{args.keys}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if progress is not None:
        print(file=sys.stderr)
    verb = "would queue" if args.dry_run else "queued"
    print_result(args, {**report.as_dict(), "dry_run": args.dry_run},
           f"listed {{listed}} objects ({{urls}} URLs): {verb} {{queued}}, {{known}} already known;"
           f" about {{days}} days at the backfill share of the daily quota")
    return Outcome(EXIT_OK)


def _since(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_instant(text if "T" in text else f"{text}T00:00:00+08:00")
    except ValueError as exc:
        raise CliError(f"--since: {exc}") from None


def _progress_line(report) -> None:
    print(f"\rlisted {report.listed} objects, {report.queued} URLs queued", end="", file=sys.stderr, flush=True)


def _cmd_show(args, wiring: Wiring, now: float) -> Outcome:
    settings = wiring.settings
    urls: list[str] = []
    cannot: dict[str, str] = {}  # URL (or key) -> why nothing is warmed for it
    if args.bucket is None:
        urls = list(args.items)
    for key in args.items if args.bucket is not None else ():
        mapped = urls_for(ObjectWritten(args.bucket, key, "Show", "cli"), settings.rules)
        urls += mapped.urls
        cannot.update(mapped.refused)
        if not mapped.urls and not mapped.refused:
            cannot[key] = f"no rule matches bucket {args.bucket!r} key {key!r}"
    states = _open_store(wiring).states(urls) if urls else {}
    shown = [explain(url, states.get(url), now, settings.window_seconds) for url in dict.fromkeys(urls)]
    shown += [{"url": item, "phase": None, "next": f"not warmed: {why}"} for item, why in cannot.items()]
    if args.json:
        say(json.dumps(shown, ensure_ascii=False))
        return Outcome(EXIT_OK)
    for facts in shown:
        versions = "".join(f"  {label} {facts[name]}" for name, label in (("version", "version"), ("pushed_version", "pushed"))
                           if facts.get(name) is not None)
        say(f"{facts['url']}  {facts['phase'] or 'unknown'}{versions}")
        say(f"  {facts['next']}")
    return Outcome(EXIT_OK)


def _cmd_dead_letters(args, wiring: Wiring, now: float) -> Outcome:
    letters = _open_store(wiring).dead_letters(args.limit)
    if args.json:
        say(json.dumps([letter._asdict() for letter in letters], ensure_ascii=False))
        return Outcome(EXIT_OK)
    for letter in letters:
        at = datetime.fromtimestamp(letter.at, timezone.utc).isoformat()
        say(f"{at}  {letter.url}  {first_line(letter.reason)}")
    return Outcome(EXIT_OK)


def _cmd_requeue(args, wiring: Wiring, now: float) -> Outcome:
    if args.all and (args.code is not None or args.url_glob is not None):
        raise CliError("requeue: --all takes every dead letter; leave out --code and --url-glob, or --all")
    if not args.all and args.code is None and args.url_glob is None:
        raise CliError("requeue: say which dead letters: --code CODE, --url-glob PATTERN, or --all")
    report = requeue(_open_store(wiring), now, mode=wiring.settings.refresh_before_prefetch, code=args.code,
                     url_glob=args.url_glob, everything=args.all)
    print_result(args, report.as_dict(), "requeued {requeued} dead-lettered URLs of {matched} matched; the next flush takes them")
    return Outcome(EXIT_OK)


def _cmd_forget(args, wiring: Wiring, now: float) -> Outcome:
    report = forget(_open_store(wiring), args.urls, now)
    print_result(args, report.as_dict(),
           "forgot {forgotten} URLs ({unknown} unknown, {busy} held by a running flush); their next upload warms them")
    if report.busy:
        return Outcome(EXIT_FAILED, [f"{report.busy} URLs are held by a running flush: run forget again after it"])
    return Outcome(EXIT_OK)


def _cmd_init_store(args, wiring: Wiring, now: float) -> Outcome:
    _open_store(wiring).create_schema()
    print_result(args, {"store": wiring.settings.store, "ready": True}, "store ready: {store}")
    return Outcome(EXIT_OK)


def _open_store(wiring: Wiring) -> "Store":
    """The configured store; one that cannot be opened (a path that cannot be written, ...) is configuration."""
    try:
        return wiring.store()
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        raise CliError(f"cannot open store {wiring.settings.store}: {exc.strerror or exc}{where}") from None
    except StoreError as exc:
        raise CliError(first_line(str(exc))) from None


# --- arguments ---


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of 1 or more, not {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, parents=[common], help=summary, description=summary, epilog=HELP_EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    parser = argparse.ArgumentParser(
        prog="python -m handler", description="Warm Alibaba Cloud CDN from object-storage uploads.",
        epilog=HELP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="YAML or JSON config file (default: $PREWARM_CONFIG)")
    common.add_argument("--now", help="ISO 8601 instant that moves the windows and the quota day (replays, tests)")
    common.add_argument("--json", action="store_true", help="print one JSON value")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr, messages in full")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = command("ingest", "run the upload path over event files")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="event payload files (or FC async-failure records), or - for stdin")
    p.set_defaults(run=_cmd_ingest)

    p = command("flush", "push closed windows within the quota")
    p.add_argument("--all", action="store_true", help="push open windows too")
    p.set_defaults(run=_cmd_flush)

    p = command("status", "what is pending, deferred (and why), refreshing, pushed, verified, dead; quota used and left")
    p.add_argument("--offline", action="store_true", help="do not ask the CDN API for the account's remaining quota")
    p.set_defaults(run=_cmd_status)

    p = command("backfill", "queue the objects a bucket already holds, behind live uploads (backfill_share)")
    p.add_argument("--bucket", required=True, help="the bucket; its rules map keys to URLs as for uploads")
    p.add_argument("--prefix", default="", help="only keys under this prefix")
    p.add_argument("--since", metavar="DATE", help="only objects modified at or after DATE (YYYY-MM-DD in UTC+8, or ISO 8601)")
    p.add_argument("--source", choices=("oss", "s3"), default="oss", help="list an OSS bucket (oss2) or an S3 bucket (boto3)")
    p.add_argument("--endpoint", metavar="URL", help="OSS endpoint (required for oss), or an S3 endpoint URL")
    p.add_argument("--region", help="S3 region")
    p.add_argument("--keys", metavar="FILE", help="read object keys from FILE, one per line, instead of listing")
    p.add_argument("--dry-run", action="store_true", help="count what would be queued and the days it takes")
    p.set_defaults(run=_cmd_backfill)

    p = command("show", "where URLs stand: phase, versions, task, and what happens next")
    p.add_argument("items", nargs="+", metavar="URL|KEY", help="URLs; with --bucket, object keys mapped by the rules")
    p.add_argument("--bucket", help="the arguments are object keys of this bucket: show the URLs its rules give them")
    p.set_defaults(run=_cmd_show)

    p = command("dead-letters", "list dead-lettered URLs with their reasons, newest first")
    p.add_argument("--limit", type=_positive_int, default=100, metavar="N",
                   help="list at most N dead letters (default: 100)")
    p.set_defaults(run=_cmd_dead_letters)

    p = command("requeue", "put dead-lettered URLs back to pending; prints how many")
    p.add_argument("--code", metavar="CODE", help="only dead letters whose reason carries this API code")
    p.add_argument("--url-glob", metavar="PATTERN", help="only URLs matching this glob, e.g. 'https://cdn.example.com/img/*'")
    p.add_argument("--all", action="store_true", help="every dead letter")
    p.set_defaults(run=_cmd_requeue)

    p = command("forget", "drop URLs' records, so that their next upload warms them as new")
    p.add_argument("urls", nargs="+", metavar="URL", help="URLs as the store keeps them (see dead-letters)")
    p.set_defaults(run=_cmd_forget)

    p = command("init-store", "create the store's tables")
    p.set_defaults(run=_cmd_init_store)
    return parser


if __name__ == "__main__":
    sys.exit(main())
