"""The command line's failures: one line on stderr and the documented exit status (1 failed, 2 bad config or input)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from eventdata import oss_event
from handler import entry

ROOT = Path(__file__).resolve().parents[2]
NOW = "2026-11-23T10:00:00Z"
LATER = "2026-11-23T10:00:01Z"
ENVIRONMENT = ["PREWARM_CONFIG", "PREWARM_STORE", "PREWARM_LOG_LEVEL", "ALIBABA_CLOUD_ACCESS_KEY_ID",
               "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN"]


def _events_file(tmp_path: Path, keys: list[str], bucket: str = "my-bucket", name: str = "events.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps({"events": [oss_event(bucket, key)["events"][0] for key in keys]}), encoding="utf-8")
    return str(path)


def _stderr_lines(result: subprocess.CompletedProcess) -> list[str]:
    return result.stderr.decode().splitlines()


def _cli_without_module(d, module: str, *args: str) -> subprocess.CompletedProcess:
    """The CLI in a Python where `import <module>` fails, as it does when the SDK is not installed."""
    program = (
        "import sys\n"
        f"sys.modules[{module!r}] = None\n"
        "from handler.__main__ import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", program, *args, "--config", str(d.config_path)],
        capture_output=True, cwd=ROOT, env=d.env, timeout=120,
    )


def _cli_into_closed_pipe(d, *args: str) -> subprocess.CompletedProcess:
    """The CLI with stdout a pipe whose reader has already gone, as in `python -m handler ... | head -0`."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        return subprocess.run(
            [sys.executable, "-m", "handler", *args, "--config", str(d.config_path)],
            stdout=writer, stderr=subprocess.PIPE, cwd=ROOT, env=d.env, timeout=120,
        )
    finally:
        os.close(writer)


@pytest.mark.parametrize(
    ("store", "sdk", "extra"),
    [
        ("dynamodb://prewarm?region=us-east-1", "boto3", "dynamodb"),
        ("tablestore://prewarm/urls?endpoint=https://prewarm.cn-hangzhou.ots.aliyuncs.com", "tablestore", "tablestore"),
    ],
)
def test_a_store_without_its_sdk_names_the_extra_to_install(deploy, store, sdk, extra):
    d = deploy()
    d.env["PREWARM_STORE"] = store
    result = _cli_without_module(d, sdk, "status")
    assert result.returncode == 2
    assert _stderr_lines(result) == [
        f"error: store {store.split(':')[0]}:// needs the {sdk} package: pip install 'oss-cdn-prewarm[{extra}]'"
    ]


def test_flush_on_full_without_aliyun_fc2_still_ingests_and_warns_once(deploy, monkeypatch, caplog):
    deploy(
        window_seconds=3600,
        cdn={"max_urls_per_call": 2},
        flush_function={"service": "cdn-prewarm", "function": "flush", "endpoint": "http://127.0.0.1:9"},
    )
    monkeypatch.setitem(sys.modules, "fc2", None)  # aliyun-fc2 not installed
    context = SimpleNamespace(request_id="r", credentials=None, region="cn-hangzhou", account_id="1")
    caplog.set_level(logging.WARNING, logger="handler")
    reports = [
        json.loads(entry.upload(json.dumps(oss_event("my-bucket", key)).encode(), context)) for key in "abc"
    ]
    assert [report["added"] for report in reports] == [1, 1, 1]
    warnings = [r.getMessage() for r in caplog.records if r.name == "handler.flush_request"]
    assert len(warnings) == 1  # the window asked once; the Timer trigger flushes it anyway
    assert "pip install 'oss-cdn-prewarm[fc]'" in warnings[0] and "\n" not in warnings[0]


def test_a_file_that_is_not_json_is_bad_input(deploy, tmp_path):
    d = deploy()
    not_json = tmp_path / "notes.txt"
    not_json.write_text("these are not the events you are looking for\n")
    result = d.cli("ingest", str(not_json), check=False)
    assert result.returncode == 2
    [line] = _stderr_lines(result)
    assert line.startswith(f"error: {not_json}: not ingested: malformed payload: not JSON")


def test_a_bad_file_never_takes_the_good_one_down(deploy, tmp_path):
    d = deploy()
    good = _events_file(tmp_path, ["ok.txt"])
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"\xff\xfe not json")
    result = d.cli("ingest", str(garbage), good, check=False)
    assert result.returncode == 2
    assert result.stdout.decode().splitlines() == [
        "ingested 1 records from 1 files: 1 URLs newly pending; 1 files not ingested"
    ]
    [line] = _stderr_lines(result)
    assert line.startswith(f"error: {garbage}: not ingested: malformed payload: not UTF-8")
    assert d.cli_json("status")["pending"] == 1


