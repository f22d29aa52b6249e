"""The table: metric, ours, reference, ratio or target, verdict; plus the machine it ran on."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass

PASS, FAIL, INFO, NA, OVER = "pass", "FAIL", "info", "n/a", "over (see note)"


@dataclass
class Row:
    metric: str
    ours: str
    reference: str
    ratio: str
    verdict: str


def machine() -> dict:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count() or 0,
        "cpu": model,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def n(value: float) -> str:
    return f"{value:,.0f}"


def ms(value: float) -> str:
    return f"{value:,.1f} ms" if value < 100 else f"{value:,.0f} ms"


def ratio(a: float, b: float) -> str:
    return f"{a / b:,.1f}x" if b else "-"


def efficiency_rows(e, quick: bool = False) -> tuple[list[Row], list[str]]:
    over = e.ours_calls - e.limit_calls
    if quick:  # the 50x target is for the full trace: a tiny trace has few uploads per minute to batch
        target, verdict = "target >= 50x on the full trace", INFO
    else:
        target, verdict = "target >= 50x", PASS if e.baseline_calls >= 50 * e.ours_calls else FAIL
    rows = [
        Row(f"PushObjectCache calls, {n(e.events)} uploads in 1 h (ours vs per-upload baseline)",
            n(e.ours_calls), n(e.baseline_calls), f"{ratio(e.baseline_calls, e.ours_calls)} fewer ({target})",
            verdict),
        Row("calls vs the physical limit ceil(unique URLs / 100), 1-minute timer",
            n(e.ours_calls), n(e.limit_calls), f"+{n(over)} ({ratio(e.ours_calls, e.limit_calls)}; target ==)",
            PASS if over == 0 else OVER),
        Row("calls vs the limit with a push every minute (per-tick limit, from the trace)",
            n(e.ours_calls), n(e.tick_limit_calls),
            "target ==" + (f" (+{n(e.ours_round_splits)} from claim rounds, see note)" if e.ours_round_splits else ""),
            PASS if e.ours_calls == e.tick_limit_calls else
            OVER if e.ours_calls == e.tick_limit_calls + e.ours_round_splits else FAIL),
        Row("calls, same trace, one flush at the end",
            n(e.oneshot_calls), n(e.limit_calls), "target ==",
            PASS if e.oneshot_calls == e.limit_calls else FAIL),
        Row("quota used, URLs pushed (ours vs baseline; unique URLs)",
            n(e.ours_quota), f"{n(e.baseline_quota)}; {n(e.unique_urls)} unique",
            f"{ratio(e.baseline_quota, e.ours_quota)} less; ours == unique",
            PASS if e.ours_quota == e.unique_urls == e.ours_store_quota else FAIL),
        Row("duplicate quota (URLs pushed twice)",
            n(e.ours_duplicate_quota), f"{n(e.baseline_duplicate_quota)} (baseline)", "target 0",
            PASS if e.ours_duplicate_quota == 0 and e.oneshot_duplicate_quota == 0 else FAIL),
    ]
    notes = [
        f"Trace: {n(e.events)} uploads over a simulated hour in bursts, 30% re-uploads, 2 CDN domains: "
        f"{n(e.unique_keys)} keys, {n(e.unique_urls)} unique URLs. Baseline: one V2-signed call per event, "
        f"{n(e.baseline_calls - e.baseline_rejected)} accepted by the double in {e.baseline_seconds:.1f} s.",
    ]
    if over:
        notes.append(
            f"Over the limit by {n(over)} calls: the timer flushes every minute, and each flush pushes all closed "
            f"windows (oldest first, batches across windows) but ends with one partial batch; {e.ticks} ticks had "
            f"URLs. That is the price of pushing each URL within about a minute: the per-tick limit is "
            f"{n(e.tick_limit_calls)}, and the same trace flushed once needs exactly {n(e.oneshot_calls)} = the limit."
        )
    if e.ours_round_splits:
        notes.append(
            f"{n(e.ours_round_splits)} call(s) over the per-tick limit: a flush claims at most 1,000 URLs per round, "
            "task checks of earlier pushes included, and sends a round's last partial batch before it claims the "
            "next, so a busy tick can end two rounds on partial batches. Carrying that batch over would close the gap."
        )
    other = ", ".join(f"{n(c)} {a}" for a, c in e.ours_other_by_action.items()) or "none"
    notes.append(f"Ours also made {other} (the account's quota before a flush sends; task checks of what it pushed).")
    return rows, notes


def ingest_rows(sqlite, dynamodb, dynamodb_missing: str | None) -> list[Row]:
    rows = [
        Row("ingest, SQLite: upload events/s through handler.entry.upload (p50 / p99 per event)",
            f"{n(sqlite.events_per_second)}/s", f"p50 {ms(sqlite.p50_ms)}, p99 {ms(sqlite.p99_ms)}",
            f"median of {sqlite.runs} x {n(sqlite.events)} events; first event {ms(sqlite.first_ms)}", INFO),
    ]
    if dynamodb is None:
        rows.append(Row("ingest, DynamoDB (dynalite)", f"n/a ({dynamodb_missing})", "-", "-", NA))
    else:
        rows.append(Row(
            "ingest, DynamoDB (dynalite): upload events/s (p50 / p99 per event)",
            f"{n(dynamodb.events_per_second)}/s", f"p50 {ms(dynamodb.p50_ms)}, p99 {ms(dynamodb.p99_ms)}",
            f"median of {dynamodb.runs} x {n(dynamodb.events)} events; first event {ms(dynamodb.first_ms)}", INFO,
        ))
    return rows


def coldstart_rows(c) -> list[Row]:
    from .coldstart import FIRST_UPLOAD, FLUSH_PATH, OFFICIAL_SDK, TABLESTORE_ADAPTER, UPLOAD_ENTRY

    sdk = c.over_bare_ms[OFFICIAL_SDK]
    entry = c.over_bare_ms[UPLOAD_ENTRY]
    client = c.over_bare_ms[FLUSH_PATH]
    return [
        Row(f"cold start: import {UPLOAD_ENTRY} over bare python (in brackets: -X importtime total)",
            f"{ms(entry)} ({ms(c.importtime_ms[UPLOAD_ENTRY])})",
            f"{ms(sdk)} ({ms(c.importtime_ms[OFFICIAL_SDK])}) import {OFFICIAL_SDK}",
            f"{ratio(sdk, entry)} less; median of {c.runs}; target < 30 ms", PASS if entry < 30.0 else FAIL),
        Row(f"cold start: import {UPLOAD_ENTRY} and handle one upload (SQLite) over bare python",
            ms(c.over_bare_ms[FIRST_UPLOAD]), f"bare python {ms(c.bare_ms)}", f"median of {c.runs}", INFO),
        Row(f"cold start, flush path: import {UPLOAD_ENTRY} and {FLUSH_PATH} over bare python "
            f"(in brackets: -X importtime of {FLUSH_PATH})",
            f"{ms(client)} ({ms(c.importtime_ms[FLUSH_PATH])})", f"{ms(sdk)} official CDN SDK",
            f"{ratio(sdk, client)} less; median of {c.runs}", INFO),
        Row(f"cold start, Tablestore deployments: import {TABLESTORE_ADAPTER} (the adapter and its SDK, as packaged: "
            "without numpy) over bare python, -S", ms(c.tablestore_adapter_ms), f"bare python -S",
            f"median of {c.runs}", INFO),
        Row(f"heavy modules after import {UPLOAD_ENTRY} / after its first upload (SQLite)",
            ", ".join(c.heavy_after_import) or "none", ", ".join(c.heavy_after_upload) or "none",
            "target none (requests, boto3, tablestore, fc2, yaml)",
            PASS if not c.heavy_after_import and not c.heavy_after_upload else FAIL),
    ]


def flush_notes(rate) -> list[str]:
    share = rate.urls_per_second / rate.ceiling
    client = rate.push_ms - rate.api_ms
    loop = rate.per_call_ms - rate.push_ms
    note = (
        f"Flush rate: {rate.per_call_ms:.1f} ms per call = the API {rate.api_ms:.1f} ms (20 ms injected + the "
        f"double's own work) + the CDN client {client:.1f} ms (URL checks, signing, HTTP on both ends) + the store and the "
        f"flush loop {loop:.1f} ms (claim, quota, mark pushed). The flush makes one call at a time, so it "
        f"reaches at most 100 URLs per ({rate.api_ms:.1f} ms + what it adds)"
    )
    if share < 0.8:
        note += "; 80% of the ceiling needs at most 5 ms added per call, or store work overlapped with the call in flight"
    return [note + "."]


def flush_rows(rate, memory) -> list[Row]:
    share = rate.urls_per_second / rate.ceiling
    return [
        Row("flush: URLs/s pushed, 20 ms per API call, calls_per_second 50 "
            f"({rate.per_call_ms:.1f} ms per call, of which the API {rate.api_ms:.1f} ms)",
            f"{n(rate.urls_per_second)}/s", f"{n(rate.ceiling)}/s ceiling (50 calls/s x 100)",
            f"{share:.0%} (target >= 80%)", PASS if share >= 0.8 and rate.pushed_all and not rate.throttled else FAIL),
        Row(f"flush: peak memory (max RSS) of flushing {n(memory.urls)} pending URLs from SQLite",
            f"{memory.max_rss_mb:.1f} MB", f"128 MB smallest FC instance; bare python {memory.bare_rss_mb:.1f} MB",
            f"{memory.max_rss_mb / 128:.0%} of 128 MB (target < 128 MB)",
            PASS if memory.max_rss_mb < 128 and memory.pushed == memory.urls and not memory.duplicates else FAIL),
    ]


def render(rows: list[Row], notes: list[str], header: list[str]) -> str:
    lines = header + ["", "| metric | ours | reference | ratio / target | result |", "|---|---|---|---|---|"]
    lines += [f"| {r.metric} | {r.ours} | {r.reference} | {r.ratio} | {r.verdict} |" for r in rows]
    if notes:
        lines.append("")
        lines += [f"* {note}" for note in notes]
    return "\n".join(lines)


def readme(data: dict) -> str:
    """The short table for the README: the headline figures of one run, with the command and the machine."""
    r, m = data["results"], data["machine"]
    e, sq, dy, c = r["efficiency"], r["ingest_sqlite"], r["ingest_dynamodb"], r["coldstart"]
    rate, mem = r["flush_rate"], r["flush_memory"]
    st = r["staleness"]
    store_calls = "; ".join(
        f"{c['store']} n/a" if c["missing"] else
        f"SQLite {c['upload'].get('transactions', 0)} / {c['redelivery'].get('transactions', 0)} transaction"
        if c["store"] == "sqlite" else
        f"{'DynamoDB' if c['store'] == 'dynamodb' else 'Tablestore'} {c['upload_total']} / {c['redelivery_total']}"
        for c in r["store_calls"]
    )
    dynamo = (f"; DynamoDB (dynalite) {n(dy['events_per_second'])}/s (p99 {ms(dy['p99_ms'])})" if dy
              else f"; DynamoDB n/a ({data['results']['ingest_dynamodb_missing']})")
    lines = [
        "| | this project | reference |",
        "|---|---|---|",
        f"| `PushObjectCache` calls for {n(e['events'])} uploads in an hour (30% re-uploads, 2 CDN domains) "
        f"| {n(e['ours_calls'])} with a flush every minute; {n(e['oneshot_calls'])} flushed at once "
        f"| {n(e['baseline_calls'])} one per upload; limit {n(e['limit_calls'])} |",
        f"| prefetch quota used (URLs) | {n(e['ours_quota'])}, "
        f"{'none' if not e['ours_duplicate_quota'] else n(e['ours_duplicate_quota'])} twice "
        f"| {n(e['baseline_quota'])} one per upload, {n(e['baseline_duplicate_quota'])} of them repeats |",
        f"| upload events/s, one per invocation (p99) | SQLite {n(sq['events_per_second'])}/s "
        f"(p99 {ms(sq['p99_ms'])}){dynamo} | |",
        f"| import of the upload function over bare Python | {ms(c['over_bare_ms']['handler.entry'])}, "
        f"without `requests` or any SDK | {ms(c['over_bare_ms']['alibabacloud_cdn20180510.client'])} for the "
        f"official CDN SDK client |",
        f"| what a Tablestore deployment's first upload adds: the adapter and its SDK, as packaged "
        f"| {ms(c['tablestore_adapter_ms'])} | |",
        f"| flush rate with 20 ms of API latency per call | {n(rate['urls_per_second'])} URLs/s "
        f"({rate['urls_per_second'] / rate['ceiling']:.0%}) | {n(rate['ceiling'])} URLs/s (50 calls/s x 100) |",
        f"| import of the flush path (entry and CDN adapter) over bare Python "
        f"| {ms(c['over_bare_ms']['handler.cdn.pushing'])} "
        f"| {ms(c['over_bare_ms']['alibabacloud_cdn20180510.client'])} for the official CDN SDK client |",
        f"| peak memory flushing {n(mem['urls'])} pending URLs | {mem['max_rss_mb']:.0f} MB "
        f"| 128 MB, the smallest FC instance |",
        f"| objects served stale after {n(st['project']['events'])} uploads, re-uploads, overwrites and deletes "
        f"over {st['project']['trace_days']:g} days (cold in brackets) "
        f"| {n(st['project']['served_stale'])} ({n(st['project']['cold'])}) "
        f"| {n(st['per_upload']['served_stale'])} ({n(st['per_upload']['cold'])}) prefetch per upload; "
        f"{n(st['fire_both']['served_stale'])} ({n(st['fire_both']['cold'])}) or "
        f"{n(st['fire_both_slow_prefetch']['served_stale'])} ({n(st['fire_both_slow_prefetch']['cold'])}) refresh + "
        f"prefetch per upload (prefetch or refresh ends first) |",
        f"| prefetch + refresh quota on that trace (URLs) "
        f"| {n(st['project']['prefetch_quota'])} + {n(st['project']['refresh_quota'])} "
        f"| {n(st['per_upload']['prefetch_quota'])} + 0 prefetch per upload; {n(st['fire_both']['prefetch_quota'])} "
        f"+ {n(st['fire_both']['refresh_quota'])} refresh + prefetch |",
        f"| store requests per upload event of one object with 2 domains / per redelivery | {store_calls} | |",
        "",
        f"`{'python -m bench --quick' if data['mode'] == 'quick' else 'python3 dev.py bench'}` "
        f"({data['seconds']:.0f} s) on {m['cpus']} x {m['cpu']}, Python {m['python']}: "
        f"medians of several runs, on loopback against the local CDN API double; load average "
        f"{data['load']['before'][0]:.1f} before, {data['load']['after'][0]:.1f} after.",
        "",
        staleness_table(st),
    ]
    return "\n".join(lines)


# -- the overwrite/delete trace ------------------------------------------------------------------

STRATEGY_NAMES = {
    "per_upload": "prefetch per upload (template)",
    "fire_both": "refresh + prefetch per upload, prefetch ends first",
    "fire_both_slow_prefetch": "refresh + prefetch per upload, refresh ends first",
    "project": "this project (FC entry points)",
}


def staleness_rows(s: dict) -> list[Row]:
    """Rows of the overwrite/delete benchmark: this project against the templates on the same trace."""
    ours, per, both, slow = s["project"], s["per_upload"], s["fire_both"], s["fire_both_slow_prefetch"]
    trace = f"{n(ours['events'])} events over {ours['trace_days']:g} days"

    def refs(key: str) -> str:
        return f"{n(per[key])} per upload; {n(both[key])} / {n(slow[key])} refresh + prefetch (prefetch / refresh ends first)"

    return [
        Row(f"overwrite/delete trace ({trace}): objects served stale at the end (old version, or deleted yet cached)",
            n(ours["served_stale"]), refs("served_stale"), "target 0", PASS if ours["served_stale"] == 0 else FAIL),
        Row("overwrite/delete trace: live objects not cached at the end (cold)",
            n(ours["cold"]), refs("cold"), "target 0", PASS if ours["cold"] == 0 else FAIL),
        Row("overwrite/delete trace: PushObjectCache + RefreshObjectCaches calls",
            f"{n(ours['push_calls'])} + {n(ours['refresh_calls'])}",
            f"{n(per['push_calls'])} + 0 per upload; {n(both['push_calls'])} + {n(both['refresh_calls'])} refresh + prefetch",
            f"{ratio(per['push_calls'], ours['push_calls'])} fewer prefetch calls", INFO),
        Row("overwrite/delete trace: every API call, reads (quota, task checks) included",
            n(_all_calls(ours)), f"{n(_all_calls(per))} per upload; {n(_all_calls(both))} refresh + prefetch",
            "reads cost no quota, only rate", INFO),
        Row("overwrite/delete trace: prefetch quota used (URLs)",
            n(ours["prefetch_quota"]), refs("prefetch_quota"),
            f"{ratio(per['prefetch_quota'], ours['prefetch_quota'])} less; target <= per upload",
            PASS if ours["prefetch_quota"] <= per["prefetch_quota"] else FAIL),
        Row("overwrite/delete trace: refresh quota used (URLs)",
            n(ours["refresh_quota"]), f"0 per upload; {n(both['refresh_quota'])} refresh + prefetch",
            f"{ratio(both['refresh_quota'], ours['refresh_quota'])} less than refresh + prefetch", INFO),
    ]


def _all_calls(o: dict) -> int:
    return o["push_calls"] + o["refresh_calls"] + sum(o["other_calls"].values())


def staleness_table(s: dict) -> str:
    """The side-by-side table of the overwrite/delete trace, one line per strategy."""
    lines = [
        "| strategy | `PushObjectCache` calls | `RefreshObjectCaches` calls | other calls | prefetch quota | "
        "refresh quota | served stale at the end | cold at the end |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, name in STRATEGY_NAMES.items():
        o = s[key]
        other = sum(o["other_calls"].values())
        lines.append(
            f"| {name} | {n(o['push_calls'])} | {n(o['refresh_calls'])} | {n(other)} | {n(o['prefetch_quota'])} "
            f"| {n(o['refresh_quota'])} | {n(o['served_stale'])} ({n(o['stale'])} old version, "
            f"{n(o['deleted_cached'])} deleted) | {n(o['cold'])} |"
        )
    return "\n".join(lines)


def staleness_notes(s: dict) -> list[str]:
    ours, per, both, slow = s["project"], s["per_upload"], s["fire_both"], s["fire_both_slow_prefetch"]
    other = ", ".join(f"{n(c)} {a}" for a, c in ours["other_calls"].items()) or "none"
    return [
        f"Overwrite/delete trace: the acceptance test's seeded trace, {n(ours['events'])} events "
        f"({n(ours['uploads'])} uploads: new objects, identical re-uploads and redeliveries, overwrites; "
        f"{n(ours['deletes'])} deletes), one CDN domain; at the end {n(ours['live'])} objects live and "
        f"{n(ours['deleted'])} deleted. Each strategy runs against the CDN double's model (origin, edge cache, "
        "tasks on a simulated clock: prefetch 240 s, refresh 300 s; 600 s prefetch in the 'refresh ends first' "
        "run), quotas that never bind, and is compared with the origin once every task has settled.",
        f"Prefetch per upload leaves {n(per['stale'])} overwritten objects on their old version (a prefetch never "
        f"replaces a cached copy) and {n(per['deleted_cached'])} deleted objects cached. Refresh + prefetch at once "
        f"races every time ({n(both['raced'])} prefetches sent while their refresh ran): when the prefetch ends "
        f"first, the refresh then purges what it fetched and {n(both['cold'])} live objects end cold, all its "
        f"prefetch quota wasted; when the refresh ends first, the cache ends current but {n(slow['deleted_cached'])} "
        "deleted objects stay cached (the templates do nothing on a delete).",
        f"This project refreshes an overwritten or deleted URL only if it had pushed it, prefetches after the "
        f"refresh completed, and cancels a delete inside its upload's window at no quota. It pays in reads: "
        f"{other} (the account's quota before a flush sends, and task checks), so {n(_all_calls(ours))} calls in "
        f"all against {n(_all_calls(per))} for prefetch per upload; reads cost no quota but count against the API's "
        f"rate. {ours['simulated_days']:.1f} simulated days, a flush every minute until nothing was left to do.",
    ]


# -- store requests per upload ---------------------------------------------------------------------


def _kinds(counts: dict) -> str:
    return " + ".join(f"{c} {k}" for k, c in counts.items()) or "none"


def storecalls_rows(results: list[dict]) -> list[Row]:
    rows = []
    for r in results:
        label = {"sqlite": "SQLite", "dynamodb": "DynamoDB (dynalite)", "tablestore": "Tablestore (wire double)"}[r["store"]]
        metric = f"store work per upload event (1 object, 2 domains) / per redelivery, {label}"
        if r["missing"]:
            rows.append(Row(metric, f"n/a ({r['missing']})", "-", "-", NA))
            continue
        if r["store"] == "sqlite":
            def what(c: dict) -> str:
                return f"{c.get('transactions', 0)} transaction(s), {c.get('statements', 0)} statements"
        else:
            def what(c: dict) -> str:
                return f"{sum(c.values())} requests: {_kinds(c)}"
        rows.append(Row(metric, what(r["upload"]), f"redelivery: {what(r['redelivery'])}", "exact counts", INFO))
    return rows
