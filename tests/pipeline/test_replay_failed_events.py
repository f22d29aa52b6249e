"""Events that failed on FC land in the MNS queue as destination records; `ingest` replays them."""

from __future__ import annotations

import json
from pathlib import Path

RECORD = Path(__file__).resolve().parents[2] / "events" / "fc-async-failure-destination.json"


def test_a_failure_record_replays_its_upload_once(deploy):
    d = deploy()
    first = d.cli_json("ingest", str(RECORD))
    assert (first["records"], first["added"], first["skipped"]) == (1, 1, 0)
    assert d.cli_json("ingest", str(RECORD))["added"] == 0  # a record replayed twice adds nothing

    report = d.cli_json("flush", "--all")
    assert report["pushed"] == 1
    assert d.double.pushed_urls == ["https://cdn.example.com/static/js/vendor.4be1c0.js"]


def test_a_failure_record_on_stdin_is_replayed(deploy):
    d = deploy()
    report = json.loads(d.cli("ingest", "-", "--json", stdin=RECORD.read_bytes()).stdout)
    assert report["added"] == 1
