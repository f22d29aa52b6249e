"""Cold start: the upload path of a SQLite deployment loads no HTTP stack, no cloud SDK, no YAML, dataclasses or typing."""

import json
import subprocess
import sys
from pathlib import Path

from eventdata import oss_event

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ["requests", "urllib3", "boto3", "botocore", "tablestore", "fc2", "yaml", "alibabacloud_tea_openapi"]
# The standard library's slow imports that the upload path has no use for: dataclasses pulls in inspect
# (and with it ast, dis, tokenize); typing is for type checkers only (handler/values.py says why).
SLOW_STDLIB = ["dataclasses", "inspect", "typing"]

PROBE = """
import json, sys
from handler import entry
report = json.loads(entry.upload(sys.stdin.buffer.read(), None))
assert report["added"] == 1, report
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in %r)))
""" % (HEAVY + SLOW_STDLIB,)


def test_an_upload_invocation_on_sqlite_imports_no_sdk_dataclasses_or_typing(tmp_path):
    config = {"store": f"sqlite:///{tmp_path / 'state.db'}", "rules": [{"bucket": "b", "domains": ["cdn.example.com"]}]}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", PROBE],
        input=json.dumps(oss_event("b", "a.css")).encode(),
        capture_output=True,
        cwd=ROOT,
        env={"PREWARM_CONFIG": json.dumps(config), "PATH": "/usr/bin:/bin", "PREWARM_LOG_LEVEL": "WARNING"},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert json.loads(result.stdout) == []
    imported = {line.split("|")[-1].strip() for line in result.stderr.decode().splitlines() if "|" in line}
    assert "handler.entry" in imported and "sqlite3" in imported
    assert not {name for name in imported if name.split(".")[0] in HEAVY + SLOW_STDLIB}
    # Nor the other adapters, nor the local doubles (the Tablestore double imports the SDK it serves).
    assert not {name for name in imported if name.startswith(("handler.stores.tablestore", "handler.stores.dynamodb",
                                                              "handler.local"))}


def test_the_pinned_store_sdks_import_cleanly_with_warnings_as_errors():
    for module in ("handler.stores.tablestore", "handler.stores.dynamodb"):
        result = subprocess.run(
            [sys.executable, "-W", "error", "-c", f"import {module}"], capture_output=True, cwd=ROOT, timeout=60
        )
        assert result.returncode == 0, f"{module}: {result.stderr.decode()[-1000:]}"