def test_a_bucket_without_a_rule_is_reported_in_the_text_output(deploy, tmp_path):
    d = deploy()
    result = d.cli("ingest", _events_file(tmp_path, ["a.js", "b.js"], bucket="someone-elses-bucket"))
    assert result.stdout.decode().splitlines() == [
        "ingested 2 records from 1 files: 0 URLs newly pending; 2 records matched no rule",
        "  no rule for bucket 'someone-elses-bucket': its uploads are ignored",
    ]
    assert result.stderr == b""


def test_a_reader_that_goes_away_ends_the_output_quietly(deploy, tmp_path):
    d = deploy(rules=[{"bucket": "my-bucket", "domains": ["cdn.example.com", "gone.example.net"]}])
    d.cli("ingest", "--now", NOW, _events_file(tmp_path, [f"f{i}.js" for i in range(50)]))

    flushed = _cli_into_closed_pipe(d, "flush", "--all", "--now", LATER)
    assert flushed.returncode == 0
    assert {line.split(": ")[0] for line in _stderr_lines(flushed)} == {"ERROR handler.prewarm"}  # 50 dead letters
    assert d.cli_json("status", "--now", LATER)["pushed"] == 50  # the flush did its work all the same

    listed = _cli_into_closed_pipe(d, "dead-letters")
    assert (listed.returncode, listed.stderr) == (0, b"")


def test_a_store_path_that_cannot_be_written_is_configuration(deploy, tmp_path):
    d = deploy()
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    d.env["PREWARM_STORE"] = f"sqlite:///{a_file}/state.db"  # its folder cannot be made
    result = d.cli("status", check=False)
    assert result.returncode == 2
    assert _stderr_lines(result) == [f"error: cannot open store sqlite:///{a_file}/state.db: File exists: {a_file}"]

    d.env["PREWARM_STORE"] = f"sqlite:///{tmp_path}"  # a directory, not a database file
    result = d.cli("status", check=False)
    assert result.returncode == 2
    [line] = _stderr_lines(result)
    assert line.startswith(f"error: cannot open SQLite store {tmp_path}:")


@pytest.mark.parametrize("output", [[], ["--json"]])
def test_a_wrong_secret_is_said_once_on_one_line(deploy, tmp_path, output):
    d = deploy()
    d.cli("ingest", "--now", NOW, _events_file(tmp_path, ["k1", "k2"]))
    d.env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] = "not-the-secret"
    result = d.cli("flush", "--all", "--now", LATER, *output, check=False)
    assert result.returncode == 1
    [line] = _stderr_lines(result)
    assert line.startswith("error: flush stopped, unpushed URLs stay pending: SignatureDoesNotMatch: ")
    if output:
        assert json.loads(result.stdout)["error"].startswith("SignatureDoesNotMatch")
    else:
        assert b"SignatureDoesNotMatch" not in result.stdout  # said once, on stderr
    assert d.cli_json("status", "--now", LATER)["pending"] == 2


def test_dead_letters_limit_is_explained_and_checked(deploy):
    d = deploy()
    help_text = d.cli("dead-letters", "--help").stdout.decode()
    assert "--limit N" in help_text and "at most N dead letters (default: 100)" in help_text
    zero = d.cli("dead-letters", "--limit", "0", check=False)
    assert zero.returncode == 2 and b"Traceback" not in zero.stderr
    assert "--limit: must be a whole number of 1 or more, not '0'" in zero.stderr.decode()


def test_init_store_json_prints_json(deploy, tmp_path):
    d = deploy()
    assert d.cli_json("init-store") == {"store": f"sqlite:///{tmp_path / 'state.db'}", "ready": True}


@pytest.mark.parametrize("command", [[], ["ingest"], ["flush"], ["status"], ["dead-letters"], ["init-store"]])
def test_every_help_page_names_the_exit_statuses_and_the_environment(deploy, command):
    d = deploy()
    help_text = d.cli(*command, "--help").stdout.decode()
    assert "exit status:" in help_text
    for status in ("0  done", "1  an operation failed", "2  bad configuration"):
        assert status in help_text
    for name in ENVIRONMENT:
        assert name in help_text
