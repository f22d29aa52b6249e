"""Recovery through the CLI: `requeue` puts dead letters back to pending, `forget` drops URLs' records."""

from __future__ import annotations

import json
import time

from handler.local.cdn_double_rules import Domains
from handler.planning import parse_instant

from .support import cli, cli_json, config, keys_payload, preload_tasks, write_json

NOW = "2026-11-23T02:00:00Z"
LIVE, GONE = "cdn.example.com", "gone.example.com"  # GONE is not (yet) a domain of the account


def _at(minutes: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(parse_instant(NOW) + 60 * minutes))


def test_requeue_and_forget_through_the_cli(tmp_path, make_cdn_double, measurements):
    started = time.monotonic()
    double = make_cdn_double(quota=10_000, domains=[LIVE])
    cfg = write_json(tmp_path / "config.json", config(
        double.base_url, f"sqlite:///{tmp_path / 'state.db'}", domains=(LIVE, GONE),
    ))
    keys = [f"a/{i:02d}.js" for i in range(10)] + [f"b/{i:02d}.js" for i in range(10)]
    events = write_json(tmp_path / "events.json", keys_payload(keys))
    assert cli_json(cfg, "ingest", "--now", _at(0), str(events))["added"] == 40
    first = cli_json(cfg, "flush", "--all", "--now", _at(1))
    assert first["pushed"] == 20 and first["dead"] == 20, first
    letters = json.loads(cli(cfg, "dead-letters", "--json", "--now", _at(1)).stdout)
    assert len(letters) == 20 and all(d["reason"].startswith("InvalidDomain.NotFound") for d in letters), letters[:1]

    # No selector: refused, nothing changed.
    bare = cli(cfg, "requeue", "--now", _at(2))
    assert bare.returncode == 2 and b"--code" in bare.stderr and b"--all" in bare.stderr, bare.stderr
    both = cli(cfg, "requeue", "--all", "--code", "X", "--now", _at(2))
    assert both.returncode == 2
    assert cli_json(cfg, "status", "--now", _at(2))["dead"] == 20
    # A code no letter carries, and a glob that matches nothing: 0.
    assert cli_json(cfg, "requeue", "--code", "Throttling", "--now", _at(2)) == {"matched": 0, "requeued": 0}
    assert cli_json(cfg, "requeue", "--url-glob", "https://nowhere/*", "--now", _at(2))["requeued"] == 0

    # The domain is added to the account; requeue half by code and glob, then the rest with --all.
    double.domains = Domains.of([LIVE, GONE])
    half = cli(cfg, "requeue", "--code", "InvalidDomain.NotFound", "--url-glob", f"https://{GONE}/a/*", "--now", _at(3))
    assert half.returncode == 0 and half.stdout.decode().startswith("requeued 10 dead-lettered URLs"), half.stdout
    assert cli_json(cfg, "status", "--now", _at(3))["dead"] == 10
    again = cli_json(cfg, "flush", "--now", _at(4))  # not --all: requeued URLs are due in their closed window
    assert again["pushed"] == 10 and again["dead"] == 0, again
    rest = cli_json(cfg, "requeue", "--all", "--now", _at(5))
    assert rest == {"matched": 10, "requeued": 10}
    cli_json(cfg, "flush", "--now", _at(6))
    double.set_clock(double.clock() + 3600)  # every task has ended
    checked = cli_json(cfg, "flush", "--now", _at(70))
    status = cli_json(cfg, "status", "--now", _at(70))
    assert status["dead"] == 0 and status["verified"] == 40, (checked, status)
    assert all(n == 1 for n in preload_tasks(double.task_records()).values())

    # forget: the next upload of the same version is new work again; without it, nothing is added.
    assert cli_json(cfg, "ingest", "--now", _at(71), str(events))["added"] == 0
    target = f"https://{LIVE}/a/00.js"
    forgot = cli_json(cfg, "forget", target, "https://cdn.example.com/never-seen.js", "--now", _at(72))
    assert forgot == {"forgotten": 1, "unknown": 1, "busy": 0}, forgot
    assert cli_json(cfg, "status", "--now", _at(72))["verified"] == 39
    assert cli_json(cfg, "ingest", "--now", _at(73), str(events))["added"] == 1
    final = cli_json(cfg, "flush", "--all", "--now", _at(74))
    assert final["pushed"] == 1, final
    assert preload_tasks(double.task_records())[target] == 2
    assert cli(cfg, "forget", "--now", _at(75)).returncode == 2  # URL... is required

    measurements.record(
        "recovery",
        tried="20 URLs dead-lettered as InvalidDomain.NotFound; `requeue` with no selector, with --code and "
              "--url-glob, then --all once the domain exists; `forget` of a verified URL and an unknown one, "
              "then the same upload again",
        runs="40 URLs, 9 CLI commands",
        lost=0, duplicates=0, bound="0: a requeued URL is pushed once; a forgotten one once more (asked for)",
        figures="no selector: exit 2, nothing changed; --code + --url-glob requeued 10 of 20; --all the other 10; "
                "dead 0 and verified 40 at the end; forget: forgotten 1, unknown 1, the re-upload added 1 "
                "(0 before forget)",
        seconds=time.monotonic() - started,
    )
