"""Backfill of existing objects through the CLI: behind live uploads, within its share of the quota, resumable."""

from __future__ import annotations

import json
import random

import pytest

from eventdata import oss_event
from handler.__main__ import main
from handler.planning import parse_instant

DAY = 86400
START = parse_instant("2026-11-23T16:00:00Z")  # 00:00 UTC+8


class Cli:
    """`python -m handler` in this process (argument parsing, wiring, exit status), at a simulated time."""

    def __init__(self, deployment, capsys) -> None:
        self.d = deployment
        self.capsys = capsys

    def __call__(self, *args: str, at: float) -> dict:
        self.d.double.set_clock(at)
        self.capsys.readouterr()
        now = f"{at:.3f}"
        status = main([*args, "--config", str(self.d.config_path), "--now", _iso(at), "--json"])
        out = self.capsys.readouterr()
        assert status == 0, (now, out.err)
        return json.loads(out.out)


def _iso(epoch: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch, timezone.utc).isoformat()


@pytest.mark.slow
def test_live_uploads_go_first_and_the_backfill_ends_by_day_three(deploy, tmp_path, capsys):
    d = deploy(backfill_share=0.9, cdn={"daily_quota": 1000})
    cli = Cli(d, capsys)
    keys = tmp_path / "keys.txt"
    keys.write_text("".join(f"old/{i:04d}.jpg\n" for i in range(2500)), encoding="utf-8")

    dry = cli("backfill", "--bucket", "my-bucket", "--keys", str(keys), "--dry-run", at=START)
    assert (dry["queued"], dry["days"]) == (2500, 2.8)  # 2,500 URLs at 900 a day
    assert cli("status", "--offline", at=START)["pending"] == 0  # a dry run queues nothing

    first = cli("backfill", "--bucket", "my-bucket", "--keys", str(keys), at=START)
    assert first["queued"] == 2500
    again = cli("backfill", "--bucket", "my-bucket", "--keys", str(keys), at=START + 1)
    assert (again["queued"], again["known"]) == (0, 2500)  # resumable: a rerun adds nothing

    rng = random.Random(7)
    live_times = sorted(START + day * DAY + rng.uniform(60, DAY - 120) for day in range(3) for _ in range(50))
    for n, at in enumerate(live_times):
        event = tmp_path / f"live-{n}.json"
        event.write_text(json.dumps(oss_event("my-bucket", f"live/{n}.css", etag=f"L{n}")), encoding="utf-8")
        assert cli("ingest", str(event), at=at)["added"] == 1
        closes = (int(at // 60) + 1) * 60  # the first flush after its window closes
        cli("flush", at=closes)
        assert f"https://cdn.example.com/live/{n}.css" in d.double.pushed_urls, f"live upload {n} waited"

    end_of_day_3 = START + 3 * DAY - 1
    cli("flush", at=end_of_day_3)
    pushed = set(d.double.pushed_urls)
    assert {f"https://cdn.example.com/old/{i:04d}.jpg" for i in range(2500)} <= pushed
    assert len(d.double.pushed_urls) == len(pushed) == 2650  # each URL once
    status = cli("status", at=end_of_day_3)
    assert status["pending"] == 0 and status["quota_used"] <= 1000


def test_backfill_from_an_s3_listing_maps_keys_through_the_rules(deploy, capsys, s3_bucket):
    d = deploy()
    cli = Cli(d, capsys)
    endpoint, bucket = s3_bucket(["a/视频 1.mp4", "a/b+c.css", "a/dir/", "b/other.js"], bucket="my-s3-bucket")
    report = cli("backfill", "--source", "s3", "--bucket", bucket, "--prefix", "a/", "--endpoint", endpoint,
                 "--region", "us-east-1", at=START)
    assert (report["listed"], report["queued"]) == (2, 2)  # the directory marker is not an object
    cli("flush", "--all", at=START + 60)
    assert sorted(d.double.pushed_urls) == [
        "https://img.example.com/a/%E8%A7%86%E9%A2%91%201.mp4", "https://img.example.com/a/b%2Bc.css",
    ]
