"""cdn.max_prefetch_per_flush: a backlog reaches the origin at most that many URLs a flush, and none is lost."""

from __future__ import annotations

import json
from collections import Counter

from eventdata import oss_batch

from handler.__main__ import main
from handler.explain import iso
from handler.planning import parse_instant

UPLOAD = parse_instant("2026-11-23T10:00:05Z")


def test_a_backlog_goes_out_at_most_the_cap_a_flush_until_every_url_is_warm(deploy, tmp_path, capsys):
    d = deploy(cdn={"max_prefetch_per_flush": 100, "daily_quota": 1000})
    keys = [f"img/{n:03d}.png" for n in range(250)]
    event = tmp_path / "event.json"
    event.write_text(json.dumps(oss_batch("my-bucket", keys)), encoding="utf-8")

    def cli(*args: str, at: float) -> dict:
        d.double.set_clock(at)
        capsys.readouterr()
        assert main([*args, "--config", str(d.config_path), "--now", iso(at), "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    cli("ingest", str(event), at=UPLOAD)
    fetched_per_flush = []
    for minute in range(1, 5):
        before = len(d.double.pushed_urls)
        report = cli("flush", at=UPLOAD + 60 * minute)
        fetched_per_flush.append(len(d.double.pushed_urls) - before)
        if minute == 1:
            status = cli("status", "--offline", at=UPLOAD + 61)
            assert status["deferred"] == 150
            (reason,) = status["deferred_reasons"]
            assert reason.startswith("origin: max_prefetch_per_flush (100) reached")
        assert report["pushed"] == fetched_per_flush[-1]

    assert fetched_per_flush == [100, 100, 50, 0]
    pushed = Counter(d.double.pushed_urls)
    assert len(pushed) == 250 and set(pushed.values()) == {1}  # every URL once
    assert cli("status", "--offline", at=UPLOAD + 300)["quota_used"] == 250  # quota only for what was sent


def test_a_negative_cap_is_refused_with_one_line(deploy, tmp_path, capsys):
    d = deploy(cdn={"max_prefetch_per_flush": -1})
    assert main(["status", "--offline", "--config", str(d.config_path)]) == 2
    assert "cdn.max_prefetch_per_flush" in capsys.readouterr().err
