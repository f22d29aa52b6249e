"""`python -m handler show`: where a URL stands, followed from upload to a warm edge, through the CLI and the CDN double."""

from __future__ import annotations

import json

from eventdata import oss_event

from handler.__main__ import main
from handler.explain import iso
from handler.planning import parse_instant

UPLOAD = parse_instant("2026-11-23T10:00:05Z")
URL = "https://cdn.example.com/docs/guide.css"


def _show(d, capsys, *args: str, at: float) -> list[dict]:
    d.double.set_clock(at)
    capsys.readouterr()
    status = main(["show", *args, "--config", str(d.config_path), "--now", iso(at), "--json"])
    out = capsys.readouterr()
    assert status == 0, out.err
    return json.loads(out.out)


def _run(d, capsys, *args: str, at: float) -> None:
    d.double.set_clock(at)
    assert main([*args, "--config", str(d.config_path), "--now", iso(at)]) == 0, capsys.readouterr().err


def test_show_follows_a_url_from_upload_to_a_warm_edge(deploy, tmp_path, capsys):
    d = deploy()
    d.double.set_task_timing(preload_seconds=240)
    d.double.set_origin(URL, "v1")
    event = tmp_path / "event.json"
    event.write_text(json.dumps(oss_event("my-bucket", "docs/guide.css", etag="v1")), encoding="utf-8")

    (unknown,) = _show(d, capsys, URL, at=UPLOAD - 5)
    assert unknown["phase"] is None and "not in the store" in unknown["next"]

    _run(d, capsys, "ingest", str(event), at=UPLOAD)
    (pending,) = _show(d, capsys, URL, at=UPLOAD + 1)
    assert (pending["phase"], pending["version"]) == ("pending", "v1")
    assert pending["next"] == "to be prefetched, at the first flush after 2026-11-23T10:01:00Z"

    _run(d, capsys, "flush", at=UPLOAD + 60)
    (pushed,) = _show(d, capsys, URL, at=UPLOAD + 61)
    assert (pushed["phase"], pushed["pushed_version"]) == ("pushed", "v1")
    (task,) = [t for t in d.double.task_records() if t["TaskId"] == pushed["task_id"]]
    assert (task["ObjectPath"], task["ObjectType"], task["Status"]) == (URL, "preload", "Refreshing")
    assert d.double.cached(URL) is None  # the task takes 240 s on the double's clock

    _run(d, capsys, "flush", at=UPLOAD + 400)  # the task ended: the flush checks it
    (verified,) = _show(d, capsys, URL, at=UPLOAD + 401)
    assert verified["phase"] == "verified" and verified["next"].startswith("warm: the prefetch task completed")
    assert d.double.cached(URL) == "v1"  # what `show` says is what the edge holds


def test_show_by_key_names_the_urls_of_every_domain_and_what_no_rule_takes(deploy, capsys):
    d = deploy(rules=[{"bucket": "my-bucket", "domains": ["cdn.example.com", "img.example.com"], "suffixes": [".css"]}])
    shown = _show(d, capsys, "--bucket", "my-bucket", "docs/guide.css", "docs/photo.png", at=UPLOAD)
    by_url = {facts["url"]: facts for facts in shown}
    assert set(by_url) == {URL, "https://img.example.com/docs/guide.css", "docs/photo.png"}
    assert by_url["docs/photo.png"]["next"] == "not warmed: no rule matches bucket 'my-bucket' key 'docs/photo.png'"


def test_show_in_text_says_one_url_and_its_next_step_per_pair_of_lines(deploy, tmp_path, capsys):
    d = deploy()
    event = tmp_path / "event.json"
    event.write_text(json.dumps(oss_event("my-bucket", "docs/guide.css", etag="v1")), encoding="utf-8")
    _run(d, capsys, "ingest", str(event), at=UPLOAD)
    capsys.readouterr()
    assert main(["show", URL, "--config", str(d.config_path), "--now", iso(UPLOAD + 1)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{URL}  pending  version v1",
        "  to be prefetched, at the first flush after 2026-11-23T10:01:00Z",
    ]
