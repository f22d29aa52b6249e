"""`python -m bench --quick` keeps working: the table's structure and the hard invariants, never timings.

The benchmark runs in child processes only: this test package is also named `bench`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("requests", "urllib3", "boto3", "botocore", "tablestore", "fc2", "yaml")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "PREWARM_", "AWS_"))}
    env.pop("PYTHONPATH", None)
    return env


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path_factory.mktemp("bench")
    raw = out / "quick.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(raw), "--results", str(out)],
        cwd=ROOT, env=_env(), capture_output=True, timeout=240,
    )
    assert raw.exists(), result.stderr.decode(errors="replace")[-2000:]
    return result, json.loads(raw.read_text(encoding="utf-8"))


def test_quick_run_exits_cleanly_and_prints_one_table(quick):
    result, data = quick
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    table, _, summary = result.stdout.decode("utf-8").partition("README summary:")
    assert "| metric | ours | reference | ratio / target | result |" in table
    table, _, side_by_side = table.partition("Overwrite/delete trace, side by side:")
    assert table.count("\n| ") == len(data["rows"]) + 1  # the header row and one line per metric
    assert side_by_side.count("\n| ") == 1 + len(data["results"]["staleness"])  # header and one line each
    assert "| | this project | reference |" in summary and "python -m bench --quick" in summary
    assert data["mode"] == "quick"
    assert {"cpus", "cpu", "python"} <= set(data["machine"])


def test_every_section_has_its_rows(quick):
    _, data = quick
    metrics = " ".join(row["metric"] for row in data["rows"])
    for words in ("PushObjectCache calls", "physical limit", "per-tick limit", "one flush at the end",
                  "quota used", "duplicate quota", "ingest, SQLite", "ingest, DynamoDB",
                  "import handler.entry", "flush path", "heavy modules", "URLs/s pushed", "peak memory",
                  "served stale", "not cached", "refresh quota", "store work per upload"):
        assert words in metrics, words
    for row in data["rows"]:
        assert set(row) == {"metric", "ours", "reference", "ratio", "verdict"}
        assert all(isinstance(value, str) and value for value in row.values())
        assert row["verdict"] in ("pass", "FAIL", "info", "n/a", "over (see note)")


def test_hard_invariants_hold(quick):
    _, data = quick
    eff = data["results"]["efficiency"]
    assert all(data["invariants"].values()), data["invariants"]
    assert eff["ours_duplicate_quota"] == eff["oneshot_duplicate_quota"] == 0
    assert eff["ours_quota"] == eff["oneshot_quota"] == eff["unique_urls"] == eff["ours_store_quota"]
    assert eff["oneshot_calls"] == eff["limit_calls"] == -(-eff["unique_urls"] // 100)
    # With a flush every minute, each tick may end with one partial batch, and a busy tick one more per claim
    # round: those are the only excess allowed, and the table must say so.
    assert eff["tick_limit_calls"] <= eff["limit_calls"] + eff["ticks"]
    assert eff["ours_calls"] == eff["tick_limit_calls"] + eff["ours_round_splits"]
    if eff["ours_calls"] > eff["limit_calls"]:
        assert any("partial batch" in note for note in data["notes"])
    assert eff["baseline_calls"] == eff["events"] and eff["baseline_rejected"] == 0
    assert eff["baseline_quota"] == 2 * eff["events"]
    assert data["results"]["flush_rate"]["pushed_all"]
    memory = data["results"]["flush_memory"]
    assert memory["pushed"] == memory["urls"] and memory["duplicates"] == 0


def test_the_dynamodb_row_runs_or_says_why_not(quick):
    _, data = quick
    results = data["results"]
    row = next(r for r in data["rows"] if r["metric"].startswith("ingest, DynamoDB"))
    if results["ingest_dynamodb"] is None:
        assert results["ingest_dynamodb_missing"] and row["ours"].startswith("n/a (")
    else:
        assert results["ingest_dynamodb"]["added_per_run"] > 0


def test_the_upload_entry_imports_no_http_stack_or_sdk(quick):
    _, data = quick
    cold = data["results"]["coldstart"]
    assert cold["heavy_after_import"] == [] and cold["heavy_after_upload"] == []


def test_a_fresh_import_of_the_upload_entry_holds_no_heavy_module():
    code = "import handler.entry, sys, json; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(), capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    loaded = {name.split(".")[0] for name in json.loads(result.stdout)}
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_the_overwrite_delete_trace_ends_current_for_ours_only_at_no_more_quota(quick):
    _, data = quick
    s = data["results"]["staleness"]
    ours, per, both = s["project"], s["per_upload"], s["fire_both"]
    assert set(s) == {"per_upload", "fire_both", "fire_both_slow_prefetch", "project"}
    # Every strategy replayed the same trace.
    assert len({(o["events"], o["uploads"], o["deletes"], o["live"], o["deleted"]) for o in s.values()}) == 1
    assert ours["served_stale"] == ours["cold"] == 0
    assert ours["prefetch_quota"] <= per["prefetch_quota"] and ours["push_calls"] <= per["push_calls"]
    assert ours["refresh_quota"] <= both["refresh_quota"] and ours["raced"] == 0
    # The templates send one call per upload event; prefetch alone leaves overwritten copies stale.
    assert per["push_calls"] == per["prefetch_quota"] == per["uploads"] and per["refresh_calls"] == 0
    assert both["push_calls"] == both["refresh_calls"] == per["uploads"]
    assert per["stale"] > 0 and per["deleted_cached"] > 0


def test_store_requests_per_upload_and_redelivery(quick):
    result, data = quick
    calls = {c["store"]: c for c in data["results"]["store_calls"]}
    assert set(calls) == {"sqlite", "dynamodb", "tablestore"}
    assert calls["sqlite"]["upload"]["transactions"] == 1
    for name in ("dynamodb", "tablestore"):
        if calls[name]["missing"]:
            continue
        assert calls[name]["upload_total"] > calls[name]["redelivery_total"] > 0
        assert all(op.startswith("Get") for op in calls[name]["redelivery"]), calls[name]["redelivery"]
    assert "| strategy | `PushObjectCache` calls |" in result.stdout.decode("utf-8")
